package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// missingObjects are the objects a clone lacks and would fetch on demand.
func missingObjects(c *meshtest.SSHCluster, clone string) []string {
	var out []string
	for _, l := range strings.Split(c.LocalGit(clone, "rev-list", "--objects", "--missing=print", "--all"), "\n") {
		if strings.HasPrefix(l, "?") {
			out = append(out, strings.TrimPrefix(l, "?"))
		}
	}
	return out
}

// git clone --filter=blob:none through sshd gives a real partial clone,
// even from a device that must first catch up, and a later fetch of a
// blob it left out (git show, git checkout) works through gitmesh too.
func TestSSHPartialCloneFetchesMissingBlobsLater(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	a, cc := c.Hosts["a"], c.Hosts["c"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	first := c.Commit(work, "README", "first version\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
	c.WaitConverged("team/app")
	// c is away for the second push: the clone from c catches up first.
	second := c.Commit(work, "README", "second version\n")
	sshPushWithout(t, c, "a", work, []string{"c"}, a.URL("team/app"), "main")
	oldBlob := strings.TrimSpace(c.LocalGit(work, "rev-parse", first+":README"))

	clone := filepath.Join(c.Dir, "partial")
	r := cc.Git("alice", "", "clone", "--filter=blob:none", cc.URL("team/app"), clone)
	if r.Code != 0 {
		t.Fatalf("partial clone from c: exit %d: %s", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stderr, "filtering not recognized") {
		t.Fatalf("the server ignored the filter:\n%s", r.Stderr)
	}
	if got := strings.TrimSpace(c.LocalGit(clone, "rev-parse", "HEAD")); got != second {
		t.Fatalf("partial clone has %s, want %s", got, second)
	}
	missing := missingObjects(c, clone)
	if !strings.Contains(strings.Join(missing, " "), oldBlob) {
		t.Fatalf("the clone is not partial: the first README (%s) is not missing; missing: %v", oldBlob, missing)
	}

	// The blob it left out comes on demand, through c's sshd and gitmesh.
	r = cc.Git("alice", clone, "show", first+":README")
	if r.Code != 0 || r.Stdout != "first version\n" {
		t.Fatalf("git show of a missing blob: exit %d, %q: %s", r.Code, r.Stdout, r.Stderr)
	}
	if now := missingObjects(c, clone); strings.Contains(strings.Join(now, " "), oldBlob) {
		t.Fatalf("the first README is still missing after git show fetched it")
	}
	cc.MustGit("alice", clone, "checkout", "-q", first)
	if got := readFile(t, filepath.Join(clone, "README")); got != "first version\n" {
		t.Fatalf("checkout of the first commit shows %q", got)
	}

	// A protocol v0 client is never given a filter (its later fetches by
	// id would need settings that serve staged refs): it gets a full clone
	// that works, with git's own warning.
	full := filepath.Join(c.Dir, "v0")
	r = cc.Git("alice", "", "-c", "protocol.version=0", "clone", "--filter=blob:none", cc.URL("team/app"), full)
	if r.Code != 0 {
		t.Fatalf("v0 clone: exit %d: %s", r.Code, r.Stderr)
	}
	if m := missingObjects(c, full); len(m) != 0 {
		t.Fatalf("a v0 client got a partial clone missing %v", m)
	}
}
