package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

const notFound = "gitmesh: repository not found, or you do not have access to it\n"

// fetchAs and pushAs are what a git client's ssh would ask serve for.
func fetchAs(d *meshtest.Device, user, repo string) meshtest.Result {
	return serveAs(d, user, "git-upload-pack '"+repo+".git'")
}

func pushAs(d *meshtest.Device, user, repo string) meshtest.Result {
	return serveAs(d, user, "git-receive-pack '"+repo+".git'")
}

// wantDenied checks the one answer for "no access" and "no such repository".
func wantDenied(t *testing.T, what string, r meshtest.Result) {
	t.Helper()
	if r.Code != 3 || r.Stderr != notFound || r.Stdout != errPacket(strings.TrimSuffix(notFound, "\n")) {
		t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 3 and %q", what, r.Code, r.Stdout, r.Stderr, notFound)
	}
}

// wantAllowed checks that serve got past access control and ran git: git
// spoke on stdout, gitmesh said nothing. (git itself then stops at the end
// of its empty stdin.)
func wantAllowed(t *testing.T, what string, r meshtest.Result) {
	t.Helper()
	if r.Stdout == "" || strings.Contains(r.Stderr, "gitmesh:") {
		t.Errorf("%s: exit %d, stderr %q, stdout %.80q; want git to run", what, r.Code, r.Stderr, r.Stdout)
	}
}

