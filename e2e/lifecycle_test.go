package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/lock"
	"gitmesh/meshtest"
)

// Repository and device lifecycle, cluster-wide: repo rename, repo
// delete, device set-url, and sync doing a returning device's disk tasks.

// copyAt reports whether device dev has a copy of repo on its disk.
func copyAt(c *meshtest.Cluster, dev, repo string) bool {
	_, err := os.Stat(filepath.Join(c.Devices[dev].Root, repo+".git", "HEAD"))
	return err == nil
}

// diskTasks counts the disk tasks still to do.
func diskTasks(t *testing.T, c *meshtest.Cluster) int {
	t.Helper()
	var n int
	if err := c.DB().QueryRow(`SELECT count(*) FROM disk_tasks`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// unmount takes dev's disk away (its repo root gone, as an unmounted
// disk): the device is down for the others. The returned func brings it
// back.
func unmount(t *testing.T, c *meshtest.Cluster, dev string) func() {
	t.Helper()
	root := c.Devices[dev].Root
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Rename(root+".away", root); err != nil {
			t.Fatal(err)
		}
	}
}

// goneEverywhere checks that every device in devs answers "not found" for repo.
func goneEverywhere(t *testing.T, c *meshtest.Cluster, repo string, devs ...string) {
	t.Helper()
	for _, d := range devs {
		r := c.Devices[d].Git("alice", "", "ls-remote", meshtest.URL(repo))
		if r.Code == 0 || !strings.Contains(r.Stderr, "repository not found") {
			t.Errorf("ls-remote %s on %s: exit %d, %q; want repository not found", repo, d, r.Code, r.Stderr)
		}
	}
}

// clonesAt checks that repo clones through every device in devs with main
// at want.
func clonesAt(t *testing.T, c *meshtest.Cluster, repo, want string, devs ...string) {
	t.Helper()
	for _, d := range devs {
		out := c.Devices[d].MustGit("alice", "", "ls-remote", meshtest.URL(repo), "refs/heads/main")
		if !strings.HasPrefix(out, want) {
			t.Errorf("%s on %s: main is %q, want %s", repo, d, out, want)
		}
		dir := filepath.Join(c.Dir, "clone-"+d+"-"+strings.ReplaceAll(repo, "/", "-"))
		c.Devices[d].MustGit("alice", "", "clone", "-q", meshtest.URL(repo), dir)
		if got := strings.TrimSpace(c.LocalGit(dir, "rev-parse", "HEAD")); got != want {
			t.Errorf("clone of %s from %s: HEAD %s, want %s", repo, d, got, want)
		}
		os.RemoveAll(dir)
	}
}

// A rename answers "not found" for the old name on every device at once;
// the new name clones with the same history everywhere, every holder's
// copy is renamed on its disk (not built anew), the grant on the exact
// name followed, and a grant by pattern is left as it is, and said so.
func TestRenameMovesTheNameOnEveryDevice(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	work, acked := pushed(t, c)
	meshtest.WaitDetached(t) // every holder has its copy, and no catch-up runs behind the test's back
	c.User("bob")
	c.MustAdmin("grant", "bob", "team/*", "read")
	c.MustAdmin("group", "add", "ops")
	c.MustAdmin("grant", "--group", "ops", "team/app", "read")
	for _, d := range []string{"a", "b", "c"} { // each copy marked, to tell a rename from a rebuild
		if err := os.WriteFile(filepath.Join(c.Devices[d].Root, "team/app.git", "gitmesh-test-mark"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	out := c.MustAdmin("repo", "rename", "team/app", "web/site")
	for _, want := range []string{"renamed repository team/app to web/site", "copies renamed on a, b, c", "team/*"} {
		if !strings.Contains(out, want) {
			t.Errorf("rename said %q; want it to say %q", out, want)
		}
	}
	goneEverywhere(t, c, "team/app", "a", "b", "c")
	clonesAt(t, c, "web/site", acked, "a", "b", "c")
	for _, d := range []string{"a", "b", "c"} {
		if copyAt(c, d, "team/app") {
			t.Errorf("%s still has a copy under the old name", d)
		}
		if _, err := os.Stat(filepath.Join(c.Devices[d].Root, "web/site.git", "gitmesh-test-mark")); err != nil {
			t.Errorf("%s's copy was not renamed: %v", d, err)
		}
	}
	if n := diskTasks(t, c); n != 0 {
		t.Errorf("%d disk tasks left after every holder renamed", n)
	}
	grants := c.MustAdmin("grants", "--json")
	for _, want := range []string{`"who": "user alice",
    "pattern": "web/site"`, `"who": "user bob",
    "pattern": "team/*"`, `"who": "group ops",
    "pattern": "web/site"`} {
		if !strings.Contains(grants, want) {
			t.Errorf("grants after the rename lack %s:\n%s", want, grants)
		}
	}
	if strings.Contains(grants, `"team/app"`) {
		t.Errorf("grants after the rename: want none left on team/app:\n%s", grants)
	}
	// The same repository: pushes go on under the new name.
	next := c.Commit(work, "README", "after the rename\n")
	c.Devices["b"].MustGit("alice", work, "push", "-q", meshtest.URL("web/site"), "main")
	clonesAt(t, c, "web/site", next, "c")
}

// A holder down at the rename keeps its copy under the old name until it
// returns: then `gitmesh sync` there, or the first read of the new name,
// renames it (the copy moved, not fetched again).
func TestRenameWhileAHolderIsDown(t *testing.T) {
	for _, how := range []string{"sync", "read"} {
		t.Run(how, func(t *testing.T) {
			c := meshtest.NewCluster(t, "a", "b", "c")
			_, acked := pushed(t, c)
			meshtest.WaitDetached(t) // every holder has its copy, and no catch-up runs behind the test's back
			mark := filepath.Join(c.Devices["c"].Root, "team/app.git", "gitmesh-test-mark")
			if err := os.WriteFile(mark, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			back := unmount(t, c, "c")
			out := c.MustAdmin("repo", "rename", "team/app", "web/site")
			if !strings.Contains(out, "copies renamed on a, b") || !strings.Contains(out, "c could not be reached and will rename its copy on its return") {
				t.Errorf("rename with c down said %q", out)
			}
			goneEverywhere(t, c, "team/app", "a", "b")
			clonesAt(t, c, "web/site", acked, "a")
			back()
			if !copyAt(c, "c", "team/app") || copyAt(c, "c", "web/site") {
				t.Fatalf("c, back, renamed before it was asked")
			}
			if how == "sync" {
				r := c.Devices["c"].Run(nil, "sync")
				if r.Code != 0 || !strings.Contains(r.Stdout, "did 1 disk tasks (copies moved away, deleted or renamed) on c") {
					t.Errorf("sync on c: exit %d, %q, %q", r.Code, r.Stdout, r.Stderr)
				}
			} else {
				clonesAt(t, c, "web/site", acked, "c")
			}
			if copyAt(c, "c", "team/app") {
				t.Errorf("c still has a copy under the old name")
			}
			if _, err := os.Stat(filepath.Join(c.Devices["c"].Root, "web/site.git", "gitmesh-test-mark")); err != nil {
				t.Errorf("c's copy was built anew instead of renamed: %v", err)
			}
			if n := diskTasks(t, c); n != 0 {
				t.Errorf("%d disk tasks left after c returned", n)
			}
			goneEverywhere(t, c, "team/app", "c")
			clonesAt(t, c, "web/site", acked, "c")
		})
	}
}

// A rename refused changes nothing: onto an existing name, an unknown
// repository, a bad new name, the same name.
func TestRenameRefusals(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	_, acked := pushed(t, c)
	c.CreateRepo("a", "team/web", "alice")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"team/app", "team/web"}, 1, "repository team/web already exists; choose another name, or delete it first"},
		{[]string{"team/nope", "team/new"}, 3, `repository "team/nope" is not registered`},
		{[]string{"team/app", "../evil"}, 2, "bad repository name"},
		{[]string{"team/app", "team/app"}, 2, "already has that name"},
		{[]string{"team/app"}, 2, "NEW"},
	} {
		r := c.Admin(append([]string{"repo", "rename"}, tc.args...)...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.want) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("rename %v: exit %d, %q; want exit %d and one line with %q", tc.args, r.Code, r.Stderr, tc.code, tc.want)
		}
	}
	clonesAt(t, c, "team/app", acked, "a", "b")
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", meshtest.URL("team/web")); out != "" {
		t.Errorf("team/web changed: %q", out)
	}
	if n := diskTasks(t, c); n != 0 {
		t.Errorf("a refused rename left %d disk tasks", n)
	}
}

