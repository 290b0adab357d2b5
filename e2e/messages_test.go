package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// "help" is never a name: a command given it as an argument refuses with
// one sentence pointing at --help, exit 2, and creates nothing.
func TestHelpIsNeverAName(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	c.CreateRepo("a", "team/app", "alice")
	c.MustAdmin("group", "add", "devs")
	before := c.MustAdmin("user", "list") + c.MustAdmin("group", "list") + c.MustAdmin("grants") + c.MustAdmin("device", "list") + c.MustAdmin("repo", "list")
	for _, args := range [][]string{
		{"user", "add", "help"},
		{"user", "remove", "help"},
		{"group", "add", "help"},
		{"group", "member", "add", "devs", "help"},
		{"grant", "help", "team/app", "read"},
		{"grant", "alice", "help", "read"},
		{"grant", "--group", "help", "team/app", "read"},
		{"revoke", "help", "team/app"},
		{"device", "add", "help", "--url", "/srv/x"},
		{"repo", "create", "help"},
		{"repo", "rename", "team/app", "help"},
		{"repo", "rename", "help", "team/new"},
		{"repo", "delete", "help", "--yes"},
		{"device", "set-url", "help", "/srv/x"},
		{"key", "add", "alice", "help"},
		{"access", "help", "team/app"},
		{"log", "help"},
		{"verify", "help"},
		{"thaw", "help", "--promote", "a"},
		{"thaw", "team/app", "--promote", "help"},
	} {
		r := c.Admin(args...)
		what := strings.Join(args, " ")
		if r.Code != 2 || r.Stdout != "" || !strings.Contains(r.Stderr, `"help"`) || !strings.Contains(r.Stderr, "reserved") {
			t.Errorf("gitmesh %s: exit %d, stdout %q, stderr %q; want exit 2 saying \"help\" is reserved", what, r.Code, r.Stdout, r.Stderr)
		}
		oneLine(t, what, r.Stderr)
	}
	after := c.MustAdmin("user", "list") + c.MustAdmin("group", "list") + c.MustAdmin("grants") + c.MustAdmin("device", "list") + c.MustAdmin("repo", "list")
	if after != before {
		t.Errorf("a command given \"help\" changed something:\n%s\nwas\n%s", after, before)
	}
	if _, err := os.Stat(filepath.Join(c.Devices["a"].Root, "help.git")); err == nil {
		t.Error("repo create help made a copy")
	}
	// Asking for help still works.
	if r := c.Admin("user", "add", "--help"); r.Code != 0 || !strings.Contains(r.Stdout, "create a user") {
		t.Errorf("user add --help: exit %d, %q", r.Code, r.Stdout)
	}
}

// thaw with a device that is not registered fails with one sentence, for
// one repository and for --all alike, before waiting for any lock.
func TestThawRefusesAnUnknownDevice(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	c.CreateRepo("a", "team/app", "alice")
	for _, args := range [][]string{
		{"thaw", "--all", "--promote", "NO-SUCH-DEVICE"},
		{"thaw", "--all", "--demote", "NO-SUCH-DEVICE"},
		{"thaw", "team/app", "--promote", "NO-SUCH-DEVICE"},
		{"thaw", "team/app", "--demote", "NO-SUCH-DEVICE"},
	} {
		r := c.Admin(args...)
		what := strings.Join(args, " ")
		if r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, `device "NO-SUCH-DEVICE" is not registered; 'gitmesh device list' lists the registered ones`) {
			t.Errorf("gitmesh %s: exit %d, stdout %q, stderr %q; want an error naming the unknown device", what, r.Code, r.Stdout, r.Stderr)
		}
		oneLine(t, what, r.Stderr)
	}
}

// Admin commands that change something say, in one line on stdout, what
// they did.
func TestAdminMutationsSayWhatTheyDid(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	key := filepath.Join(c.Dir, "bob.pub")
	if err := os.WriteFile(key, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDNlD+dbeP9p2FAjUcaTKKvX6Tf5mv8VFeyPLq14z25R bob@laptop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const fp = "SHA256:Nxn7FjHO6g4xdc9XQPh351TPSk457Q2Oh4VuTA7no+8"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"device", "add", "b", "--url", "/srv/b"}, "added device b"},
		{[]string{"repo", "create", "team/app"}, "created repository team/app on a, b;"},
		{[]string{"user", "add", "bob"}, "added user bob"},
		{[]string{"key", "add", "bob", key}, "added ssh-ed25519 key " + fp + " for user bob"},
		{[]string{"grant", "bob", "team/app", "write"}, "granted write on team/app to user bob"},
		{[]string{"group", "add", "devs"}, "added group devs"},
		{[]string{"group", "member", "add", "devs", "bob"}, "added user bob to group devs"},
		{[]string{"grant", "--group", "devs", "team/*", "read"}, "granted read on team/* to group devs"},
		{[]string{"revoke", "--group", "devs", "team/*"}, "revoked read on team/* from group devs"},
		{[]string{"group", "member", "remove", "devs", "bob"}, "removed user bob from group devs"},
		{[]string{"group", "remove", "devs"}, "removed group devs"},
		{[]string{"key", "remove", fp}, "removed key " + fp},
		{[]string{"user", "remove", "bob"}, "removed user bob"},
		{[]string{"repo", "rename", "team/app", "team/web"}, "renamed repository team/app to team/web; copies renamed on a"},
		{[]string{"repo", "delete", "team/web", "--yes"}, "deleted repository team/web and the grants on its name; copies removed from a"},
		{[]string{"device", "set-url", "b", "/srv/b2"}, "device b is now reached at /srv/b2"},
		{[]string{"device", "remove", "b"}, "removed device b"},
	} {
		r := c.Admin(tc.args...)
		what := strings.Join(tc.args, " ")
		if r.Code != 0 || r.Stderr != "" || strings.Count(r.Stdout, "\n") != 1 || !strings.HasPrefix(r.Stdout, tc.want) {
			t.Errorf("gitmesh %s: exit %d, stdout %q, stderr %q; want one line starting %q", what, r.Code, r.Stdout, r.Stderr, tc.want)
		}
	}
}

// An unknown repository gets the same sentence and exit 3 from every admin
// command that reads one; an unknown user in access gets a hint.
func TestUnknownNamesGetTheSameSentence(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	c.CreateRepo("a", "team/app", "alice")
	const want = `gitmesh: repository "team/nothing" is not registered; 'gitmesh repo list' lists the registered ones` + "\n"
	for _, args := range [][]string{
		{"log", "team/nothing"},
		{"verify", "team/nothing"},
		{"status", "team/nothing"},
		{"status", "--json", "team/nothing"},
		{"thaw", "team/nothing", "--promote", "a"},
		{"sync", "/team/nothing.git"},
		{"gc", "team/nothing"},
		{"repo", "rename", "team/nothing", "team/new"},
		{"repo", "delete", "team/nothing"},
	} {
		r := c.Admin(args...)
		if r.Code != 3 || r.Stdout != "" || r.Stderr != want {
			t.Errorf("gitmesh %s: exit %d, stdout %q, stderr %q; want exit 3 and %q", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, want)
		}
	}
	r := c.Admin("access", "nobody", "team/app")
	if r.Code == 0 || r.Stderr != `gitmesh: user "nobody" does not exist; add it with 'gitmesh user add nobody'`+"\n" {
		t.Errorf("access of an unknown user: exit %d, stderr %q", r.Code, r.Stderr)
	}
}
