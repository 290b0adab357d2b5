package cli

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A descriptor gitmesh inherited beyond stdin, stdout and stderr (fcgiwrap's
// FastCGI connection, say) is close-on-exec after closeInherited, so that
// neither git nor a detached converge keeps it; the first three are not.
func TestCloseInheritedMarksDescriptorsCloseOnExec(t *testing.T) {
	fd, err := syscall.Dup(2) // dup(2) leaves close-on-exec off
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cloexec := func(fd int) bool {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatalf("fcntl(%d): %v", fd, err)
		}
		return flags&unix.FD_CLOEXEC != 0
	}
	if cloexec(fd) {
		t.Fatalf("descriptor %d is close-on-exec before the test", fd)
	}
	closeInherited()
	if !cloexec(fd) {
		t.Fatalf("inherited descriptor %d is not close-on-exec after closeInherited", fd)
	}
	for std := 0; std <= 2; std++ {
		if cloexec(std) {
			t.Fatalf("descriptor %d became close-on-exec: git needs stdin, stdout and stderr", std)
		}
	}
}
