package e2e

import (
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
