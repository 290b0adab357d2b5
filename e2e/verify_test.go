package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/lock"
	"gitmesh/meshtest"
)

func TestVerifyFindsACopyChangedBehindGitmeshsBack(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.Devices["b"].MustGit("alice", "", "ls-remote", url)
	c.MustAdmin("repo", "create", "team/empty")
	if out := c.MustAdmin("verify"); !strings.Contains(out, "team/app: 2 copies match") || !strings.Contains(out, "team/empty: 2 copies match") {
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

// gc packs a's copy holding the write lock and a's read lock: a push
// that comes meanwhile waits for it (seen in pg_locks), then lands.
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
	// git runs pre-auto-gc once it has decided to pack: gc stops there.
	held := holdHook(t, c, "a", "team/app", "pre-auto-gc")
	gc := start(func() meshtest.Result { return c.Devices["a"].Run(nil, "gc") })
	waitFor(t, "gc to reach pre-auto-gc", held.reached)
	id := repoID(t, c, "team/app")
	var devA int32
	if err := c.DB().QueryRow(`SELECT id FROM devices WHERE name = 'a'`).Scan(&devA); err != nil {
		t.Fatal(err)
	}
	w, err := lock.HolderOf(t.Context(), c.DB(), lock.Write(id))
	if err != nil {
		t.Fatal(err)
	}
	r, err := lock.HolderOf(t.Context(), c.DB(), lock.Read(id, devA))
	if err != nil {
		t.Fatal(err)
	}
	if w == nil || r == nil || w.PID != r.PID {
		t.Fatalf("while gc packs a's copy, the write lock is held by %+v and a's read lock by %+v: want both, by gc", w, r)
	}
	next := c.Commit(work, "README", "pushed during gc\n")
	push := start(func() meshtest.Result { return c.Devices["b"].Git("alice", work, "push", url, "main") })
	waitForLockWaiter(t, c, lock.Write(id), "a push through b", push)
	held.let()
	if r := outcome(t, "gc", gc); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("gc: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}
	if r := outcome(t, "the push that waited for gc", push); r.Code != 0 || !acked(r.Stderr, "main") {
		t.Fatalf("the push that waited for gc: exit %d, %s", r.Code, r.Stderr)
	}
	// One pack from gc; the push that waited added its own after it.
	if after, _ := filepath.Glob(filepath.Join(dir, "objects/pack/*.pack")); len(after) > 2 {
		t.Fatalf("gc --auto left %d packs, want 1 (and the later push's)", len(after))
	}
	serves(t, c, next, "a", "b")
	if r := c.Admin("verify", "team/app"); r.Code != 0 {
		t.Fatalf("verify after gc: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
}
