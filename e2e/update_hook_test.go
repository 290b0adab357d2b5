package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitmesh/meshtest"
	"gitmesh/proc"
)

// The repository's update hook runs in serve while the push holds the
// write lock; one that hangs must not hold it for good: it is stopped at
// push_timeout with its children, the ref is declined, nothing moves,
// and the next push goes through.
func TestAHangingUpdateHookIsStoppedAtPushTimeout(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, base := pushed(t, c)
	a := c.Devices["a"]
	a.WriteConfig("push_timeout = \"3s\"")
	marker := filepath.Join(c.Dir, "in-update")
	pidFile := filepath.Join(c.Dir, "update-child")
	hook := adminHook(t, c, "a", "update", fmt.Sprintf("touch %q\nsleep 3600 &\necho $! > %q\nwait\n", marker, pidFile))

	c.Commit(work, "README", "held by a hanging update hook\n")
	push := a.GitCmd("alice", work, "push", url, "main")
	var stderr bytes.Buffer
	push.Stderr = &stderr
	push.WaitDelay = 2 * time.Second // a stuck serve keeps the pipe open
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "serve to run the update hook", exists(marker))
	done := make(chan error, 1)
	go func() { done <- push.Wait() }()
	select {
	case err := <-done:
		if err == nil || acked(stderr.String(), "main") {
			t.Fatalf("the push whose update hook hung was acknowledged: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		push.Process.Kill()
		<-done
		t.Fatalf("the push whose update hook hangs is still running 30 s after it started (push_timeout is 3s): the hook holds the write lock\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "push_timeout") {
		t.Errorf("the user is not told the update hook ran past push_timeout:\n%s", stderr.String())
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != base {
		t.Fatalf("main is %s after a declined push, want %s", got, base)
	}
	b, err := os.ReadFile(pidFile)
	child, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil {
		t.Fatalf("the hook's child pid: %v %v", err, perr)
	}
	waitFor(t, "the hanging hook's child to be stopped with it", func() bool { return !proc.Alive(child) })
	writable(t, c, "team/app")

	if err := os.Remove(hook); err != nil {
		t.Fatal(err)
	}
	next := c.Commit(work, "README", "after the hook was removed\n")
	a.MustGit("alice", work, "push", "-q", url, "main")
	serves(t, c, next, "a", "b")
}
