package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// pushWithout pushes from work to dev while the devices in away cannot be
// reached (their URLs lead nowhere), with a write quorum of one, waits
// for the catch-up the push starts to give up on them, and makes them
// reachable again: they lag behind dev until they read.
func pushWithout(t *testing.T, c *meshtest.Cluster, dev, work string, away []string, args ...string) {
	t.Helper()
	db := c.DB()
	for _, d := range away {
		if _, err := db.Exec(`UPDATE devices SET url = '/nonexistent/' || name WHERE name = $1`, d); err != nil {
			t.Fatal(err)
		}
	}
	cmd := c.Devices[dev].GitCmd("alice", work, append([]string{"push", "-q"}, args...)...)
	cmd.Env = append(cmd.Env, "GITMESH_WRITE_QUORUM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("push to %s without %v: %v: %s", dev, away, err, out)
	}
	meshtest.WaitDetached(t)
	restoreURLs(t, c)
}

// pushedAlone is pushed, with every other device away: dev holds the only
// copy of the acknowledged commit.
func pushedAlone(t *testing.T, c *meshtest.Cluster, dev string) (string, string) {
	t.Helper()
	c.CreateRepo(dev, "team/app", "alice")
	work := c.Work("alice")
	acked := c.Commit(work, "README", "acknowledged\n")
	var away []string
	for name := range c.Devices {
		if name != dev {
			away = append(away, name)
		}
	}
	pushWithout(t, c, dev, work, away, meshtest.URL("team/app"), "main")
	return work, acked
}

// sshPushed is pushed on a cluster of real sshd hosts: team/app created
// on a with one acknowledged commit, held by every device, and no push's
// catch-up still running. It returns the work tree.
func sshPushed(t *testing.T, c *meshtest.SSHCluster) string {
	t.Helper()
	a := c.Hosts["a"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "one\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	return work
}

// sshPushWithout is pushWithout on a cluster of real sshd hosts: the
// devices in away have their sshd stopped for the push.
func sshPushWithout(t *testing.T, c *meshtest.SSHCluster, dev, work string, away []string, args ...string) {
	t.Helper()
	quorum := func(settings string) {
		c.Settings = settings
		for name := range c.Hosts {
			c.SetPeerSettings(name, c.ClusterKey, c.KnownHosts)
		}
	}
	quorum("write_quorum = 1")
	defer quorum("")
	for _, d := range away {
		c.Hosts[d].StopSSHD()
	}
	c.Hosts[dev].MustGit("alice", work, append([]string{"push", "-q"}, args...)...)
	meshtest.WaitDetached(t)
	for _, d := range away {
		c.Hosts[d].StartSSHD()
	}
}

// A catch-up overtaken by a push: while device c's read waits in its
// fetch, a newer version is recorded and shown on every other holder, so
// no peer's refs are the version c set out for. The read catches up to
// the newer one instead of failing (a move's catch-up under pushes met
// this).
func TestCatchUpOvertakenByAPush(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	c.Commit(work, "README", "while c was away\n")
	pushWithout(t, c, "a", work, []string{"c"}, url, "main")

	// serve run as sshd would, with a git on its PATH that holds the
	// catch-up's fetch at a gate (a client git would put its own
	// exec-path first).
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gate, reached := filepath.Join(dir, "gate"), filepath.Join(dir, "reached")
	script := fmt.Sprintf(`#!/bin/sh
case " $* " in *" fetch --atomic "*)
	if [ -e %[1]q ]; then
		touch %[2]q
		i=0; while [ -e %[1]q ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
	fi;;
esac
exec %[3]q "$@"
`, gate, reached, real)
	if err := os.WriteFile(filepath.Join(dir, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(gate)
	read := start(func() meshtest.Result {
		env := []string{"SSH_ORIGINAL_COMMAND=git-upload-pack 'team/app.git'", "PATH=" + dir + ":" + os.Getenv("PATH")}
		cmd := c.Devices["c"].Command(env, "serve", "alice")
		cmd.Stdin = strings.NewReader("0000") // the client wants nothing
		return runCmd(cmd)
	})
	waitFor(t, "c's catch-up to start its fetch", exists(reached))

	newest := c.Commit(work, "README", "recorded while c fetched\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	for _, d := range []string{"a", "b"} {
		waitFor(t, d+" to show the newest push", func() bool {
			out, err := exec.Command(real, "--git-dir", copyDir(c, d, "team/app"), "rev-parse", "refs/heads/main").Output()
			return err == nil && strings.TrimSpace(string(out)) == newest
		})
	}
	os.Remove(gate)
	r := outcome(t, "c's read", read)
	if r.Code != 0 || !strings.Contains(r.Stdout, newest+" refs/heads/main") {
		t.Fatalf("read on c overtaken by a push: exit %d, %q, %s; want the newest push %s advertised", r.Code, r.Stdout, r.Stderr, newest)
	}
}
