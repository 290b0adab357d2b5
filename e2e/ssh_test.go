package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// Three devices, each a real sshd: push to a, clone from c, and c's copy
// came from a over the intracluster ssh path with the cluster key.
func TestSSHPushToOneCloneFromAnother(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	a, b, cc := c.Hosts["a"], c.Hosts["b"], c.Hosts["c"]
	c.CreateRepo("a", "team/app", "alice")

	work := c.Work("alice")
	first := c.Commit(work, "README", "hello\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")

	clone := filepath.Join(c.Dir, "clone-c")
	cc.MustGit("alice", "", "clone", "-q", cc.URL("team/app"), clone)
	if got := strings.TrimSpace(c.LocalGit(clone, "rev-parse", "HEAD")); got != first {
		t.Fatalf("clone from c has %s, want %s", got, first)
	}

	// a stored the push on b and c before answering, over their sshd
	// with the cluster key, and every device records it.
	if v := c.WaitConverged("team/app"); v != 1 {
		t.Fatalf("converged at version %d, want 1", v)
	}
	fp := fingerprint(t, c.ClusterKey)
	if log := readFile(t, cc.SSHDLog); !strings.Contains(log, "Accepted publickey for "+c.Login) || !strings.Contains(log, fp) {
		t.Fatalf("c's sshd log shows no login with the cluster key %s:\n%s", fp, log)
	}
	// c lags while its sshd is down for a push; its next read fetches from
	// a over ssh (a's URL is its sshd, not a local path).
	lagging := c.Commit(work, "README", "while c was away\n")
	sshPushWithout(t, c, "a", work, []string{"c"}, a.URL("team/app"), "main")
	if out := cc.MustGit("alice", "", "ls-remote", cc.URL("team/app"), "refs/heads/main"); !strings.HasPrefix(out, lagging) {
		t.Fatalf("c serves %q after catching up, want %s", out, lagging)
	}
	var from, url, result string
	err := c.DB().QueryRow(`SELECT f.name, f.url, s.result FROM sync_log s
		JOIN devices d ON d.id = s.device_id JOIN devices f ON f.id = s.from_device
		WHERE d.name = 'c' AND s.kind = 'fetch' ORDER BY s.id DESC LIMIT 1`).Scan(&from, &url, &result)
	if err != nil {
		t.Fatalf("sync log of c: %v", err)
	}
	if result != "ok" || !strings.HasPrefix(url, "ssh://") || from == "c" {
		t.Fatalf("c synced from %s (%s): %s; want a peer over ssh, ok", from, url, result)
	}
	first = lagging
	cc.MustGit("alice", clone, "pull", "-q", cc.URL("team/app"), "main")
	// gitmesh's fingerprints are ssh-keygen's.
	if keys := c.MustAdmin("key", "list"); !strings.Contains(keys, fp) || !strings.Contains(keys, fingerprint(t, c.UserKey("alice"))) {
		t.Fatalf("key list lacks ssh-keygen's fingerprints:\n%s", keys)
	}

	// Push to c on top, fetch from b: b catches up from a or c over ssh.
	second := c.Commit(clone, "README", "hello again\n")
	cc.MustGit("alice", clone, "push", "-q", cc.URL("team/app"), "main")
	fresh := filepath.Join(c.Dir, "clone-b")
	b.MustGit("alice", "", "clone", "-q", b.URL("team/app"), fresh)
	if got := strings.TrimSpace(c.LocalGit(fresh, "rev-parse", "HEAD")); got != second {
		t.Fatalf("clone from b has %s, want %s", got, second)
	}
}

