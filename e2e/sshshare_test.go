package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitmesh/meshtest"
	"gitmesh/proc"
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

// A peer that dies without closing its connections (frozen: no FIN, no
// answer) behind an open master: the next push that needs it ends within
// about connect_timeout (ServerAliveInterval on the master), refused below
// the quorum rather than hanging until fetch_timeout; once the peer is
// back, the next push opens a new master and lands.
func TestSSHMasterToADeadPeerFailsWithinConnectTimeout(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	c.Settings = "write_quorum = 3" // every push needs b
	for name := range c.Hosts {
		c.SetPeerSettings(name, c.ClusterKey, c.KnownHosts)
	}
	a, b := c.Hosts["a"], c.Hosts["b"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "one\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main") // opens the masters
	c.WaitConverged("team/app")

	thaw := b.Freeze()
	c.Commit(work, "README", "two\n")
	start := time.Now()
	r := a.Git("alice", work, "push", "-q", a.URL("team/app"), "main")
	took := time.Since(start)
	// connect_timeout is 10s: three missed keepalives 3s apart, plus the
	// push's own work on a loaded machine. fetch_timeout (60s) would be
	// the bound without them.
	if r.Code == 0 || took > 30*time.Second {
		t.Fatalf("a push needing b, frozen behind an open master: exit %d after %s, want refused within 30s\n%s", r.Code, took.Round(time.Second), r.Stderr)
	}
	thaw()
	c.Commit(work, "README", "three\n")
	if r := a.Git("alice", work, "push", "-q", a.URL("team/app"), "main"); r.Code != 0 {
		t.Fatalf("a push after b came back: exit %d\n%s", r.Code, r.Stderr)
	}
}