// After a delete the repository is not found on any device at
// once, every reachable holder's copy is gone within seconds, a holder
// down at the time removes its copy on its return, and the name can be
// used again only once no old copy of it is left.
func TestDeleteRemovesEveryCopy(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	_, acked := pushed(t, c)
	meshtest.WaitDetached(t) // every holder has its copy, and no catch-up runs behind the test's back
	clonesAt(t, c, "team/app", acked, "a")
	if r := c.Admin("repo", "delete", "team/nope"); r.Code != 3 {
		t.Errorf("delete of an unknown repository: exit %d, %q; want 3", r.Code, r.Stderr)
	}

	back := unmount(t, c, "c")
	out := c.MustAdmin("repo", "delete", "team/app")
	if !strings.Contains(out, "copies removed from a, b") || !strings.Contains(out, "c could not be reached and will remove its copy on its return") {
		t.Errorf("delete with c down said %q", out)
	}
	goneEverywhere(t, c, "team/app", "a", "b")
	waitFor(t, "a's and b's copies to go", func() bool { return !copyAt(c, "a", "team/app") && !copyAt(c, "b", "team/app") })
	if strings.Contains(c.MustAdmin("grants"), "team/app") {
		t.Errorf("the grant on team/app outlived it")
	}
	// Its old copy still on c's disk: the name is not free yet.
	r := c.Devices["a"].Run(nil, "repo", "create", "team/app")
	if r.Code != 1 || !strings.Contains(r.Stderr, "device c still holds an old copy named team/app") {
		t.Errorf("create while c's old copy is left: exit %d, %q", r.Code, r.Stderr)
	}
	back()
	goneEverywhere(t, c, "team/app", "c")
	if r := c.Devices["c"].Run(nil, "sync"); r.Code != 0 || !strings.Contains(r.Stdout, "did 1 disk tasks (copies moved away, deleted or renamed) on c") {
		t.Errorf("sync on c: exit %d, %q, %q", r.Code, r.Stdout, r.Stderr)
	}
	if copyAt(c, "c", "team/app") {
		t.Errorf("c kept its copy of the deleted repository")
	}
	if n := diskTasks(t, c); n != 0 {
		t.Errorf("%d disk tasks left", n)
	}
	// The name is free: a new, empty repository.
	c.CreateRepo("a", "team/app", "alice")
	for _, d := range []string{"a", "b", "c"} {
		if out := c.Devices[d].MustGit("alice", "", "ls-remote", meshtest.URL("team/app")); out != "" {
			t.Errorf("the new team/app on %s shows the deleted one's refs: %q", d, out)
		}
	}
}

