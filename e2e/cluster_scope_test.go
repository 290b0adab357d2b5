package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// The cluster key's reach (issue 12, item 9): it logs in only from the
// cluster_from addresses, and reads or stages only registered repositories.

func TestClusterKeyOnlyFromClusterAddresses(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a")
	a := c.Hosts["a"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")

	// Loopback has many addresses: the devices are 127.0.0.1, an
	// intruder holding the cluster key comes from 127.0.0.2.
	c.Settings = `cluster_from = "127.0.0.1,::1"`
	c.SetPeerSettings("a", c.ClusterKey, c.KnownHosts)
	c.RefreshAuthorizedKeys()
	lines := readFile(t, a.AuthorizedKeys)
	for _, l := range strings.Split(lines, "\n") {
		switch {
		case strings.Contains(l, "serve --cluster") && !strings.HasPrefix(l, `from="127.0.0.1,::1",command=`):
			t.Fatalf("the cluster key's line is not limited to cluster_from:\n%s", l)
		case strings.Contains(l, "serve alice") && strings.Contains(l, "from="):
			t.Fatalf("a user's line is limited by cluster_from:\n%s", l)
		}
	}
	pub := strings.Fields(readFile(t, c.ClusterKey+".pub"))
	if r := a.Run(nil, "keys-command", c.Login, pub[0], pub[1]); !strings.HasPrefix(r.Stdout, `from="127.0.0.1,::1",command=`) {
		t.Fatalf("keys-command's cluster line is not limited: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}

	from := func(key, addr string) meshtest.Result {
		return a.GitEnv(key, []string{"GIT_SSH_COMMAND=" + c.GitSSHCommand(key) + " -b " + addr}, "", "ls-remote", a.URL("team/app"))
	}
	if r := from(c.ClusterKey, "127.0.0.1"); r.Code != 0 || !strings.Contains(r.Stdout, "refs/heads/main") {
		t.Fatalf("cluster key from 127.0.0.1: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}
	if r := from(c.ClusterKey, "127.0.0.2"); r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "Permission denied") {
		t.Fatalf("cluster key from 127.0.0.2 was let in: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}
	if r := from(c.UserKey("alice"), "127.0.0.2"); r.Code != 0 || !strings.Contains(r.Stdout, "refs/heads/main") {
		t.Fatalf("a user key from 127.0.0.2: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestBadClusterFromIsRefused(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a")
	a := c.Hosts["a"]
	for _, bad := range []string{`10.0.0.1"`, "10.0.0.1,\n10.0.0.2", "10.0.0.1, 10.0.0.2", "10.0.0.1,,10.0.0.2", `10.0.0.1",command="sh`, "!"} {
		for _, cmd := range [][]string{{"authorized-keys"}, {"--cluster-from", bad, "authorized-keys"}} {
			env := []string{"GITMESH_CLUSTER_FROM=" + bad}
			if len(cmd) > 1 {
				env = nil
			}
			r := a.Run(env, cmd...)
			if r.Code == 0 || r.Stdout != "" || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "cluster_from") {
				t.Errorf("cluster_from %q (%v): exit %d, stdout %q, stderr %q; want one sentence and nothing printed", bad, cmd, r.Code, r.Stdout, r.Stderr)
			}
		}
	}
}

func TestClusterKeyServesOnlyRegisteredRepositories(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a")
	a := c.Hosts["a"]
	c.CreateRepo("a", "team/app", "alice")
	// A git directory under the root that gitmesh does not know.
	stash := filepath.Join(a.Root, "secret", "stash.git")
	for _, args := range [][]string{{"init", "-q", "--bare", stash}, {"-C", stash, "config", "user.name", "x"}} {
		cmd := exec.Command("git", args...)
		cmd.Env = meshtest.GitEnv(c.Dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	work := c.Work("alice")
	c.Commit(work, "README", "private\n")
	c.LocalGit(work, "push", "-q", stash, "main")

	key := c.ClusterKey
	if r := a.GitEnv(key, nil, "", "ls-remote", a.URL("secret/stash")); r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "repository not found") {
		t.Fatalf("cluster key read an unregistered repository: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}
	r := a.GitEnv(key, nil, work, "push", a.URL("secret/stash"), "main:refs/gitmesh/stage/heads/x")
	if r.Code == 0 || !strings.Contains(r.Stderr, "repository not found") {
		t.Fatalf("cluster key staged into an unregistered repository: exit %d, %s", r.Code, r.Stderr)
	}
	if out := c.LocalGit(stash, "for-each-ref"); strings.Contains(out, "gitmesh") {
		t.Fatalf("the unregistered repository gained refs: %s", out)
	}
	if r := a.GitEnv(key, nil, "", "ls-remote", a.URL("team/app")); r.Code != 0 {
		t.Fatalf("cluster key cannot read a registered repository: exit %d, %s", r.Code, r.Stderr)
	}
	// Nor can it plant objects git's fsck refuses in a registered one.
	tree := strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD^{tree}"))
	bad := commitObject(t, c.Cluster, work, tree, "", "author A <a@example.com> 1700000000 +0000\n", "no committer")
	r = a.GitEnv(key, nil, work, "push", a.URL("team/app"), bad+":refs/gitmesh/stage/heads/main")
	if r.Code == 0 || !strings.Contains(r.Stderr, "missingCommitter") {
		t.Fatalf("a staging push of a commit without committer: exit %d, %s", r.Code, r.Stderr)
	}
	if got := c.Rev("a", "team/app", "refs/gitmesh/stage/heads/main"); got != "" {
		t.Fatalf("the refused stage moved to %s", got)
	}
}