// The control directory (ssh_control_dir here, so that no other test's
// sockets are touched) holds one master per peer, not per repository.
// Made loose, replaced by a symlink or given to another account, it is
// not used: hops go unshared, the log says why, pushes still land, and
// they still check host keys.
func TestSSHControlDirNotPrivateTurnsSharingOff(t *testing.T) {
	c, ctl := sshClusterWithControlDir(t, "")
	a, b := c.Hosts["a"], c.Hosts["b"]
	work := c.Work("alice")
	repos := []string{"team/app", "team/one", "team/two", "team/three"}
	n := 0
	push := func(repo string) meshtest.Result {
		t.Helper()
		n++
		c.Commit(work, "README", fmt.Sprintf("%d\n", n))
		return a.Git("alice", work, "push", "-q", a.URL(repo), "HEAD:main")
	}
	for _, repo := range repos {
		c.CreateRepo("a", repo, "alice")
		if r := push(repo); r.Code != 0 {
			t.Fatalf("push to %s: exit %d\n%s", repo, r.Code, r.Stderr)
		}
		c.WaitConverged(repo)
	}
	socks := controlSockets(ctl)
	if len(socks) == 0 || len(socks) > len(c.Hosts) {
		t.Fatalf("after pushes to %d repositories, %s holds %d control sockets %v; want one per peer (at most %d)", len(repos), ctl, len(socks), socks, len(c.Hosts))
	}
	logins := func() int {
		return strings.Count(readFile(t, b.SSHDLog), "Accepted publickey for "+c.Login+" from 127.0.0.1 port")
	}
	kh := readFile(t, c.KnownHosts)
	tampers := []struct {
		name          string
		apply, revert func() error
	}{
		{"made loose (0777)", func() error { return os.Chmod(ctl, 0o777) }, func() error { return os.Chmod(ctl, 0o700) }},
		{"replaced by a symlink", func() error {
			if err := os.Rename(ctl, ctl+".real"); err != nil {
				return err
			}
			return os.Symlink(ctl+".real", ctl)
		}, func() error {
			if err := os.Remove(ctl); err != nil {
				return err
			}
			return os.Rename(ctl+".real", ctl)
		}},
		{"given to another account", func() error { return os.Chown(ctl, 65534, 65534) }, func() error { return os.Chown(ctl, os.Getuid(), os.Getgid()) }},
	}
	for _, tc := range tampers {
		if err := tc.apply(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		before := logins()
		for i := 0; i < 2; i++ {
			if r := push("team/app"); r.Code != 0 {
				t.Fatalf("control directory %s: push: exit %d\n%s", tc.name, r.Code, r.Stderr)
			}
		}
		if got := logins() - before; got < 2 {
			t.Fatalf("control directory %s: b's sshd saw %d logins for two pushes, want one each at least (unshared)", tc.name, got)
		}
		if log := readFile(t, c.Devices["a"].Log); !strings.Contains(log, "ssh connections to peers are not shared") {
			t.Fatalf("control directory %s: a's log does not say why hops are not shared", tc.name)
		}
		// Unshared hops check b's host key as ever: with a wrong key
		// for b in known_hosts, a push that needs b is refused.
		wrong := strings.ReplaceAll(kh, b.HostKey, c.Hosts["c"].HostKey)
		if err := os.WriteFile(c.KnownHosts, []byte(wrong), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := push("team/app"); r.Code == 0 {
			t.Fatalf("control directory %s: a push needing b landed with a wrong host key for b in known_hosts", tc.name)
		}
		if err := os.WriteFile(c.KnownHosts, []byte(kh), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := tc.revert(); err != nil {
			t.Fatalf("%s: revert: %v", tc.name, err)
		}
	}

	// A directory whose sockets' paths would not fit in sun_path: ssh
	// would fail every hop ("ControlPath too long"), so gitmesh does not
	// share there, and pushes land.
	long := filepath.Join(filepath.Dir(ctl), strings.Repeat("x", 40))
	c.Settings = fmt.Sprintf("write_quorum = 3\nssh_control_dir = %q", long)
	for name := range c.Hosts {
		c.SetPeerSettings(name, c.ClusterKey, c.KnownHosts)
	}
	if r := push("team/app"); r.Code != 0 {
		t.Fatalf("control directory too long for a socket path: push: exit %d\n%s", r.Code, r.Stderr)
	}
	if log := readFile(t, c.Devices["a"].Log); !strings.Contains(log, "too long for a socket path") {
		t.Fatal("control directory too long for a socket path: a's log does not say why hops are not shared")
	}
}

// A peer's host key changes while a master to it is open and known_hosts
// is not updated. The open master goes on with the host that proved the
// old key (an open connection cannot be moved to another machine) only
// until it ends: ssh_control_persist after its last hop (3s here), at most
// the 10-minute slot. The next connection checks the new key and fails: a
// push that needs the peer is refused, and the log says why. Once an
// operator puts the new key into known_hosts, pushes land again.
func TestSSHPeerHostKeyChangedWhileAMasterIsOpen(t *testing.T) {
	c, ctl := sshClusterWithControlDir(t, "ssh_control_persist = \"3s\"\n")
	a, b := c.Hosts["a"], c.Hosts["b"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	push := func(content string) meshtest.Result {
		t.Helper()
		c.Commit(work, "README", content)
		return a.Git("alice", work, "push", "-q", a.URL("team/app"), "main")
	}
	if r := push("one\n"); r.Code != 0 {
		t.Fatalf("first push: exit %d\n%s", r.Code, r.Stderr)
	}
	old := b.HostKey
	b.NewHostKey()
	meshtest.WaitDetached(t)
	// Every master ends ssh_control_persist after its last hop.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		socks := len(controlSockets(ctl))
		if socks == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d masters still open 30s after their last hop, with ssh_control_persist 3s", socks)
		}
	}
	if r := push("two\n"); r.Code == 0 {
		t.Fatal("a push needing b landed after b's host key changed and its master ended: a connection was not checked against known_hosts")
	}
	if log := readFile(t, c.Devices["a"].Log); !strings.Contains(log, "host key") {
		t.Fatal("a's log does not say that b's host key did not match")
	}
	kh := strings.ReplaceAll(readFile(t, c.KnownHosts), old, b.HostKey)
	if err := os.WriteFile(c.KnownHosts, []byte(kh), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := push("three\n"); r.Code != 0 {
		t.Fatalf("push after known_hosts got b's new key: exit %d\n%s", r.Code, r.Stderr)
	}
}

// A converge killed while it waits on a dead peer leaves nothing that
// blocks: the next push lands at once (no lock outlives it), and the peer
// it had not caught up does so at its next read.
func TestAKilledConvergeLeavesNothingBehind(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	a, cc := c.Hosts["a"], c.Hosts["c"]
	work := sshPushed(t, c)

	thaw := cc.Freeze()
	c.Commit(work, "README", "two\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main") // b and a hold it: quorum 2
	var pids []int
	for deadline := time.Now().Add(10 * time.Second); len(pids) == 0; time.Sleep(20 * time.Millisecond) {
		if pids = meshtest.Processes("converge"); len(pids) == 0 && time.Now().After(deadline) {
			t.Fatal("no converge running after a push that left c behind")
		}
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	meshtest.WaitDetached(t)
	thaw()

	c.Commit(work, "README", "three\n")
	start := time.Now()
	if r := a.Git("alice", work, "push", "-q", a.URL("team/app"), "main"); r.Code != 0 || time.Since(start) > 20*time.Second {
		t.Fatalf("push after a killed converge: exit %d after %s\n%s", r.Code, time.Since(start).Round(time.Second), r.Stderr)
	}
	got := cc.MustGit("alice", "", "ls-remote", cc.URL("team/app"), "refs/heads/main")
	if head := strings.Fields(got); len(head) == 0 || head[0] != c.Rev("a", "team/app", "refs/heads/main") {
		t.Fatalf("c serves main at %q after the killed converge, want a's %s", got, c.Rev("a", "team/app", "refs/heads/main"))
	}
}

// sshClusterWithControlDir is three ssh devices, write quorum 3, whose
// control sockets go to a short directory of this test's own (so no
// other test's sockets are touched), with settings added; it returns the
// cluster and that directory.
func sshClusterWithControlDir(t *testing.T, settings string) (*meshtest.SSHCluster, string) {
	t.Helper()
	short, err := os.MkdirTemp("", "gm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	ctl := filepath.Join(short, "ctl")
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	c.Settings = fmt.Sprintf("write_quorum = 3\n%sssh_control_dir = %q", settings, ctl)
	for name := range c.Hosts {
		c.SetPeerSettings(name, c.ClusterKey, c.KnownHosts)
	}
	return c, ctl
}

// A master outlives the hop that started it, and git makes its hops from
// inside a copy: the master must not keep that copy as its working
// directory, or a removal of the copy (a delete, a move away) waits for
// the master and gives up ("could not be reached").
func TestSSHMasterKeepsNoCopyOpen(t *testing.T) {
	c, ctl := sshClusterWithControlDir(t, "")
	a := c.Hosts["a"]
	work := sshPushed(t, c)
	// Every master ends, so that serve's own staging push starts the next.
	for _, p := range controlSockets(ctl) {
		exec.Command("ssh", "-F", "/dev/null", "-o", "ControlPath="+p, "-O", "exit", "peer").Run()
	}
	c.Commit(work, "README", "two\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	if len(controlSockets(ctl)) == 0 {
		t.Fatal("no master was started by the second push: the test checked nothing")
	}
	for _, d := range []string{"a", "b", "c"} {
		if pids, _ := proc.Using(copyDir(c.Cluster, d, "team/app")); len(pids) > 0 {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pids[0]))
			t.Errorf("process %d (%s) works in %s's copy after the push ended", pids[0], strings.ReplaceAll(string(cmdline), "\x00", " "), d)
		}
	}
	if out := c.MustAdmin("repo", "delete", "team/app", "--yes"); !strings.Contains(out, "copies removed from a, b, c") {
		t.Errorf("delete said %q", out)
	}
}

// controlSockets lists the masters' sockets under a control directory.
func controlSockets(ctl string) []string {
	var socks []string
	filepath.Walk(ctl, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode()&os.ModeSocket != 0 {
			socks = append(socks, p)
		}
		return nil
	})
	return socks
}