// A delete while a push holds the write lock waits at most lock_timeout,
// then gives up with one sentence (exit 5) and changes nothing: the push
// is acknowledged and kept.
func TestDeleteWhileAPushIsInFlight(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	work, _ := pushed(t, c)
	held := holdHook(t, c, "a", "team/app", "update")
	next := c.Commit(work, "README", "in flight\n")
	push := start(func() meshtest.Result {
		return c.Devices["a"].Git("alice", work, "push", meshtest.URL("team/app"), "main")
	})
	waitFor(t, "the push to hold the write lock", held.reached)
	r := c.Devices["b"].Run([]string{"GITMESH_LOCK_TIMEOUT=2s"}, "repo", "delete", "team/app", "--yes")
	if r.Code != 5 || !strings.Contains(r.Stderr, "did not delete team/app: a push or catch-up held the repository") ||
		!strings.Contains(r.Stderr, "nothing changed") || !strings.Contains(r.Stderr, "gitmesh: waiting for the write lock of team/app, held by") {
		t.Errorf("delete during a push: exit %d, %q; want exit 5 and its sentence", r.Code, r.Stderr)
	}
	held.let()
	if p := outcome(t, "the held push", push); p.Code != 0 {
		t.Fatalf("the held push: exit %d, %s", p.Code, p.Stderr)
	}
	clonesAt(t, c, "team/app", next, "a", "b", "c")
	if n := diskTasks(t, c); n != 0 {
		t.Errorf("a refused delete left %d disk tasks", n)
	}
}

