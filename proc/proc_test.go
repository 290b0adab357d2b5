package proc

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestAlive(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("this test's own process is not alive")
	}
	if !Alive(1) {
		t.Fatal("pid 1 (which we may not signal) is not alive")
	}
	for _, pid := range []int{0, -1} {
		if Alive(pid) {
			t.Fatalf("Alive(%d) = true; a pid of 0 or less names no process", pid)
		}
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v (apt-get install coreutils)", err)
	}
	pid := cmd.Process.Pid
	if !Alive(pid) {
		t.Fatalf("running child %d is not alive", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Killed, not yet reaped: a zombie, which does not run.
	deadline := time.Now().Add(10 * time.Second)
	for Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("killed child %d (a zombie until reaped) is still alive after 10 s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Wait()
	if Alive(pid) {
		t.Fatalf("reaped child %d is alive", pid)
	}
}
