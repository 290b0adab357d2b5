package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// A reader who pushes learns that they may read but not push, and whom to
// ask; someone without read still cannot tell a forbidden repository from
// a missing one.
func TestReadOnlyPushSaysWhoGrantsWrite(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a")
	a := c.Hosts["a"]
	c.CreateRepo("a", "team/app", "alice")
	c.MustAdmin("grant", "alice", "team/app", "admin")
	// carol administers every team/ repository through a group.
	c.SSHUser("carol")
	c.MustAdmin("group", "add", "leads")
	c.MustAdmin("group", "member", "add", "leads", "carol")
	c.MustAdmin("grant", "--group", "leads", "team/*", "admin")
	c.SSHUser("bob")
	c.MustAdmin("grant", "bob", "team/app", "read")
	c.SSHUser("mallory")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
	before := c.Rev("a", "team/app", "refs/heads/main")

	clone := filepath.Join(c.Dir, "bob")
	a.MustGit("bob", "", "clone", "-q", a.URL("team/app"), clone)
	c.Commit(clone, "README", "bob was here\n")
	r := a.Git("bob", clone, "push", "-q", "origin", "main")
	want := "gitmesh: you may read team/app but not push to it; ask an administrator of team/app " +
		"(users with admin on it: alice, carol) for write access\n"
	// git shows gitmesh's line on ssh's stderr and the same line from the
	// ERR packet ("fatal: remote error: gitmesh: ..."), in either order.
	if r.Code == 0 || !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "remote error: "+want) {
		t.Fatalf("bob's push with a read grant: exit %d, stderr %q; want it to say %q", r.Code, r.Stderr, want)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != before {
		t.Fatalf("main moved from %s to %s after a reader's push", before, got)
	}

	// A repository nobody administers names nobody.
	c.CreateRepo("a", "solo", "alice")
	c.MustAdmin("grant", "bob", "solo", "read")
	r = a.Git("bob", clone, "push", "-q", a.URL("solo"), "main")
	if want := "gitmesh: you may read solo but not push to it; ask a gitmesh administrator for write access\n"; !strings.Contains(r.Stderr, want) {
		t.Fatalf("bob's push to solo: stderr %q, want it to say %q", r.Stderr, want)
	}

	// Without read, a push to team/app and to a missing repository give
	// the same answer, naming nobody.
	mwork := c.Work("mallory")
	c.Commit(mwork, "EVIL", "x\n")
	forbidden := a.Git("mallory", mwork, "push", "-q", a.URL("team/app"), "main")
	missing := a.Git("mallory", mwork, "push", "-q", a.URL("team/none"), "main")
	if forbidden.Code == 0 || sortedLines(forbidden.Stderr) != sortedLines(missing.Stderr) || forbidden.Code != missing.Code ||
		!strings.Contains(forbidden.Stderr, strings.TrimSpace(notFound)) || strings.Contains(forbidden.Stderr, "alice") {
		t.Fatalf("mallory's pushes differ or say too much:\nforbidden: %d %q\nmissing:   %d %q",
			forbidden.Code, forbidden.Stderr, missing.Code, missing.Stderr)
	}
}

// sortedLines is text's lines in order: what git prints from ssh's
// stderr and from the protocol may interleave either way.
func sortedLines(text string) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
