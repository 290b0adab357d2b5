package e2e

import (
	"regexp"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// A read from a device that must first catch up says so at once and
// passes the fetch's progress meter on, on stderr only, without a path.
func TestSSHCatchUpTellsTheUserAndShowsProgress(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	a, cc := c.Hosts["a"], c.Hosts["c"]
	work := sshPushed(t, c)
	second := c.Commit(work, "README", "second\n")
	sshPushWithout(t, c, "a", work, []string{"c"}, a.URL("team/app"), "main")

	r := cc.Git("alice", "", "ls-remote", cc.URL("team/app"), "refs/heads/main")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, second) {
		t.Fatalf("ls-remote from c: exit %d, %q: %s", r.Code, r.Stdout, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if !regexp.MustCompile(`^gitmesh: catching up from [ab] \(version 1 -> 2\)$`).MatchString(lines[0]) {
		t.Fatalf("the first thing c said is %q, want the catch-up line; stderr:\n%s", lines[0], r.Stderr)
	}
	meter := regexp.MustCompile(`^gitmesh: catching up: (Enumerating objects|Counting objects|Compressing objects|Receiving objects|Resolving deltas|Total)[: ]`)
	n := 0
	for _, l := range lines[1:] {
		if meter.MatchString(l) {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no progress line from the catch-up; stderr:\n%s", r.Stderr)
	}
	for _, leak := range []string{c.Dir, "ssh://", "127.0.0.1", ".git"} {
		if strings.Contains(r.Stderr, leak) {
			t.Fatalf("stderr carries %q:\n%s", leak, r.Stderr)
		}
	}
	// A device that is current says nothing.
	if r := cc.Git("alice", "", "ls-remote", cc.URL("team/app")); r.Code != 0 || r.Stderr != "" {
		t.Fatalf("a current read: exit %d, stderr %q; want silence", r.Code, r.Stderr)
	}
}
