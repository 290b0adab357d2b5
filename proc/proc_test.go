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

// Using finds a process working in a directory, also once the directory
// was renamed (as a copy is, before it is removed), and not after it
// ended.
func TestUsing(t *testing.T) {
	dir := t.TempDir()
	copyDir := dir + "/app.git"
	if err := os.MkdirAll(copyDir+"/objects", 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	cmd.Dir = copyDir + "/objects"
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v (apt-get install coreutils)", err)
	}
	defer cmd.Process.Kill()
	has := func(d string) bool {
		pids, err := Using(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pids {
			if p == cmd.Process.Pid {
				return true
			}
		}
		return false
	}
	if !has(copyDir) {
		t.Fatal("a process working under the directory is not listed")
	}
	if err := os.Rename(copyDir, copyDir+".gone"); err != nil {
		t.Fatal(err)
	}
	if !has(copyDir + ".gone") {
		t.Fatal("a process working under the renamed directory is not listed")
	}
	if err := os.Mkdir(dir+"/other", 0o755); err != nil {
		t.Fatal(err)
	}
	if has(dir + "/other") {
		t.Fatal("listed for a directory it does not work in")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if has(copyDir + ".gone") {
		t.Fatal("a process that ended is listed")
	}
}
