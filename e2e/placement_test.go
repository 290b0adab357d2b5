package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// repo create places `copies` copies: zones first, then the devices with
// the fewest copies; only the holders get a copy on disk, and a push is
// stored on them alone, acknowledged by a majority of them.
func TestRepoCreatePlacesCopiesOverZonesThenLoad(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	for _, d := range []struct{ name, zone string }{{"b", "r1"}, {"c", "r1"}, {"d", "r2"}} {
		c.AddDevice(d.name, "")
		c.MustAdmin("device", "add", d.name, "--url", c.Devices[d.name].Root, "--zone", d.zone)
	}
	// a has no zone (its own); b and c share r1; d is r2. Three copies
	// take a zone each: a (no zone), b (r1, first by name), d (r2).
	out := c.MustAdmin("repo", "create", "team/one")
	if !strings.Contains(out, "created repository team/one on a, b, d;") {
		t.Fatalf("repo create placed: %s", out)
	}
	if got := holdersOf(t, c, "team/one"); strings.Join(got, ",") != "a,b,d" {
		t.Fatalf("holders of team/one: %v, want a, b, d", got)
	}
	// With every zone used, the fewest copies win: c (0) first.
	out = c.MustAdmin("repo", "create", "team/two", "--copies", "2")
	if got := holdersOf(t, c, "team/two"); len(got) != 2 || !contains(got, "c") {
		t.Fatalf("holders of team/two: %v (%s), want c and one other", got, out)
	}
	// Copies exist on the holders' disks only, at once.
	for _, dev := range []string{"a", "b", "c", "d"} {
		_, err := os.Stat(filepath.Join(c.Devices[dev].Root, "team/one.git", "HEAD"))
		if held := contains(holdersOf(t, c, "team/one"), dev); held != (err == nil) {
			t.Errorf("team/one on %s: held %v, copy on disk %v", dev, held, err == nil)
		}
	}
	// A push is stored on the three holders, and told so.
	c.User("alice")
	c.MustAdmin("grant", "alice", "team/one", "write")
	work := c.Work("alice")
	c.Commit(work, "README", "placed\n")
	r := c.Devices["a"].Git("alice", work, "push", "-q", meshtest.URL("team/one"), "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "of 3 devices") {
		t.Fatalf("push to a holder: exit %d: %s", r.Code, r.Stderr)
	}
	if st := c.MustAdmin("status", "team/one"); !strings.Contains(st, "of 3 devices hold the newest version, quorum 2") {
		t.Fatalf("status speaks of holders:\n%s", st)
	}
}

// Bad numbers of copies are refused with one sentence and create nothing.
func TestRepoCreateRefusesImpossibleCopies(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	for _, tc := range []struct {
		copies string
		code   int
		says   string
	}{
		{"0", 2, "a repository needs at least one"},
		{"3", 2, "only 2 devices are registered"},
		{"-1", 2, "at least one"},
		{"two", 2, "--copies must be a whole number"},
	} {
		r := c.Admin("repo", "create", "team/x", "--copies", tc.copies)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.says) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("repo create --copies %s: exit %d, %q; want exit %d saying %q", tc.copies, r.Code, r.Stderr, tc.code, tc.says)
		}
	}
	if out := c.MustAdmin("repo", "list"); strings.Contains(out, "team/x") {
		t.Fatalf("a refused create left a repository: %s", out)
	}
	// The setting (all devices when fewer are registered) is no error.
	c.Devices["a"].WriteConfig("copies = 5")
	if out := c.MustAdmin("repo", "create", "team/y"); !strings.Contains(out, "on a, b;") {
		t.Fatalf("copies = 5 with two devices: %s", out)
	}
	// An impossible setting is a configuration error.
	c.Devices["a"].WriteConfig("copies = 0")
	if r := c.Admin("repo", "list"); r.Code != 1 || !strings.Contains(r.Stderr, "copies must be a number from 1 to 100") {
		t.Fatalf("copies = 0: exit %d %s", r.Code, r.Stderr)
	}
	if r := c.Devices["a"].Run([]string{"GITMESH_COPIES=abc"}, "repo", "list"); r.Code == 0 {
		t.Fatalf("GITMESH_COPIES=abc accepted: %s", r.Stdout)
	}
}
