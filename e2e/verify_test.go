package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

func TestVerifyFindsACopyChangedBehindGitmeshsBack(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.Devices["b"].MustGit("alice", "", "ls-remote", url)
	c.MustAdmin("repo", "create", "team/empty")
	if out := c.MustAdmin("verify"); !strings.Contains(out, "team/app: 2 copies match") || !strings.Contains(out, "team/empty: 1 copies match") {
		t.Fatalf("verify of a healthy cluster:\n%s", out)
	}
	// Someone moves a branch in b's copy by hand.
	stray := c.Commit(work, "README", "by hand\n")
	c.LocalGit(work, "push", "-q", filepath.Join(c.Devices["b"].Root, "team/app.git"), "main:side")
	r := c.Admin("verify", "team/app")
	if r.Code == 0 || !strings.Contains(r.Stdout, "team/app on b: refs differ") || !strings.Contains(r.Stdout, "both at version") {
		t.Fatalf("verify after a change by hand: exit %d\n%s%s (stray %s)", r.Code, r.Stdout, r.Stderr, stray)
	}
}

func TestSyncBringsANewDeviceUpToDate(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	_, acked := pushed(t, c)
	c.MustAdmin("repo", "create", "team/other")
	out := c.Devices["b"].Run(nil, "sync")
	if out.Code != 0 || !strings.Contains(out.Stdout, "team/app: current on b") || !strings.Contains(out.Stdout, "team/other: current on b") {
		t.Fatalf("sync on b: exit %d\n%s%s", out.Code, out.Stdout, out.Stderr)
	}
	if got := c.Rev("b", "team/app", "refs/heads/main"); got != acked {
		t.Fatalf("b has main=%q after sync, want %s", got, acked)
	}
	if st := c.MustAdmin("status", "--json", "team/app"); strings.Count(st, `"device"`) != 2 {
		t.Fatalf("status after sync:\n%s", st)
	}
}

func TestGCPacksACopyUnderTheLocks(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	dir := filepath.Join(c.Devices["a"].Root, "team/app.git")
	c.LocalGit(dir, "config", "receive.unpackLimit", "1") // every push keeps its pack
	for i := 0; i < 3; i++ {
		c.Commit(work, "README", strings.Repeat("x", i+1))
		c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	}
	before, _ := filepath.Glob(filepath.Join(dir, "objects/pack/*.pack"))
	if len(before) < 3 {
		t.Fatalf("pushes left %d packs, want one each (receive-pack must not gc)", len(before))
	}
	c.LocalGit(dir, "config", "gc.autoPackLimit", "2")
	if r := c.Devices["a"].Run(nil, "gc"); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("gc: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}
	if after, _ := filepath.Glob(filepath.Join(dir, "objects/pack/*.pack")); len(after) != 1 {
		t.Fatalf("gc --auto left %d packs, want 1", len(after))
	}
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); out == "" {
		t.Fatal("b serves nothing after a's gc")
	}
	if st := c.MustAdmin("status", "team/app"); strings.Contains(st, "FROZEN") {
		t.Fatalf("gc changed versions:\n%s", st)
	}
}
