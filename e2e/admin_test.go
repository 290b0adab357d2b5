package e2e

import (
	"strings"
	"testing"

	"gitmesh/meshtest"
)

func TestAdminCommandsRefuseBadInputWithOneSentence(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no command given"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"key"}, 2, "key needs one of"},
		{[]string{"user", "frob"}, 2, `unknown command "frob" after "user"`},
		{[]string{"device", "add", "b"}, 2, "needs --url"},
		{[]string{"device", "add", "b", "--url", "ssh://git@host:notaport"}, 2, "port"},
		{[]string{"device", "add", "b", "--url", "relative/path"}, 2, "absolute path"},
		{[]string{"device", "add", "bad name", "--url", "/x"}, 2, "bad device name"},
		{[]string{"user", "add", "-bob"}, 2, ""},
		{[]string{"user", "add", "Bad Name"}, 2, "bad user name"},
		{[]string{"status", "team/nothing"}, 3, `repository "team/nothing" is not registered; 'gitmesh repo list' lists the registered ones`},
		{[]string{"repo", "create", "../escape"}, 2, "repository name"},
		{[]string{"device", "list", "extra"}, 2, "takes no arguments"},
		{[]string{"--config", "/nonexistent.toml", "repo", "list"}, 1, "no such file"},
	} {
		r := c.Admin(tc.args...)
		if r.Code != tc.code || r.Stdout != "" || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("gitmesh %q: exit %d (want %d), stdout %q, stderr %q (want %q)", tc.args, r.Code, tc.code, r.Stdout, r.Stderr, tc.want)
		}
	}
	if out := c.MustAdmin("device", "list"); strings.Count(out, "\n") != 1 {
		t.Fatalf("bad input changed the devices:\n%s", out)
	}
}

func TestRemoveUsersAndDevices(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	pushedAlone(t, c, "a")
	if out := c.MustAdmin("user", "list"); out != "alice\n" {
		t.Fatalf("user list: %q", out)
	}
	// a holds the only copy: removing it would lose the repository.
	if r := c.Admin("device", "remove", "a"); r.Code == 0 || !strings.Contains(r.Stderr, "only newest copy") {
		t.Fatalf("device remove of the sole holder: exit %d, %s", r.Code, r.Stderr)
	}
	c.Devices["b"].MustGit("alice", "", "ls-remote", meshtest.URL("team/app"))
	// a is still one of team/app's holders: drain it first, or (a dead
	// device whose copies are elsewhere) --force.
	if r := c.Admin("device", "remove", "a"); r.Code != 2 || !strings.Contains(r.Stderr, "gitmesh device drain a") {
		t.Fatalf("device remove of a holder: exit %d, %s", r.Code, r.Stderr)
	}
	c.MustAdmin("device", "remove", "a", "--force")
	if out := c.MustAdmin("device", "list"); strings.Contains(out, "a\t") {
		t.Fatalf("a still listed:\n%s", out)
	}
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", meshtest.URL("team/app")); out == "" {
		t.Fatal("b serves nothing after a was removed")
	}
	c.MustAdmin("user", "remove", "alice")
	if r := c.Devices["b"].Git("alice", "", "ls-remote", meshtest.URL("team/app")); r.Code == 0 {
		t.Fatal("a removed user can still read")
	}
	if r := c.Admin("user", "remove", "alice"); r.Code == 0 {
		t.Fatal("removing a missing user succeeded")
	}
}