// newAccessCluster is one device with team/app (holding a commit), pushed
// by its owner alice.
func newAccessCluster(t *testing.T) (*meshtest.Cluster, *meshtest.Device, string) {
	c := meshtest.NewCluster(t, "a")
	a := c.Devices["a"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	a.MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	return c, a, work
}

func TestNoGrantMeansNoAccessAndNoExistenceLeak(t *testing.T) {
	c, a, _ := newAccessCluster(t)
	c.User("mallory")
	for _, verb := range []string{"git-upload-pack", "git-receive-pack", "git-upload-archive"} {
		for _, repo := range []string{"team/app", "team/missing", "nothing"} {
			for _, user := range []string{"mallory", "ghost-user-never-added"} {
				wantDenied(t, user+" "+verb+" "+repo, serveAs(a, user, verb+" '"+repo+".git'"))
			}
		}
	}
	// The owner gets in; the answer above was about access, not a broken repo.
	wantAllowed(t, "alice fetch", fetchAs(a, "alice", "team/app"))
	// Through real git too: a clone and a push both fail with the same sentence.
	r := a.Git("mallory", "", "clone", "-q", meshtest.URL("team/app"), filepath.Join(c.Dir, "m1"))
	r2 := a.Git("mallory", "", "clone", "-q", meshtest.URL("team/missing"), filepath.Join(c.Dir, "m2"))
	if r.Code == 0 || r2.Code == 0 || !strings.Contains(r.Stderr, strings.TrimSpace(notFound)) ||
		strings.ReplaceAll(r.Stderr, "m1", "") != strings.ReplaceAll(r2.Stderr, "m2", "") {
		t.Errorf("clones of a forbidden and a missing repository differ:\n%q\n%q", r.Stderr, r2.Stderr)
	}
	// A user without a grant changes nothing by trying to push.
	before := c.Rev("a", "team/app", "refs/heads/main")
	mwork := c.Work("mallory")
	c.Commit(mwork, "EVIL", "x\n")
	if r := a.Git("mallory", mwork, "push", "-q", meshtest.URL("team/app"), "main"); r.Code == 0 {
		t.Fatalf("mallory pushed without a grant")
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != before {
		t.Fatalf("main moved from %s to %s after a refused push", before, got)
	}
}

func TestReadGrantCannotPush(t *testing.T) {
	c, a, _ := newAccessCluster(t)
	c.User("bob")
	c.MustAdmin("grant", "bob", "team/app", "read")
	wantAllowed(t, "bob fetch", fetchAs(a, "bob", "team/app"))
	if r := pushAs(a, "bob", "team/app"); r.Code != 3 || !strings.Contains(r.Stderr, "you may read team/app but not push to it") {
		t.Errorf("bob push with a read grant: exit %d, %q; want exit 3 and the read-only sentence", r.Code, r.Stderr)
	}

	clone := filepath.Join(c.Dir, "bob")
	a.MustGit("bob", "", "clone", "-q", meshtest.URL("team/app"), clone)
	before := c.Rev("a", "team/app", "refs/heads/main")
	c.Commit(clone, "README", "bob was here\n")
	r := a.Git("bob", clone, "push", "-q", "origin", "main")
	if r.Code == 0 || !strings.Contains(r.Stderr, "you may read team/app but not push to it") {
		t.Fatalf("bob's push with a read grant: exit %d, %s", r.Code, r.Stderr)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != before {
		t.Fatalf("main moved after a read-only user's push")
	}
	// Raising the grant to write (replacing the read grant) lets bob push.
	c.MustAdmin("grant", "bob", "team/app", "write")
	a.MustGit("bob", clone, "push", "-q", "origin", "main")
	// Admin implies write.
	c.MustAdmin("grant", "bob", "team/app", "admin")
	wantAllowed(t, "bob push as admin", pushAs(a, "bob", "team/app"))
}

func TestGroupGrant(t *testing.T) {
	c, a, _ := newAccessCluster(t)
	c.User("carol")
	c.User("dan")
	c.MustAdmin("group", "add", "devs")
	c.MustAdmin("group", "member", "add", "devs", "carol")
	// The flag may follow the positional arguments.
	c.MustAdmin("grant", "team/*", "write", "--group", "devs")

	wantAllowed(t, "carol push via devs", pushAs(a, "carol", "team/app"))
	wantDenied(t, "dan, not a member", fetchAs(a, "dan", "team/app"))
	clone := filepath.Join(c.Dir, "carol")
	a.MustGit("carol", "", "clone", "-q", meshtest.URL("team/app"), clone)
	head := c.Commit(clone, "CAROL", "1\n")
	a.MustGit("carol", clone, "push", "-q", "origin", "main")
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != head {
		t.Fatalf("carol's push via the group did not land: %s", got)
	}

	out := c.MustAdmin("access", "carol", "team/app")
	if !strings.Contains(out, "carol may read and write") || !strings.Contains(out, "team/*") || !strings.Contains(out, "group devs") {
		t.Errorf("access carol team/app:\n%s", out)
	}
	if got := c.MustAdmin("group", "member", "list", "devs"); got != "carol\n" {
		t.Errorf("group member list devs = %q", got)
	}
	if got := c.MustAdmin("group", "list"); got != "devs\tcarol\n" {
		t.Errorf("group list = %q", got)
	}

	// Leaving the group takes effect on the next connection.
	c.MustAdmin("group", "member", "remove", "devs", "carol")
	wantDenied(t, "carol after leaving devs", fetchAs(a, "carol", "team/app"))
	// So does revoking the group's grant, and removing the group.
	c.MustAdmin("group", "member", "add", "devs", "dan")
	wantAllowed(t, "dan via devs", fetchAs(a, "dan", "team/app"))
	if out := c.MustAdmin("revoke", "--group", "devs", "team/*"); !strings.Contains(out, "revoked write on team/* from group devs") {
		t.Errorf("revoke said %q", out)
	}
	wantDenied(t, "dan after the group's grant is revoked", fetchAs(a, "dan", "team/app"))
	c.MustAdmin("grant", "--group", "devs", "team/app", "read")
	wantAllowed(t, "dan via devs again", fetchAs(a, "dan", "team/app"))
	c.MustAdmin("group", "remove", "devs")
	wantDenied(t, "dan after devs is removed", fetchAs(a, "dan", "team/app"))
	if out := c.MustAdmin("grants"); strings.Contains(out, "devs") {
		t.Errorf("a removed group's grants remain:\n%s", out)
	}
}

func TestRevokeTakesEffectOnNextConnection(t *testing.T) {
	c, a, work := newAccessCluster(t)
	wantAllowed(t, "alice push before revoke", pushAs(a, "alice", "team/app"))
	out := c.MustAdmin("revoke", "alice", "/team/app.git")
	if out != "revoked write on team/app from user alice\n" {
		t.Errorf("revoke said %q", out)
	}
	wantDenied(t, "alice push after revoke", pushAs(a, "alice", "team/app"))
	wantDenied(t, "alice fetch after revoke", fetchAs(a, "alice", "team/app"))
	c.Commit(work, "LATE", "late\n")
	if r := a.Git("alice", work, "push", "-q", meshtest.URL("team/app"), "main"); r.Code == 0 {
		t.Fatalf("push after revoke succeeded")
	}
	// Revoking again is an error that changes nothing.
	r := c.Admin("revoke", "alice", "team/app")
	if r.Code == 0 || !strings.Contains(r.Stderr, "user alice has no grant on team/app") {
		t.Errorf("second revoke: exit %d, %q", r.Code, r.Stderr)
	}
}

// Patterns: '*' matches within one path segment and never crosses '/'.
func TestPatternGrants(t *testing.T) {
	c, a, _ := newAccessCluster(t)
	for _, repo := range []string{"team/sub/deep", "other/app", "top", "teamx/app"} {
		c.CreateRepo("a", repo)
	}
	c.User("erin")
	c.MustAdmin("grant", "erin", "team/*", "read")
	wantAllowed(t, "erin team/app", fetchAs(a, "erin", "team/app"))
	for _, repo := range []string{"team/sub/deep", "other/app", "top", "teamx/app"} {
		wantDenied(t, "erin "+repo, serveAs(a, "erin", "git-upload-pack '"+repo+"'"))
	}
	if r := pushAs(a, "erin", "team/app"); r.Code != 3 || !strings.Contains(r.Stderr, "you may read team/app but not push to it") {
		t.Errorf("erin's push with read through team/*: exit %d, %q; want the read-only sentence", r.Code, r.Stderr)
	}

	c.MustAdmin("grant", "erin", "*", "read")
	wantAllowed(t, "erin top via *", serveAs(a, "erin", "git-upload-archive 'top'"))
	wantDenied(t, "erin other/app with *", fetchAs(a, "erin", "other/app"))
	c.MustAdmin("grant", "erin", "*/*/*", "write")
	wantAllowed(t, "erin push team/sub/deep via */*/*", serveAs(a, "erin", "git-receive-pack 'team/sub/deep'"))
	c.MustAdmin("grant", "erin", "te*x/a*", "read")
	wantAllowed(t, "erin teamx/app via te*x/a*", fetchAs(a, "erin", "teamx/app"))

	// A pattern covers repositories created after the grant.
	c.CreateRepo("a", "team/later")
	wantAllowed(t, "erin team/later", serveAs(a, "erin", "git-upload-archive 'team/later'"))

	// access explains: the strongest grant wins, every match listed.
	c.MustAdmin("grant", "erin", "team/app", "write")
	var e struct {
		Level   string `json:"level"`
		Matches []struct {
			Pattern, Level, Group string
		} `json:"matches"`
	}
	if err := json.Unmarshal([]byte(c.MustAdmin("access", "erin", "team/app", "--json")), &e); err != nil {
		t.Fatal(err)
	}
	if e.Level != "write" || len(e.Matches) != 2 || e.Matches[0].Pattern != "team/app" || e.Matches[1].Pattern != "team/*" {
		t.Errorf("access erin team/app --json = %+v", e)
	}
	out := c.MustAdmin("access", "erin", "nowhere/x")
	if !strings.Contains(out, "erin may not use nowhere/x") || !strings.Contains(out, "deny by default") ||
		!strings.Contains(out, "does not exist") {
		t.Errorf("access erin nowhere/x:\n%s", out)
	}
}

// Bad admin input: one sentence on stderr, a non-zero exit, nothing changed.
func TestAccessCommandsRefuseBadInput(t *testing.T) {
	c, _, _ := newAccessCluster(t)
	c.MustAdmin("group", "add", "devs")
	grants := c.MustAdmin("grants")
	groups := c.MustAdmin("group", "list")
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"grant", "alice", "team/app", "owner"}, 2, "unknown access level"},
		{[]string{"grant", "alice", "team/app"}, 2, "takes 3 argument"},
		{[]string{"grant", "alice", "team/app", "read", "extra"}, 2, "takes 3 argument"},
		{[]string{"grant", "--group", "devs", "alice", "team/app", "read"}, 2, "takes 2 argument"},
		{[]string{"grant", "--group", "", "team/*", "read"}, 2, "bad group name"},
		{[]string{"grant", "nobody", "team/app", "read"}, 1, `user "nobody" does not exist; add it with 'gitmesh user add nobody'`},
		{[]string{"grant", "--group", "nogroup", "team/*", "read"}, 1, `group "nogroup" does not exist; add it with 'gitmesh group add nogroup'`},
		{[]string{"grant", "alice", "team/missing", "read"}, 1, `repository "team/missing" is not registered`},
		{[]string{"grant", "alice", "team/**", "read"}, 2, "'**' is not supported"},
		{[]string{"grant", "alice", "../*", "read"}, 2, "bad repository name"},
		{[]string{"grant", "alice", "team/*/", "read"}, 2, "bad repository name"},
		{[]string{"grant", "al;ce", "team/app", "read"}, 2, "bad user name"},
		{[]string{"grant", "alice", "team/app", "read", "--bogus"}, 2, "unknown flag"},
		{[]string{"revoke", "alice", "team/*"}, 1, "no grant on team/*"},
		{[]string{"revoke", "--group", "devs", "team/app"}, 1, "no grant on team/app"},
		{[]string{"group", "add", "devs"}, 1, "already exists"},
		{[]string{"group", "add", "-x"}, 2, "flag provided but not defined"},
		{[]string{"group", "add", "a b"}, 2, "bad group name"},
		{[]string{"group", "remove", "nogroup"}, 1, `unknown group "nogroup"`},
		{[]string{"group", "member", "add", "devs", "nobody"}, 1, `user "nobody" does not exist`},
		{[]string{"group", "member", "add", "nogroup", "alice"}, 1, `group "nogroup" does not exist`},
		{[]string{"group", "member", "remove", "devs", "alice"}, 1, "not a member"},
		{[]string{"access", "nobody", "team/app"}, 1, `user "nobody" does not exist; add it with 'gitmesh user add nobody'`},
		{[]string{"access", "alice", "team/*"}, 2, "one repository name"},
		{[]string{"access", "alice", "../x"}, 2, "one repository name"},
		{[]string{"access", "alice"}, 2, "takes 2 argument"},
	}
	for _, tt := range tests {
		r := c.Admin(tt.args...)
		what := strings.Join(tt.args, " ")
		if r.Code != tt.code || !strings.Contains(r.Stderr, tt.msg) || r.Stdout != "" {
			t.Errorf("gitmesh %s: exit %d, stdout %q, stderr %q; want exit %d saying %q", what, r.Code, r.Stdout, r.Stderr, tt.code, tt.msg)
		}
		oneLine(t, what, r.Stderr)
	}
	if got := c.MustAdmin("grants"); got != grants {
		t.Errorf("bad input changed the grants:\n%s\nwas\n%s", got, grants)
	}
	if got := c.MustAdmin("group", "list"); got != groups {
		t.Errorf("bad input changed the groups: %q, was %q", got, groups)
	}
}

