package e2e

import (
	"strings"
	"testing"

	"gitmesh/meshtest"
)

func TestPushCloneFetchAcrossThreeDevices(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	a, b, cc := c.Devices["a"], c.Devices["b"], c.Devices["c"]
	c.CreateRepo("a", "team/app", "alice")
	url := meshtest.URL("team/app")

	// Push to a.
	work := c.Work("alice")
	first := c.Commit(work, "README", "hello\n")
	a.MustGit("alice", work, "push", "-q", url, "main")

	// Clone from c: c never held the repository and catches up on first read.
	clone := c.Dir + "/clone-c"
	cc.MustGit("alice", "", "clone", "-q", url, clone)
	if got := strings.TrimSpace(c.LocalGit(clone, "rev-parse", "HEAD")); got != first {
		t.Fatalf("clone from c has %s, want %s", got, first)
	}

	// Push to c on top of it; fetch from b sees both.
	second := c.Commit(clone, "README", "hello again\n")
	cc.MustGit("alice", clone, "push", "-q", url, "main")
	fresh := c.Dir + "/clone-b"
	b.MustGit("alice", "", "clone", "-q", url, fresh)
	log := c.LocalGit(fresh, "log", "--format=%H")
	if !strings.Contains(log, first) || !strings.Contains(log, second) {
		t.Fatalf("clone from b lacks a pushed commit:\n%s", log)
	}

	// A push to stale a first brings a up to date, then accepts the push.
	third := c.Commit(fresh, "NEWS", "news\n")
	a.MustGit("alice", fresh, "push", "-q", url, "main")
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != third {
		t.Fatalf("a has main=%s, want %s", got, third)
	}

	// A force-push and a branch deletion replicate.
	b.MustGit("alice", fresh, "push", "-q", url, "main:feature")
	c.LocalGit(fresh, "reset", "-q", "--hard", first)
	b.MustGit("alice", fresh, "push", "-q", "--force", url, "main")
	b.MustGit("alice", fresh, "push", "-q", url, ":feature")
	check := c.Dir + "/clone-a"
	a.MustGit("alice", "", "clone", "-q", url, check)
	if got := strings.TrimSpace(c.LocalGit(check, "rev-parse", "origin/main")); got != first {
		t.Fatalf("after force-push, a serves main=%s, want %s", got, first)
	}
	if r := a.Git("alice", "", "ls-remote", url, "refs/heads/feature"); r.Stdout != "" || r.Code != 0 {
		t.Fatalf("deleted branch still served by a: %q (exit %d, %s)", r.Stdout, r.Code, r.Stderr)
	}
}
