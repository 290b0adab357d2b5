package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// Pushes to a stage on b over one shared ssh connection: the second push
// logs in to b's sshd no more often than the first did. A changed
// known_hosts retires the master, so the next push logs in anew.
func TestSSHPeerConnectionsAreShared(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	a, b := c.Hosts["a"], c.Hosts["b"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	logins := func() int {
		return strings.Count(readFile(t, b.SSHDLog), "Accepted publickey for "+c.Login+" from 127.0.0.1 port")
	}
	push := func(content string) {
		t.Helper()
		c.Commit(work, "README", content)
		a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
		c.WaitConverged("team/app")
	}
	push("one\n")
	first := logins()
	if first == 0 {
		t.Fatal("b's sshd shows no login from a after a push staged there")
	}
	for i := 0; i < 3; i++ {
		push(strings.Repeat("x", i+2) + "\n")
	}
	if got := logins(); got != first {
		t.Fatalf("b's sshd saw %d logins after three more pushes, %d after the first: connections to peers are not shared", got, first)
	}
	// The directory holding the control sockets is this account's alone.
	socks, _ := filepath.Glob(filepath.Join(os.TempDir(), "gitmesh-ssh-*", "*", "*", "*"))
	if len(socks) == 0 {
		t.Fatal("no control socket under the temporary directory's gitmesh-ssh-UID")
	}
	for _, p := range socks {
		fi, err := os.Stat(filepath.Dir(p))
		if err != nil {
			continue // another test's generation, retired meanwhile
		}
		if fi.Mode().Perm() != 0o700 {
			t.Fatalf("control directory %s has mode %#o, want 0700", filepath.Dir(p), fi.Mode().Perm())
		}
	}

	// An operator edits known_hosts: masters opened under the old one are
	// not used again.
	kh := readFile(t, c.KnownHosts)
	if err := os.WriteFile(c.KnownHosts, []byte("# rotated\n"+kh), 0o644); err != nil {
		t.Fatal(err)
	}
	push("after the rotation\n")
	if got := logins(); got <= first {
		t.Fatalf("b's sshd saw no new login after known_hosts changed (%d logins): an old master was reused", got)
	}
}

// With sharing off (ssh_control_persist = "0s") every hop logs in anew.
func TestSSHPeerConnectionSharingOff(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	c.Settings = `ssh_control_persist = "0s"`
	for name := range c.Hosts {
		c.SetPeerSettings(name, c.ClusterKey, c.KnownHosts)
	}
	a, b := c.Hosts["a"], c.Hosts["b"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	logins := func() int {
		return strings.Count(readFile(t, b.SSHDLog), "Accepted publickey for "+c.Login+" from 127.0.0.1 port")
	}
	var counts []int
	for i := 0; i < 2; i++ {
		c.Commit(work, "README", strings.Repeat("y", i+1))
		a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
		c.WaitConverged("team/app")
		counts = append(counts, logins())
	}
	if counts[1] <= counts[0] {
		t.Fatalf("with sharing off, b's sshd saw %v logins after two pushes; want a new login per push", counts)
	}
}