// set-url validates the URL as device add does and refuses an unknown
// device; a good URL is what the next catch-up fetches from.
func TestSetURLIsUsedByTheNextCatchUp(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	acked := c.Commit(work, "README", "acknowledged\n")
	pushWithout(t, c, "a", work, []string{"c"}, meshtest.URL("team/app"), "main") // c lags; a and b hold it
	unmount(t, c, "a")
	b := c.Devices["b"]
	moved := b.Root + "-moved"
	if err := os.Rename(b.Root, moved); err != nil { // b's disk mounted elsewhere
		t.Fatal(err)
	}
	if r := c.Devices["c"].Git("alice", "", "ls-remote", meshtest.URL("team/app")); r.Code == 0 || !strings.Contains(r.Stderr, "b: its copy is missing") {
		t.Fatalf("read on c with b's URL stale: exit %d, %q; want no up-to-date copy reachable", r.Code, r.Stderr)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"b", "relative/path"}, 2, "use ssh://USER@HOST[:PORT] or an absolute path"},
		{[]string{"b", "ssh://git@b.example/srv/git"}, 2, "gitmesh appends /REPO.git"},
		{[]string{"nosuch", moved}, 1, `device "nosuch" is not registered`},
		{[]string{"b"}, 2, "URL"},
	} {
		r := c.Admin(append([]string{"device", "set-url"}, tc.args...)...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("set-url %v: exit %d, %q; want exit %d with %q", tc.args, r.Code, r.Stderr, tc.code, tc.want)
		}
	}
	if list := c.MustAdmin("device", "list"); !strings.Contains(list, "b\t"+b.Root+"\n") {
		t.Errorf("a refused set-url changed b's URL:\n%s", list)
	}
	if out := c.MustAdmin("device", "set-url", "b", moved); !strings.Contains(out, "device b is now reached at "+moved) {
		t.Errorf("set-url said %q", out)
	}
	clonesAt(t, c, "team/app", acked, "c")
}

