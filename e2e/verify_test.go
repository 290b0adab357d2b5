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