// A symlink under the repo root that leads outside it is refused by serve:
// exit 2, one line, no git started, nothing outside touched.
func TestServeRefusesSymlinkOutOfRoot(t *testing.T) {
	c, a, _ := newAccessCluster(t)
	outside := filepath.Join(c.Dir, "outside")
	// An operator "moved" team/app out of the root and left a link behind,
	// and linked a whole directory outside.
	if err := os.Rename(filepath.Join(a.Root, "team", "app.git"), filepath.Join(outside+"-app.git")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside+"-app.git", filepath.Join(a.Root, "team", "app.git")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(outside, "evil.git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(a.Root, "linked")); err != nil {
		t.Fatal(err)
	}
	c.MustAdmin("grant", "alice", "*/*", "write")
	pathEnv, ran := gitSpy(t)
	before, err := meshtest.Snapshot(c.Dir, func(p string) bool { return strings.HasSuffix(p, ".log") })
	if err != nil {
		t.Fatal(err)
	}
	// A registered repository whose path leads out is refused as such; an
	// unregistered one behind a link is simply not found (the path is
	// looked at only after the access check).
	for cmd, want := range map[string]string{
		"git-upload-pack 'team/app.git'":     "leads outside the repository root",
		"git-receive-pack 'team/app.git'":    "leads outside the repository root",
		"git-upload-pack 'linked/evil.git'":  "repository not found",
		"git-receive-pack '/linked/new.git'": "repository not found",
	} {
		r := serveAs(a, "alice", cmd, pathEnv)
		code := 2
		if strings.Contains(want, "not found") {
			code = 3
		}
		if r.Code != code || !onlyRefusal(r) || !strings.Contains(r.Stderr, want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", cmd, r.Code, r.Stdout, r.Stderr)
		}
		oneLine(t, cmd, r.Stderr)
		if g := ran(); g != "" {
			t.Errorf("%s: started git: %s", cmd, g)
		}
	}
	// repo create through the link is refused as well.
	if r := a.Run(nil, "repo", "create", "linked/made"); r.Code != 2 || !strings.Contains(r.Stderr, "leads outside") {
		t.Errorf("repo create linked/made: exit %d, %s", r.Code, r.Stderr)
	}
	after, err := meshtest.Snapshot(c.Dir, func(p string) bool { return strings.HasSuffix(p, ".log") })
	if err != nil {
		t.Fatal(err)
	}
	if d := meshtest.SnapshotDiff(before, after); len(d) > 0 {
		t.Errorf("refused requests changed files:\n%s", meshtest.SnapshotString(d))
	}
}