// sync on a device that holds nothing says so, instead of claiming to
// have brought repositories it does not hold up to date.
func TestSyncOnADeviceHoldingNothing(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c", "d")
	pushed(t, c) // three copies: a, b, c
	r := c.Devices["d"].Run(nil, "sync")
	if r.Code != 0 || strings.Contains(r.Stdout, "team/app") || !strings.Contains(r.Stdout, "device d holds no copies") {
		t.Errorf("sync on d: exit %d, stdout %q, stderr %q; want it to say d holds no copies", r.Code, r.Stdout, r.Stderr)
	}
	r = c.Devices["d"].Run(nil, "sync", "team/app")
	if r.Code != 0 || !strings.Contains(r.Stdout, "team/app: not held by d, nothing to do (its copies are on a, b, c)") {
		t.Errorf("sync team/app on d: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if copyAt(c, "d", "team/app") {
		t.Errorf("sync made a copy on d, which is not a holder")
	}
}

// A rename waits for a push that holds the write lock: the push finishes
// and is acknowledged under the old name, and the new name serves it.
func TestRenameWaitsForAPushInFlight(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	work, _ := pushed(t, c)
	held := holdHook(t, c, "a", "team/app", "update")
	next := c.Commit(work, "README", "in flight\n")
	push := start(func() meshtest.Result {
		return c.Devices["a"].Git("alice", work, "push", meshtest.URL("team/app"), "main")
	})
	waitFor(t, "the push to hold the write lock", held.reached)
	rename := start(func() meshtest.Result { return c.Devices["b"].Run(nil, "repo", "rename", "team/app", "web/site") })
	waitForLockWaiter(t, c, lock.Write(repoID(t, c, "team/app")), "the rename", rename)
	held.let()
	if p := outcome(t, "the held push", push); p.Code != 0 || !acked(p.Stderr, "main") {
		t.Fatalf("the held push: exit %d, %s", p.Code, p.Stderr)
	}
	if r := outcome(t, "the rename", rename); r.Code != 0 || !strings.Contains(r.Stdout, "renamed repository team/app to web/site") {
		t.Fatalf("the rename after the push: exit %d, %q, %q", r.Code, r.Stdout, r.Stderr)
	}
	goneEverywhere(t, c, "team/app", "a", "b", "c")
	clonesAt(t, c, "web/site", next, "a", "b", "c")
}

// Over real sshd, each holder renames and removes its own copy when
// asked by a `gitmesh-sync` request with the cluster key.
func TestSSHRenameAndDeleteReachEveryHolder(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	acked := c.Commit(work, "README", "acknowledged\n")
	c.Hosts["a"].MustGit("alice", work, "push", "-q", c.Hosts["a"].URL("team/app"), "main")
	c.WaitConverged("team/app")

	if out := c.MustAdmin("repo", "rename", "team/app", "web/site"); !strings.Contains(out, "copies renamed on a, b, c") {
		t.Errorf("rename over ssh said %q", out)
	}
	for _, d := range []string{"a", "b", "c"} {
		if copyAt(c.Cluster, d, "team/app") || !copyAt(c.Cluster, d, "web/site") {
			t.Errorf("%s's copy is not renamed on its disk", d)
		}
		h := c.Hosts[d]
		if r := h.Git("alice", "", "ls-remote", h.URL("team/app")); r.Code == 0 || !strings.Contains(r.Stderr, "repository not found") {
			t.Errorf("old name on %s: exit %d, %q", d, r.Code, r.Stderr)
		}
		if out := h.MustGit("alice", "", "ls-remote", h.URL("web/site"), "refs/heads/main"); !strings.HasPrefix(out, acked) {
			t.Errorf("web/site on %s: %q, want %s", d, out, acked)
		}
	}

	if out := c.MustAdmin("repo", "delete", "web/site", "--yes"); !strings.Contains(out, "copies removed from a, b, c") {
		t.Errorf("delete over ssh said %q", out)
	}
	waitFor(t, "every copy to go", func() bool {
		return !copyAt(c.Cluster, "a", "web/site") && !copyAt(c.Cluster, "b", "web/site") && !copyAt(c.Cluster, "c", "web/site")
	})
	if n := diskTasks(t, c.Cluster); n != 0 {
		t.Errorf("%d disk tasks left", n)
	}
}

// Renamed away and back while a holder is down: the rename back is not
// refused for the copy still under the name on that holder (it is the
// same repository's), and on its return the holder's copy goes round to
// where it started. A new repository may not take a name a down device
// still has another repository's copy under.
func TestRenameBackWhileAHolderIsDown(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	_, acked := pushed(t, c)
	meshtest.WaitDetached(t) // every holder has its copy, and no catch-up runs behind the test's back
	mark := filepath.Join(c.Devices["c"].Root, "team/app.git", "gitmesh-test-mark")
	if err := os.WriteFile(mark, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	back := unmount(t, c, "c")
	c.MustAdmin("repo", "rename", "team/app", "web/site")
	c.MustAdmin("repo", "rename", "web/site", "web/final")
	r := c.Devices["a"].Run(nil, "repo", "create", "team/app")
	if r.Code != 1 || !strings.Contains(r.Stderr, "device c still holds an old copy named team/app") {
		t.Errorf("create over c's renamed copy: exit %d, %q", r.Code, r.Stderr)
	}
	c.MustAdmin("repo", "rename", "web/final", "team/app")
	back()
	clonesAt(t, c, "team/app", acked, "c") // its copy is where it was
	if r := c.Devices["c"].Run(nil, "sync"); r.Code != 0 {
		t.Errorf("sync on c: exit %d, %q, %q", r.Code, r.Stdout, r.Stderr)
	}
	clonesAt(t, c, "team/app", acked, "c")
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("c's copy did not come back round to team/app: %v", err)
	}
	for _, gone := range []string{"web/site", "web/final"} {
		if copyAt(c, "c", gone) {
			t.Errorf("c keeps a copy under %s", gone)
		}
	}
	if n := diskTasks(t, c); n != 0 {
		t.Errorf("%d disk tasks left", n)
	}
	goneEverywhere(t, c, "web/final", "a", "b", "c")
}

// A holder back from an outage, its copy still under the old name, may be
// the only one another device can catch up from: the fetch from it first
// moves its copy into place (when its read lock is free).
func TestCatchUpFromAHolderThatHasNotRenamedYet(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	_, acked := pushed(t, c)
	meshtest.WaitDetached(t)
	backB := unmount(t, c, "b")
	c.MustAdmin("repo", "rename", "team/app", "web/site")
	backB() // b is back, its copy still under team/app
	// c lost its copy.
	if err := os.RemoveAll(filepath.Join(c.Devices["c"].Root, "web/site.git")); err != nil {
		t.Fatal(err)
	}
	unmount(t, c, "a") // and a is down: b is the only source
	clonesAt(t, c, "web/site", acked, "c")
	if copyAt(c, "b", "team/app") || !copyAt(c, "b", "web/site") {
		t.Errorf("b's copy was not moved into place")
	}
	var left int
	if err := c.DB().QueryRow(`SELECT count(*) FROM disk_tasks t JOIN devices d ON d.id = t.device_id WHERE d.name = 'b'`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("b still has %d disk tasks", left)
	}
}

// A device holding no copy answers for a renamed or deleted repository
// as the holders do: the old name not found, the new one passed on.
func TestRenameAndDeleteSeenFromADeviceWithoutACopy(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c", "d")
	_, acked := pushed(t, c) // three copies: a, b, c
	meshtest.WaitDetached(t)
	c.MustAdmin("repo", "rename", "team/app", "web/site")
	goneEverywhere(t, c, "team/app", "d")
	clonesAt(t, c, "web/site", acked, "d")
	if copyAt(c, "d", "web/site") || copyAt(c, "d", "team/app") {
		t.Errorf("d, which holds no copy, made one")
	}
	c.MustAdmin("repo", "delete", "web/site", "--yes")
	goneEverywhere(t, c, "web/site", "a", "b", "c", "d")
}

// Over real sshd: a holder whose sshd was down at the rename still has
// its copy under the old name when it is back; a peer that can fetch
// only from it gets the copy, moved into place by the holder itself.
func TestSSHCatchUpFromAHolderThatHasNotRenamedYet(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	acked := c.Commit(work, "README", "acknowledged\n")
	c.Hosts["a"].MustGit("alice", work, "push", "-q", c.Hosts["a"].URL("team/app"), "main")
	c.WaitConverged("team/app")

	c.Hosts["b"].StopSSHD()
	if out := c.MustAdmin("repo", "rename", "team/app", "web/site"); !strings.Contains(out, "b could not be reached and will rename its copy on its return") {
		t.Errorf("rename with b's sshd down said %q", out)
	}
	c.Hosts["b"].StartSSHD()
	if !copyAt(c.Cluster, "b", "team/app") {
		t.Fatalf("b renamed its copy while its sshd was down")
	}
	// c lost its copy, and a is down: b is the only source.
	if err := os.RemoveAll(filepath.Join(c.Devices["c"].Root, "web/site.git")); err != nil {
		t.Fatal(err)
	}
	c.Hosts["a"].StopSSHD()
	cc := c.Hosts["c"]
	if out := cc.MustGit("alice", "", "ls-remote", cc.URL("web/site"), "refs/heads/main"); !strings.HasPrefix(out, acked) {
		t.Errorf("web/site on c: %q, want %s", out, acked)
	}
	if copyAt(c.Cluster, "b", "team/app") || !copyAt(c.Cluster, "b", "web/site") {
		t.Errorf("b's copy was not moved into place")
	}
}

// A copy that cannot be removed holds back only the tasks on its own
// name: c cannot remove team/x (a process works in what an earlier
// removal left aside), and still removes team/y when that is deleted;
// team/x's task stays until it can be done.
func TestAStuckDiskTaskHoldsBackNoOther(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	for _, repo := range []string{"team/x", "team/y"} {
		c.CreateRepo("a", repo, "alice")
		work := c.Work("alice")
		c.Commit(work, "README", repo+"\n")
		c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL(repo), "main")
		c.WaitConverged(repo)
	}
	aside := copyDir(c, "c", "team/x") + ".gitmesh-gone"
	if err := os.Mkdir(aside, 0o755); err != nil {
		t.Fatal(err)
	}
	user := exec.Command("sleep", "120")
	user.Dir = aside
	if err := user.Start(); err != nil {
		t.Fatal(err)
	}
	defer user.Process.Kill()

	out := c.MustAdmin("repo", "delete", "team/x", "--yes")
	if !strings.Contains(out, "copies removed from a, b; c could not be reached") {
		t.Errorf("delete of team/x said %q; want c's removal to wait", out)
	}
	out = c.MustAdmin("repo", "delete", "team/y", "--yes")
	if !strings.Contains(out, "copies removed from a, b, c") {
		t.Errorf("delete of team/y said %q: c's stuck removal of team/x held it back", out)
	}
	if copyAt(c, "c", "team/y") {
		t.Error("c still has team/y's copy")
	}
	if n := diskTasks(t, c); n != 1 {
		t.Errorf("%d disk tasks left, want team/x's on c alone", n)
	}

	user.Process.Kill()
	user.Wait()
	c.Devices["c"].Run(nil, "sync")
	if copyAt(c, "c", "team/x") || diskTasks(t, c) != 0 {
		t.Errorf("after the process ended and a sync on c: team/x's copy there %v, %d disk tasks left", copyAt(c, "c", "team/x"), diskTasks(t, c))
	}
}
