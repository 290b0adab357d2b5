package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// verify reads the copies on an ssh:// device with one request to it
// (gitmesh-digests), however many repositories there are, and still finds
// a copy changed by hand.
func TestVerifyAsksEachSSHPeerOnce(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	a, b := c.Hosts["a"], c.Hosts["b"]
	repos := []string{"team/app", "team/one", "team/two", "team/three"}
	for _, r := range repos {
		c.CreateRepo("a", r, "alice")
	}
	work := c.Work("alice")
	c.Commit(work, "README", "one\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
	c.WaitConverged("team/app")
	sessions := func() int { return strings.Count(readFile(t, b.SSHDLog), "serve --cluster' for") }
	before := sessions()
	r := a.Run(nil, "verify")
	if r.Code != 0 {
		t.Fatalf("verify of a healthy cluster: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, repo := range repos {
		if !strings.Contains(r.Stdout, repo+": 3 copies match their recorded versions") {
			t.Fatalf("verify does not say %s's 3 copies match:\n%s", repo, r.Stdout)
		}
	}
	if got := sessions() - before; got != 1 {
		t.Fatalf("verify of %d repositories opened %d sessions on b, want 1", len(repos), got)
	}

	// Someone moves a branch in b's copy by hand.
	c.LocalGit(work, "push", "-q", filepath.Join(b.Root, "team/app.git"), "main:side")
	r = a.Run(nil, "verify")
	if r.Code == 0 || !strings.Contains(r.Stdout, "team/app on b: refs differ from those recorded") ||
		!strings.Contains(r.Stdout, "team/one: 3 copies match") {
		t.Fatalf("verify after a change by hand on b: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// A device whose gitmesh does not know the request answers "unknown
	// command", as any serve that is not --cluster does: here a's
	// requests log in with a user's key, whose forced command is serve.
	c.SetPeerSettings("a", c.UserKey("alice"), c.KnownHosts)
	r = a.Run(nil, "verify", "team/one")
	if r.Code != 1 || !strings.Contains(r.Stdout, "team/one on b: cannot read the copy: the device's gitmesh is too old to answer verify's digests request; upgrade it") {
		t.Fatalf("verify against a gitmesh that does not know the digests request: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// The digests request answers for registered repositories only, with the
// digest gitmesh recorded; a git directory gitmesh does not know is
// "missing", like a name that names nothing. Bad input is one sentence on
// stderr and nothing on stdout; a user's key may not ask at all.
func TestDigestsRequestServesRegisteredRepositoriesOnly(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b")
	b := c.Hosts["b"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "one\n")
	c.Hosts["a"].MustGit("alice", work, "push", "-q", c.Hosts["a"].URL("team/app"), "main")
	c.WaitConverged("team/app")
	c.LocalGit("", "init", "-q", "--bare", filepath.Join(b.Root, "team", "secret.git"))
	ask := func(key, input string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := b.SSHCommand(key, nil, "gitmesh-digests")
		cmd.Stdin = strings.NewReader(input)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	out, errs, code := ask(c.ClusterKey, "team/app\nteam/secret\nteam/none\n")
	var recorded string
	if err := c.DB().QueryRow(`SELECT v.refs_digest FROM working_copy_versions v JOIN devices d ON d.id = v.device_id
		JOIN repositories r ON r.id = v.repository_id WHERE d.name = 'b' AND r.name = 'team/app'`).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^ok ` + recorded + ` [0-9a-f]{64} team/app\nmissing team/secret\nmissing team/none\n$`)
	if code != 0 || !want.MatchString(out) {
		t.Fatalf("digests request: exit %d\n%s%s\nwant the recorded digest %s for team/app, missing for the others", code, out, errs, recorded)
	}
	for _, bad := range []string{"../etc\n", "team/app\n/etc/passwd\n", strings.Repeat("x", 5000) + "\n"} {
		out, errs, code := ask(c.ClusterKey, bad)
		if code == 0 || out != "" || strings.Count(strings.TrimSpace(errs), "\n") != 0 || strings.Contains(errs, b.Root) {
			t.Fatalf("digests request for %.40q: exit %d, stdout %q, stderr %q; want one sentence and nothing on stdout", bad, code, out, errs)
		}
	}
	if out, errs, code := ask(c.UserKey("alice"), "team/app\n"); code == 0 || out != "" {
		t.Fatalf("a user's digests request: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
