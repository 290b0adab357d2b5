package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

func TestThawOnAHealthyRepositoryChangesNothing(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	pushed(t, c)
	c.Devices["b"].MustGit("alice", "", "ls-remote", meshtest.URL("team/app"))
	before := c.MustAdmin("status", "--json", "team/app")
	out := c.MustAdmin("thaw", "team/app", "--promote", "a")
	if !strings.Contains(out, "not frozen") || !strings.Contains(out, "nothing to do") {
		t.Fatalf("thaw of a healthy repository: %s", out)
	}
	if after := c.MustAdmin("status", "--json", "team/app"); stripTimes(after) != stripTimes(before) {
		t.Fatalf("thaw of a healthy repository changed state:\n%s\n%s", before, after)
	}
}

func stripTimes(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, "updated_at") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestThawListsWhatItWouldDiscardAndNeedsForce(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, acked := pushed(t, c)
	c.Devices["b"].MustGit("alice", "", "ls-remote", url)
	// An unrecorded write on b: its serve killed, the mark left behind,
	// and its main moved on disk.
	freeze(t, c, "team/app", "b", work)
	stray := strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD"))
	c.LocalGit(work, "push", "-q", filepath.Join(c.Devices["b"].Root, "team/app.git"), "main")

	// The thaw must name the device whose write froze the repository.
	r := c.Admin("thaw", "team/app", "--promote", "a", "--force")
	if r.Code == 0 || !strings.Contains(r.Stderr, "frozen by a write on device b") {
		t.Fatalf("thaw naming another device: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// Promoting b would replace a's acknowledged main with b's stray one.
	r = c.Admin("thaw", "team/app", "--promote", "b")
	if r.Code == 0 || !strings.Contains(r.Stdout, "would discard on a: refs/heads/main "+acked) || !strings.Contains(r.Stderr, "--force") {
		t.Fatalf("promote without --force: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if st := c.MustAdmin("status", "team/app"); !strings.Contains(st, "FROZEN") {
		t.Fatalf("a refused thaw changed state:\n%s", st)
	}
	// Demoting b discards its stray main; with --force b resyncs from a.
	r = c.Admin("thaw", "team/app", "--demote", "b")
	if r.Code == 0 || !strings.Contains(r.Stdout, "would discard on b: refs/heads/main "+stray) {
		t.Fatalf("demote without --force: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	c.MustAdmin("thaw", "team/app", "--demote", "b", "--force")
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, acked) {
		t.Fatalf("after demote b serves %q, want %s", out, acked)
	}
	if st := c.MustAdmin("status", "team/app"); strings.Contains(st, "FROZEN") {
		t.Fatalf("still frozen after thaw:\n%s", st)
	}
}

func TestThawAllRepairsEveryRepositoryOfADevice(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	for _, repo := range []string{"team/app", "team/lib", "team/docs"} {
		c.CreateRepo("a", repo, "alice")
	}
	// Device a crashed while writing to two of them.
	work := c.Work("alice")
	c.Commit(work, "README", "x\n")
	freeze(t, c, "team/app", "a", work)
	freeze(t, c, "team/lib", "a", work)
	out := c.MustAdmin("thaw", "--all", "--promote", "a")
	for _, want := range []string{"thawed team/app", "thawed team/lib", "team/docs is not frozen"} {
		if !strings.Contains(out, want) {
			t.Errorf("thaw --all output lacks %q:\n%s", want, out)
		}
	}
	if st := c.MustAdmin("status"); strings.Contains(st, "FROZEN") {
		t.Fatalf("still frozen after thaw --all:\n%s", st)
	}
	c.Devices["b"].MustGit("alice", work, "push", "-q", meshtest.URL("team/lib"), "main")
}

func TestDemoteNeverDropsRecordedVersionsWithoutBeingTold(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, first := pushed(t, c)
	c.Devices["b"].MustGit("alice", "", "ls-remote", url) // b holds the first push only
	second := c.Commit(work, "README", "acknowledged, only on a\n")
	pushWithout(t, c, "a", work, []string{"b"}, url, "main")
	freeze(t, c, "team/app", "a", work)
	r := c.Admin("thaw", "team/app", "--demote", "a", "--force")
	if r.Code == 0 || !strings.Contains(r.Stderr, "recorded and acknowledged") {
		t.Fatalf("demote of the only holder of a recorded push: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	c.MustAdmin("thaw", "team/app", "--promote", "a")
	for _, d := range []string{"a", "b"} {
		if out := c.Devices[d].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, second) {
			t.Fatalf("%s serves %q after promote, want %s (not %s)", d, out, second, first)
		}
	}
}
