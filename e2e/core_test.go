package e2e

import (
	"os"
	"path/filepath"
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

	// A push to a stale device first brings it up to date, then accepts
	// the push. Branch other goes to c, so a lacks it; the push to a comes
	// from a work tree that never had other, so only catching up can give
	// a's copy that branch.
	c.LocalGit(clone, "checkout", "-q", "-b", "other")
	other := c.Commit(clone, "OTHER", "other\n")
	cc.MustGit("alice", clone, "push", "-q", url, "other")
	if got := c.Rev("a", "team/app", "refs/heads/other"); got != "" {
		t.Fatalf("a has other=%s before any read or push there; the test needs a stale", got)
	}
	third := c.Commit(fresh, "NEWS", "news\n")
	a.MustGit("alice", fresh, "push", "-q", url, "main")
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != third {
		t.Fatalf("a has main=%s, want %s", got, third)
	}
	if got := c.Rev("a", "team/app", "refs/heads/other"); got != other {
		t.Fatalf("after the push to stale a, a has other=%q, want %s: the push did not catch up first", got, other)
	}
	both := c.Dir + "/clone-b2"
	b.MustGit("alice", "", "clone", "-q", "--no-checkout", url, both)
	for ref, want := range map[string]string{"origin/main": third, "origin/other": other} {
		if got := strings.TrimSpace(c.LocalGit(both, "rev-parse", ref)); got != want {
			t.Fatalf("clone from b after the push to a: %s=%s, want %s", ref, got, want)
		}
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

func TestHousekeepingIsNeitherAVersionNorAPush(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	a := c.Devices["a"]
	a.MustGit("alice", work, "push", "-q", url, "main:topic")
	// Pack the refs, as gc does, so deleting topic touches packed-refs too.
	c.LocalGit(filepath.Join(a.Root, "team/app.git"), "pack-refs", "--all")
	var before int64
	db := c.DB()
	if err := db.QueryRow(`SELECT max(version) FROM working_copy_versions`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	a.MustGit("alice", work, "push", "-q", url, ":topic")
	var after int64
	if err := db.QueryRow(`SELECT max(version) FROM working_copy_versions`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before+1 {
		t.Fatalf("deleting one packed branch made %d versions, want 1", after-before)
	}
	out := c.MustAdmin("log", "team/app")
	if strings.Count(out, "refs/heads/topic") != 2 || strings.Count(out, "delete") != 1 {
		t.Fatalf("push log after creating and deleting topic:\n%s", out)
	}
}

// A `git init` killed half-way (a staging push cut at the grace's end
// while it made b's copy) leaves a directory without HEAD where the copy
// goes: b's next read makes the copy anyway, instead of failing on that
// directory every time.
func TestAHalfMadeCopyIsReplacedOnTheNextRead(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	_, acked := pushed(t, c)
	dir := filepath.Join(c.Devices["b"].Root, "team", "app.git")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "refs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, acked) {
		t.Fatalf("b serves %q with a half-made copy in place, want %s", out, acked)
	}
}

func TestACurrentDeviceThatLostItsCopyFetchesItAgain(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	_, acked := pushed(t, c)
	c.Devices["b"].MustGit("alice", "", "ls-remote", url)
	if err := os.RemoveAll(filepath.Join(c.Devices["b"].Root, "team")); err != nil {
		t.Fatal(err)
	}
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, acked) {
		t.Fatalf("b serves %q after losing its copy, want %s", out, acked)
	}
}
