package e2e

import (
	"testing"

	"gitmesh/meshtest"
)

// Every admin command that names a repository or a device that is not
// registered says so in the same sentence, with the same exit code: one
// existence check, not one per command.
func TestUnknownNamesGetOneSentenceEverywhere(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	c.CreateRepo("a", "team/app", "alice")
	const (
		noRepo   = `gitmesh: repository "team/none" is not registered; 'gitmesh repo list' lists the registered ones` + "\n"
		noDevice = `gitmesh: device "zz" is not registered; 'gitmesh device list' lists the registered ones` + "\n"
	)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status", "team/none"}, 3, noRepo},
		{[]string{"log", "team/none"}, 3, noRepo},
		{[]string{"sync-log", "team/none"}, 3, noRepo},
		{[]string{"verify", "team/none"}, 3, noRepo},
		{[]string{"thaw", "team/none", "--promote", "a"}, 3, noRepo},
		{[]string{"sync-log", "--device", "zz"}, 1, noDevice},
		{[]string{"thaw", "team/app", "--promote", "zz"}, 1, noDevice},
		{[]string{"thaw", "--all", "--demote", "zz"}, 1, noDevice},
		{[]string{"device", "remove", "zz"}, 1, noDevice},
	} {
		r := c.Admin(tc.args...)
		if r.Code != tc.code || r.Stdout != "" || r.Stderr != tc.want {
			t.Errorf("gitmesh %q: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, r.Code, r.Stdout, r.Stderr, tc.code, tc.want)
		}
	}
}
