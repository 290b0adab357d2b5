package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// A demote whose source copy cannot be read says so; it does not take the
// unreadable copy for an empty one and list every ref as lost.
func TestThawSaysWhenTheSourceCannotBeRead(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, acked := pushed(t, c)
	c.Devices["b"].MustGit("alice", "", "ls-remote", url) // b catches up: both hold acked
	freeze(t, c, "team/app", "b", work)
	// a's copy is out of reach (a disk gone, a directory moved away).
	onA := filepath.Join(c.Devices["a"].Root, "team/app.git")
	if err := os.Rename(onA, onA+".away"); err != nil {
		t.Fatal(err)
	}
	r := c.Admin("thaw", "team/app", "--demote", "b")
	if r.Code == 0 || strings.Contains(r.Stdout, "would discard on b") || !strings.Contains(r.Stdout, "cannot read the copy of team/app on a") {
		t.Fatalf("demote from an unreadable a: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout, acked) {
		t.Errorf("thaw lists %s as lost although a holds it:\n%s", acked, r.Stdout)
	}
	if st := c.MustAdmin("status", "team/app"); !strings.Contains(st, "FROZEN") {
		t.Fatalf("a refused thaw changed state:\n%s", st)
	}
	// Once a is back, the copies agree and the demote loses nothing.
	if err := os.Rename(onA+".away", onA); err != nil {
		t.Fatal(err)
	}
	if out := c.MustAdmin("thaw", "team/app", "--demote", "b"); strings.Contains(out, "would discard") || !strings.Contains(out, "thawed team/app") {
		t.Fatalf("demote with a readable again:\n%s", out)
	}
}