// GIT_PROTOCOL crosses sshd (AcceptEnv) and gitmesh, so protocol v2 is
// spoken end to end; git archive --remote works through the same door.
func TestSSHProtocolV2AndArchive(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b")
	a, b := c.Hosts["a"], c.Hosts["b"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")

	key := c.UserKey("alice")
	r := b.GitEnv(key, []string{"GIT_TRACE_PACKET=1"}, "", "-c", "protocol.version=2", "ls-remote", b.URL("team/app"))
	if r.Code != 0 {
		t.Fatalf("ls-remote from b: exit %d: %s", r.Code, r.Stderr)
	}
	// git 2.39 names the packet trace after the command ("ls-remote<").
	if !strings.Contains(r.Stderr, "< version 2") || !strings.Contains(r.Stderr, "> command=ls-refs") {
		t.Fatalf("the server did not speak protocol v2:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stdout, "refs/heads/main") {
		t.Fatalf("ls-remote lacks main: %s", r.Stdout)
	}

	r = b.GitEnv(key, nil, "", "archive", "--remote="+b.URL("team/app"), "--format=tar", "main", "README")
	if r.Code != 0 {
		t.Fatalf("git archive --remote: exit %d: %s", r.Code, r.Stderr)
	}
	files := untar(t, r.Stdout)
	if files["README"] != "hello\n" {
		t.Fatalf("archive holds %v, want README=hello", files)
	}
}

// A user key runs nothing but the git verbs, and gets no shell, pty or
// forwarding; the cluster key only fetches.
func TestSSHKeysAreRestricted(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a")
	a := c.Hosts["a"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	first := c.Commit(work, "README", "hello\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
	key := c.UserKey("alice")

	refused := func(what string, r meshtest.Result, want string) {
		t.Helper()
		if r.Code == 0 || !strings.Contains(r.Stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want a refusal saying %q", what, r.Code, r.Stderr, want)
		}
		if strings.Contains(r.Stdout, "authorized_keys") || strings.Contains(r.Stdout, "sshd_config") {
			t.Errorf("%s: a command ran: %q", what, r.Stdout)
		}
	}
	refused("ssh host", a.SSH(key, nil), "gitmesh:")
	refused("ssh host ls", a.SSH(key, nil, "ls", a.Dir), "gitmesh:")
	refused("ssh host sh -c", a.SSH(key, nil, "sh", "-c", "'ls "+a.Dir+"'"), "gitmesh:")
	refused("ssh -tt host ls", a.SSH(key, []string{"-tt"}, "ls", a.Dir), "PTY allocation request failed")
	refused("ssh -W", a.SSH(key, []string{"-W", "127.0.0.1:" + strconv.Itoa(a.Port)}), "administratively prohibited")
	refused("ssh -R", a.SSH(key, []string{"-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:" + strconv.Itoa(a.Port)}, "git-upload-pack", "team/app.git"),
		"remote port forwarding failed")
	localForwardRefused(t, a, key)

	// The cluster key fetches, but cannot push or run anything else.
	r := a.GitEnv(c.ClusterKey, nil, "", "ls-remote", a.URL("team/app"), "refs/heads/main")
	if r.Code != 0 || !strings.Contains(r.Stdout, first) {
		t.Fatalf("the cluster key cannot fetch: exit %d: %s", r.Code, r.Stderr)
	}
	c.Commit(work, "README", "sneaky\n")
	r = a.GitEnv(c.ClusterKey, nil, work, "push", "-q", a.URL("team/app"), "main")
	refused("push with the cluster key", r, "deny updating a hidden ref")
	refused("ssh host ls with the cluster key", a.SSH(c.ClusterKey, nil, "ls"), "gitmesh:")
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != first {
		t.Fatalf("main moved to %s after refused pushes", got)
	}
}

// localForwardRefused holds an `ssh -N -L` open and shows that a connection
// to the forwarded port never reaches the target (sshd's banner).
func localForwardRefused(t *testing.T, h *meshtest.Host, key string) {
	t.Helper()
	port, err := meshtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.SSHCommand(key, []string{"-N", "-L", strconv.Itoa(port) + ":127.0.0.1:" + strconv.Itoa(h.Port)})
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { cmd.Process.Kill(); <-exited }()

	var conn net.Conn
	for deadline := time.Now().Add(30 * time.Second); ; {
		if conn, err = net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("ssh -L exited before listening (%v): %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh -L never listened on %d: %s", port, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, _ := io.ReadAll(conn)
	if bytes.Contains(got, []byte("SSH-")) {
		t.Fatalf("ssh -L forwarded a connection to sshd: %q", got)
	}
}

// A peer whose host key does not match known_hosts is not fetched from, and
// the user is told why.
func TestSSHHostKeyMismatchRefusesPeer(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "c")
	a, cc := c.Hosts["a"], c.Hosts["c"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	sshPushWithout(t, c, "a", work, []string{"c"}, a.URL("team/app"), "main") // c lags

	// The cluster's known_hosts now names another key for a.
	impostor := c.NewKey("impostor")
	kh := readFile(t, c.KnownHosts)
	kh = strings.Replace(kh, a.HostKey, pubKey(t, impostor), 1)
	if err := os.WriteFile(c.KnownHosts, []byte(kh), 0o644); err != nil {
		t.Fatal(err)
	}

	r := cc.Git("alice", "", "clone", "-q", cc.URL("team/app"), filepath.Join(c.Dir, "clone-c"))
	if r.Code == 0 {
		t.Fatal("clone from c succeeded although a's host key does not match")
	}
	t.Logf("exit %d: %s", r.Code, r.Stderr)
	if !strings.Contains(r.Stderr, "host key does not match") {
		t.Fatalf("the error does not say the host key does not match:\n%s", r.Stderr)
	}
	if n := strings.Count(readFile(t, a.SSHDLog), "Accepted publickey"); n != 1 {
		t.Fatalf("a's sshd accepted %d logins, want only alice's push", n)
	}
}

// Bad settings and unreachable or unwilling peers fail the read with one
// clear sentence; the stale copy is never served.
func TestSSHPeerFailuresFailReads(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "c")
	a, cc := c.Hosts["a"], c.Hosts["c"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "one\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
	old := strings.TrimSpace(cc.MustGit("alice", "", "ls-remote", cc.URL("team/app"), "refs/heads/main"))
	c.Commit(work, "README", "two\n")
	sshPushWithout(t, c, "a", work, []string{"c"}, a.URL("team/app"), "main") // c is stale now

	openKey := filepath.Join(c.Dir, "open_key")
	if err := os.WriteFile(openKey, []byte(readFile(t, c.ClusterKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	noClusterLine := func() func() {
		var kept []string
		for _, l := range strings.Split(readFile(t, a.AuthorizedKeys), "\n") {
			if !strings.Contains(l, "serve --cluster") {
				kept = append(kept, l)
			}
		}
		if err := os.WriteFile(a.AuthorizedKeys, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		return c.RefreshAuthorizedKeys
	}
	setKey := func(key, kh string) func() func() {
		return func() func() {
			c.SetPeerSettings("c", key, kh)
			return func() { c.SetPeerSettings("c", c.ClusterKey, c.KnownHosts) }
		}
	}
	// The user hears which device and what kind of failure; the log of c
	// (and any admin command) has the setting, the path or the address.
	const badSetting = "cluster key or known_hosts setting is wrong"
	for _, tc := range []struct {
		name      string
		break_    func() (restore func())
		want, log string
	}{
		{"missing cluster key", setKey(filepath.Join(c.Dir, "nope"), c.KnownHosts), badSetting, "the cluster key " + filepath.Join(c.Dir, "nope") + " does not exist"},
		{"unreadable cluster key", setKey(c.Dir, c.KnownHosts), badSetting, "the cluster key " + c.Dir + " cannot be read"},
		{"cluster key open to all", setKey(openKey, c.KnownHosts), badSetting, "readable by others"},
		{"no cluster key setting", setKey("", c.KnownHosts), badSetting, "no cluster key is configured"},
		{"missing known_hosts", setKey(c.ClusterKey, filepath.Join(c.Dir, "nope")), badSetting, "the known_hosts file " + filepath.Join(c.Dir, "nope") + " does not exist"},
		{"peer refuses the key", noClusterLine, "a: it refused the cluster key", "the peer refused the cluster key"},
		{"unreachable peer", func() func() { a.StopSSHD(); return a.StartSSHD }, "a: it cannot be reached", "cannot reach the peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restore := tc.break_()
			defer restore()
			r := cc.Git("alice", "", "ls-remote", cc.URL("team/app"), "refs/heads/main")
			if r.Code == 0 || r.Stdout != "" {
				t.Fatalf("read from stale c succeeded: exit %d, %q (stale: %q)", r.Code, r.Stdout, old)
			}
			t.Logf("exit %d: %s", r.Code, r.Stderr)
			// gitmesh's own line (git prints it again from the ERR
			// packet, as "fatal: remote error: gitmesh: ...").
			said := false
			for _, l := range strings.Split(r.Stderr, "\n") {
				said = said || strings.HasPrefix(l, "gitmesh: ") && strings.Contains(l, tc.want)
			}
			if !said {
				t.Fatalf("stderr does not say %q in a gitmesh sentence:\n%s", tc.want, r.Stderr)
			}
			if strings.Contains(r.Stderr, c.Dir) || strings.Contains(r.Stderr, "127.0.0.1") {
				t.Fatalf("stderr shows a server path or address:\n%s", r.Stderr)
			}
			if !strings.Contains(readFile(t, cc.Log), tc.log) {
				t.Fatalf("c's log lacks %q", tc.log)
			}
		})
	}
	// Repaired, c catches up.
	if got := cc.MustGit("alice", "", "ls-remote", cc.URL("team/app"), "refs/heads/main"); got == old+"\n" || got == "" {
		t.Fatalf("c still serves %q after repair", got)
	}
}

// keys-command prints the authorized_keys line of a known key and nothing
// for an unknown one.
func TestKeysCommand(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a")
	a := c.Hosts["a"]
	key := c.SSHUser("alice")
	full := readFile(t, a.AuthorizedKeys)
	for _, k := range []string{key, c.ClusterKey} {
		f := strings.Fields(readFile(t, k+".pub"))
		r := a.Run(nil, "keys-command", c.Login, f[0], f[1])
		if r.Code != 0 || strings.Count(r.Stdout, "\n") != 1 || !strings.Contains(full, r.Stdout) || !strings.Contains(r.Stdout, "restrict "+f[0]+" "+f[1]) {
			t.Fatalf("keys-command for %s: exit %d, %q (%s); want its line of:\n%s", k, r.Code, r.Stdout, r.Stderr, full)
		}
	}
	if !strings.Contains(full, "serve --cluster\",restrict ") || !strings.Contains(full, "serve alice\",restrict ") ||
		!strings.Contains(full, "command=\""+meshtest.Binary()+" --config "+a.Config) {
		t.Fatalf("authorized_keys lacks the forced commands:\n%s", full)
	}
	// A known key offered for another account opens nothing.
	f := strings.Fields(readFile(t, key+".pub"))
	if r := a.Run(nil, "keys-command", "postgres", f[0], f[1]); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("keys-command for another account: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}
	unknown := strings.Fields(pubKey(t, c.NewKey("stranger")))
	for _, args := range [][]string{unknown, {"ssh-rsa", unknown[1]}, {"ssh-ed25519", "%%%"}} {
		r := a.Run(nil, "keys-command", c.Login, args[0], args[1])
		if r.Code != 0 || r.Stdout != "" {
			t.Fatalf("keys-command for an unknown key: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
		}
	}
	// A removed key is gone from both.
	fp := fingerprint(t, key)
	c.MustAdmin("key", "remove", fp)
	f = strings.Fields(readFile(t, key+".pub"))
	if r := a.Run(nil, "keys-command", c.Login, f[0], f[1]); r.Stdout != "" {
		t.Fatalf("keys-command still knows a removed key: %q", r.Stdout)
	}
	if out := c.MustAdmin("authorized-keys"); strings.Contains(out, f[1]) {
		t.Fatalf("authorized-keys still holds a removed key:\n%s", out)
	}
}

// A malformed key is refused with one sentence and stores nothing.
func TestKeyAddRejectsMalformedKeys(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a")
	c.User("bob")
	good := strings.Fields(pubKey(t, c.NewKey("good")))
	other := strings.Fields(pubKey(t, c.NewKey("other")))
	for name, body := range map[string]string{
		"empty":          "",
		"garbage":        "hello world\n",
		"unknown type":   "ssh-foo " + good[1] + "\n",
		"type mismatch":  "ssh-rsa " + good[1] + "\n",
		"damaged base64": "ssh-ed25519 " + good[1][:len(good[1])-3] + "!!!\n",
		"truncated blob": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\n",
		"options":        `command="sh" ` + good[0] + " " + good[1] + "\n",
		"two keys":       good[0] + " " + good[1] + "\n" + other[0] + " " + other[1] + "\n",
		"private key":    readFile(t, filepath.Join(c.Dir, "keys", "good")),
		"no blob":        "ssh-ed25519\n",
	} {
		file := filepath.Join(c.Dir, "bad.pub")
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		r := c.Admin("key", "add", "bob", file)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code != 2 || len(lines) != 1 || !strings.Contains(r.Stderr, "malformed public key") {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and one sentence", name, r.Code, r.Stderr)
		}
		if name != "private key" {
			continue
		}
		// Named as what it is, and never repeated back.
		if !strings.Contains(r.Stderr, "this is a private key") || !strings.Contains(r.Stderr, ".pub") || r.Stdout != "" {
			t.Errorf("private key: stdout %q, stderr %q; want it named a private key and the .pub file asked for", r.Stdout, r.Stderr)
		}
		for _, l := range strings.Fields(body) {
			if len(l) > 8 && strings.Contains(r.Stderr, l) {
				t.Errorf("private key: the message repeats %q of it", l)
			}
		}
	}
	if out := c.MustAdmin("key", "list"); strings.Contains(out, "bob") {
		t.Fatalf("a malformed key was stored:\n%s", out)
	}
	r := c.Admin("key", "add", "nobody", filepath.Join(c.Dir, "keys", "good.pub"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "gitmesh user add nobody") {
		t.Fatalf("key for an unknown user: exit %d, %s", r.Code, r.Stderr)
	}
	c.MustAdmin("key", "add", "bob", filepath.Join(c.Dir, "keys", "good.pub"))
	if r := c.Admin("key", "add", "--cluster", filepath.Join(c.Dir, "keys", "good.pub")); r.Code == 0 || !strings.Contains(r.Stderr, "a key of user bob") {
		t.Fatalf("the same key twice: exit %d, %s", r.Code, r.Stderr)
	}
}

func fingerprint(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", key+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[1]
}

func pubKey(t *testing.T, key string) string {
	t.Helper()
	f := strings.Fields(readFile(t, key+".pub"))
	return f[0] + " " + f[1]
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func untar(t *testing.T, data string) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(strings.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("archive: %v", err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
}
