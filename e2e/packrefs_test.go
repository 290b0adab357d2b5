package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/gitexec"
	"gitmesh/meshtest"
)

// A push of many new refs leaves them loose (a file each, on the writer
// and on the peers, visible and staged); after the answer the copies
// are packed, so that the next push does not read them one file at a
// time, and nothing a user or verify sees changes.
func TestManyNewRefsArePackedAfterThePush(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	for _, d := range []string{"a", "b", "c"} {
		if n := gitexec.LooseRefs(filepath.Join(c.Devices[d].Root, "team/app.git"), 1000); n >= 256 {
			t.Fatalf("%s has %d loose refs before the test's push", d, n)
		}
	}
	var refspecs []string
	for i := 0; i < 300; i++ {
		refspecs = append(refspecs, fmt.Sprintf("main:refs/heads/many/b%03d", i))
	}
	c.Devices["a"].MustGit("alice", work, append([]string{"push", "-q", url}, refspecs...)...)
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	want := c.Rev("a", "team/app", "refs/heads/main")
	for _, d := range []string{"a", "b", "c"} {
		dir := filepath.Join(c.Devices[d].Root, "team/app.git")
		if n := gitexec.LooseRefs(dir, 1000); n >= 256 {
			t.Errorf("%s still has %d loose refs after the push's converge, want them packed", d, n)
		}
		if _, err := os.Stat(filepath.Join(dir, "packed-refs")); err != nil {
			t.Errorf("%s has no packed-refs: %v", d, err)
		}
		out := c.Devices[d].MustGit("alice", "", "ls-remote", url, "refs/heads/many/*")
		if n := strings.Count(out, want); n != 300 {
			t.Errorf("%s shows %d of the 300 new branches at main", d, n)
		}
	}
	if out := c.MustAdmin("verify", "team/app"); !strings.Contains(out, "3 copies match") {
		t.Errorf("verify after packing:\n%s", out)
	}
}
