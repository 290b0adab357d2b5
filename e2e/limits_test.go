package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// heldPreReceive makes dev's copy of repo hold every push in pre-receive
// (marker appears) until the file release exists (a minute at most).
func heldPreReceive(t *testing.T, c *meshtest.Cluster, dev, repo, marker, release string) {
	t.Helper()
	path := filepath.Join(c.Devices[dev].Root, repo+".git", "hooks", "update")
	script := fmt.Sprintf("#!/bin/sh\ncat >/dev/null\ntouch %q\ni=0\nwhile [ ! -e %q ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n", marker, release)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// newKey makes an ed25519 key pair and returns the public half's type and
// base64, as sshd hands them to keys-command.
func newKey(t *testing.T, dir, name string) (string, string, string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	f := strings.Fields(readFile(t, path+".pub"))
	return path + ".pub", f[0], f[1]
}

func login(t *testing.T) string {
	t.Helper()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return me.Username
}

// oneSentence fails unless r printed nothing on stdout but its refusal and exactly one
// line on stderr that says want.
func oneSentence(t *testing.T, what string, r meshtest.Result, code int, want string) {
	t.Helper()
	if r.Code != code || !onlyRefusal(r) || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, want) {
		t.Fatalf("%s: exit %d (want %d), stdout %q, stderr %q (want one line saying %q)", what, r.Code, code, r.Stdout, r.Stderr, want)
	}
}

func TestUserAtTheSessionCapIsRefusedAtOnceWhileOthersAndKeysCommandWork(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	acked := c.Commit(work, "README", "b lags\n")
	pushWithout(t, c, "a", work, []string{"b"}, url, "main") // b's reads must catch up
	c.CreateRepo("a", "team/other", "bob")
	pub, typ, blob := newKey(t, c.Dir, "alice-key")
	c.MustAdmin("key", "add", "alice", pub)
	a, b := c.Devices["a"], c.Devices["b"]
	a.WriteConfig("max_user_sessions = 1")
	b.WriteConfig("max_user_sessions = 1")

	// alice's one session: a push held in pre-receive, holding the write lock.
	marker, release := filepath.Join(c.Dir, "in-pre-receive"), filepath.Join(c.Dir, "release")
	heldPreReceive(t, c, "a", "team/app", marker, release)
	pending := c.Commit(work, "README", "held\n")
	held := a.GitCmd("alice", work, "push", url, "main")
	var heldErr bytes.Buffer
	held.Stderr = &heldErr
	if err := held.Start(); err != nil {
		t.Fatal(err)
	}
	defer held.Process.Kill()
	waitFor(t, "alice's first push to reach pre-receive", exists(marker))
	// Her place rides on the push's one connection.
	var conns int
	if err := c.DB().QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'gitmesh push % alice@a %'`).Scan(&conns); err != nil || conns != 1 {
		t.Fatalf("alice's held push has %d database connections (%v), want 1", conns, err)
	}

	// A second session of alice's that would hold a connection is refused
	// at once: no wait for the write lock, one sentence, exit 5.
	r := a.Run([]string{"SSH_ORIGINAL_COMMAND=git-receive-pack 'team/app.git'"}, "serve", "alice")
	oneSentence(t, "alice's second push", r, 5, "you already have 1 gitmesh session running")
	if strings.Contains(r.Stderr, "waiting") {
		t.Fatalf("the refused session waited: %s", r.Stderr)
	}
	if gr := a.Git("alice", work, "push", url, "main:refs/heads/second"); gr.Code == 0 || !strings.Contains(gr.Stderr, "wait for one to finish") {
		t.Fatalf("git push beyond the cap: exit %d: %s", gr.Code, gr.Stderr)
	}

	// alice's reads from a current device hold no connection: they work.
	if got := a.MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(got, acked) {
		t.Fatalf("alice's read at the cap: %q, want %s", got, acked)
	}
	// Another user works: a push of bob's to another repository.
	bobWork := c.Work("bob")
	c.Commit(bobWork, "README", "bob's\n")
	a.MustGit("bob", bobWork, "push", "-q", meshtest.URL("team/other"), "main")
	// keys-command still answers for alice's key.
	kr := a.Run(nil, "keys-command", login(t), typ, blob)
	if kr.Code != 0 || !strings.Contains(kr.Stdout, "serve alice\",restrict "+typ+" "+blob) {
		t.Fatalf("keys-command at alice's cap: exit %d, %q, %s", kr.Code, kr.Stdout, kr.Stderr)
	}

	// A read of alice's that must catch up (on b) waits for a place, and
	// says so, holding no connection meanwhile.
	readErr := filepath.Join(c.Dir, "read-stderr")
	read := b.GitCmd("alice", "", "ls-remote", url, "refs/heads/main")
	f, err := os.Create(readErr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var readOut bytes.Buffer
	read.Stdout, read.Stderr = &readOut, f
	if err := read.Start(); err != nil {
		t.Fatal(err)
	}
	defer read.Process.Kill()
	waitFor(t, "alice's read on b to wait for a place", func() bool {
		return strings.Contains(readFile(t, readErr), "waiting up to")
	})

	// Her session ends: its place is free again.
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := finish(t, held); err != nil {
		t.Fatalf("the held push: %v: %s", err, heldErr.String())
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != pending {
		t.Fatalf("main is %s after the held push, want %s", got, pending)
	}
	if err := finish(t, read); err != nil || !strings.Contains(readOut.String(), "refs/heads/main") {
		t.Fatalf("alice's waiting read: %v, %q: %s", err, readOut.String(), readFile(t, readErr))
	}
	a.MustGit("alice", work, "push", "-q", url, "main:refs/heads/after")
}

func TestPushesBeyondTheWaiterCapAreRefusedAtOnce(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	a := c.Devices["a"]
	a.WriteConfig("max_push_waiters = 1")
	db := c.DB()

	// Another gitmesh process holds the write lock.
	holder := holdWriteLock(t, c, "team/app")
	first := c.Commit(work, "README", "first waiter\n")
	waiter := a.GitCmd("alice", work, "push", url, "main")
	var waiterErr bytes.Buffer
	waiter.Stderr = &waiterErr
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	defer waiter.Process.Kill()
	waitFor(t, "a push to wait for the write lock", func() bool {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_locks WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND locktype = 'advisory' AND NOT granted
			AND classid = x'676d5700'::int::oid`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})

	// The queue is full: the next push is answered at once, nothing changes.
	// (The write lock is asked for once the push's commands arrive.)
	r := rawPush(t, c, "a", "alice", "team/app", gitexecZero+" "+c.Rev("a", "team/app", "refs/heads/main")+" refs/heads/w")
	if r.Code != 5 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "push to team/app refused: 1 push is already waiting for its write lock") {
		t.Fatalf("a push beyond max_push_waiters: exit %d (want 5), stderr %q", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stderr, "gave up") {
		t.Fatalf("the refused push waited: %s", r.Stderr)
	}
	// status lists the lock's holder and its waiter, not the places.
	if st := c.MustAdmin("status", "team/app"); strings.Count(st, "lock:") != 2 ||
		!strings.Contains(st, "bob@b\" (backend") || !strings.Contains(st, "waits for a lock") {
		t.Fatalf("status with one holder and one waiter:\n%s", st)
	}
	var writing int
	db.QueryRow(`SELECT count(*) FROM working_copy_versions WHERE is_writing`).Scan(&writing)
	if writing != 0 {
		t.Fatalf("%d write marks while the lock is held elsewhere", writing)
	}

	// The holder lets go: the waiting push goes through.
	holder.Close()
	if err := finish(t, waiter); err != nil {
		t.Fatalf("the waiting push: %v: %s", err, waiterErr.String())
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != first {
		t.Fatalf("main is %s, want the waiting push's %s", got, first)
	}
}

// holdWriteLock takes repo's write lock on a connection named as serve
// names its own; closing the returned pool lets go.
func holdWriteLock(t *testing.T, c *meshtest.Cluster, repo string) io.Closer {
	t.Helper()
	holder := dbOpen(t, c.DBURL+"&application_name="+strings.ReplaceAll("gitmesh push team/app 4242 bob@b", " ", "%20"))
	holder.SetMaxOpenConns(1)
	if _, err := holder.Exec(`SELECT pg_advisory_lock(x'676d5700'::int, (SELECT id FROM repositories WHERE name = $1))`, repo); err != nil {
		t.Fatal(err)
	}
	return holder
}

// stalledPush runs `gitmesh serve USER` for a push to repo on dev as sshd
// would, and speaks to it as a client that sends its command and the
// start of a pack, then nothing more (its stdin stays open). It returns
// serve's exit code and stderr once serve is done.
func stalledPush(t *testing.T, dev *meshtest.Device, user, repo, newID string) (int, string) {
	t.Helper()
	cmd := exec.Command(meshtest.Binary(), "--config", dev.Config, "serve", user)
	cmd.Env = append(meshtest.GitEnv(t.TempDir()), "SSH_ORIGINAL_COMMAND=git-receive-pack '"+repo+".git'")
	return stall(t, cmd, newID)
}

// stall runs cmd, a receive-pack at the other end, as a client that sends
// its command for refs/heads/main and the start of a pack, then nothing.
func stall(t *testing.T, cmd *exec.Cmd, newID string) (int, string) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	old := ""
	for { // the ref advertisement, up to its flush
		line, flush := readPkt(t, out)
		if flush {
			break
		}
		if old == "" {
			old = strings.Fields(line)[0]
		}
	}
	cmdLine := fmt.Sprintf("%s %s refs/heads/main\x00report-status\n", old, newID)
	pack := []byte("PACK\x00\x00\x00\x02\x00\x00\x00\x03\x95\x0a") // a header for 3 objects, then one byte of the first
	if _, err := io.WriteString(stdin, fmt.Sprintf("%04x%s0000", len(cmdLine)+4, cmdLine)); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write(pack); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, out)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute): // far beyond the bounds the tests set
		cmd.Process.Kill()
		t.Fatalf("serve still runs a stalled push; stderr: %s", stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String()
}

// readPkt reads one pkt-line; flush reports a flush packet.
func readPkt(t *testing.T, r *bufio.Reader) (string, bool) {
	t.Helper()
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatalf("read pkt-line: %v", err)
	}
	n, err := strconv.ParseUint(string(head), 16, 16)
	if err != nil {
		t.Fatalf("bad pkt-line length %q", head)
	}
	if n == 0 {
		return "", true
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("read pkt-line: %v", err)
	}
	return string(body), false
}

func TestAStalledPushIsStoppedAndLeavesNothingFrozen(t *testing.T) {
	for _, tc := range []struct {
		name, settings, says string
	}{
		{"silent client", "push_idle_timeout = \"2s\"\npush_timeout = \"1h\"", "the client sent nothing for 2s (push_idle_timeout)"},
		{"slow push", "push_idle_timeout = \"1h\"\npush_timeout = \"3s\"", "the push took longer than 3s (push_timeout)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := meshtest.NewCluster(t, "a", "b", "c")
			url := meshtest.URL("team/app")
			work, acked := pushed(t, c)
			a := c.Devices["a"]
			a.WriteConfig(tc.settings)
			never := c.Commit(work, "README", "never sent whole\n")

			code, stderr := stalledPush(t, a, "alice", "team/app", never)
			if code != 9 || !strings.Contains(stderr, "gitmesh: push stopped: "+tc.says+"; nothing was changed; push again") {
				t.Fatalf("stalled push: exit %d (want 9), stderr:\n%s", code, stderr)
			}
			if strings.Contains(stderr, a.Root) {
				t.Fatalf("the user hears a server path:\n%s", stderr)
			}
			// No ref moved, nothing frozen, no lock held.
			if got := c.Rev("a", "team/app", "refs/heads/main"); got != acked {
				t.Fatalf("main is %s after a stopped push, want %s", got, acked)
			}
			st := c.MustAdmin("status", "team/app")
			if strings.Contains(st, "FROZEN") || strings.Contains(st, "push in progress") || strings.Contains(st, "lock:") {
				t.Fatalf("status after a stopped push:\n%s", st)
			}
			// The next push, by someone else, goes through.
			c.User("bob")
			c.MustAdmin("grant", "bob", "team/app", "write")
			bobWork := filepath.Join(c.Dir, "bob")
			a.MustGit("bob", "", "clone", "-q", url, bobWork)
			next := c.Commit(bobWork, "BOB", "next\n")
			a.MustGit("bob", bobWork, "push", "-q", url, "main")
			if got := c.Rev("a", "team/app", "refs/heads/main"); got != next {
				t.Fatalf("main is %s after bob's push, want %s", got, next)
			}
		})
	}
}

func TestKeysCommandUsesItsOwnRoleWhileTheUsersRoleHasNoConnectionLeft(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	pushed(t, c)
	pub, typ, blob := newKey(t, c.Dir, "alice-key")
	c.MustAdmin("key", "add", "alice", pub)
	a := c.Devices["a"]

	// The README's PostgreSQL setup: serve's role with a connection
	// limit, keys-command's role with its own, able to read keys only.
	db := c.DB()
	var dbName string
	if err := db.QueryRow(`SELECT current_database()`).Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	serveRole, keysRole := dbName+"_serve", dbName+"_keys"
	for _, q := range []string{
		`CREATE ROLE ` + serveRole + ` LOGIN PASSWORD 'serve-pw' CONNECTION LIMIT 2`,
		`CREATE ROLE ` + keysRole + ` LOGIN PASSWORD 'keys-pw' CONNECTION LIMIT 5`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + serveRole,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ` + serveRole,
		`GRANT SELECT ON ssh_keys, users TO ` + keysRole,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		db.Exec(`DROP OWNED BY ` + serveRole + `, ` + keysRole)
		db.Exec(`DROP ROLE ` + serveRole)
		db.Exec(`DROP ROLE ` + keysRole)
	})
	as := func(role, pw string) string {
		return strings.Replace(c.DBURL, "://", "://"+role+":"+pw+"@", 1)
	}
	if strings.Contains(c.DBURL, "@") { // a URL with its own user: replace it
		at := strings.Index(c.DBURL, "@")
		as = func(role, pw string) string {
			return c.DBURL[:strings.Index(c.DBURL, "://")+3] + role + ":" + pw + c.DBURL[at:]
		}
	}
	a.DBURL = as(serveRole, "serve-pw")
	a.WriteConfig(fmt.Sprintf("keys_database_url = %q", as(keysRole, "keys-pw")))
	a.MustGit("alice", "", "ls-remote", meshtest.URL("team/app")) // serve works as its role

	// Every connection serve's role may have is taken.
	full := dbOpen(t, as(serveRole, "serve-pw"))
	for i := 0; i < 2; i++ {
		conn, err := full.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.PingContext(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if r := a.Git("alice", "", "ls-remote", meshtest.URL("team/app")); r.Code == 0 || !strings.Contains(r.Stderr, "database is unreachable from device a") {
		t.Fatalf("serve with its role full: exit %d: %s", r.Code, r.Stderr)
	}
	// Logins still work: keys-command answers from its own role.
	kr := a.Run(nil, "keys-command", login(t), typ, blob)
	if kr.Code != 0 || !strings.Contains(kr.Stdout, "serve alice\",restrict "+typ+" "+blob) {
		t.Fatalf("keys-command with serve's role full: exit %d, %q, %s", kr.Code, kr.Stdout, kr.Stderr)
	}
	// Without keys_database_url it shares serve's fate.
	a.WriteConfig("")
	if kr := a.Run(nil, "keys-command", login(t), typ, blob); kr.Code == 0 || kr.Stdout != "" {
		t.Fatalf("keys-command on serve's full role: exit %d, %q", kr.Code, kr.Stdout)
	}
}

func TestAStalledPushOverSSHIsStopped(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b")
	a := c.Hosts["a"]
	c.CreateRepo("a", "team/app", "alice", "bob")
	work := c.Work("alice")
	acked := c.Commit(work, "README", "acknowledged\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
	a.WriteConfig(fmt.Sprintf("cluster_key = %q\nknown_hosts = %q\nconnect_timeout = \"10s\"\npush_idle_timeout = \"2s\"", c.ClusterKey, c.KnownHosts))
	never := c.Commit(work, "README", "never sent whole\n")

	code, stderr := stall(t, a.SSHCommand(c.UserKey("alice"), nil, "git-receive-pack 'team/app.git'"), never)
	if code != 9 || !strings.Contains(stderr, "gitmesh: push stopped: the client sent nothing for 2s (push_idle_timeout); nothing was changed; push again") {
		t.Fatalf("stalled push over ssh: exit %d (want 9), stderr:\n%s", code, stderr)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != acked {
		t.Fatalf("main is %s after a stopped push, want %s", got, acked)
	}
	if st := c.MustAdmin("status", "team/app"); strings.Contains(st, "FROZEN") || strings.Contains(st, "lock:") {
		t.Fatalf("status after a stopped push:\n%s", st)
	}
	bobWork := filepath.Join(c.Dir, "bob")
	a.MustGit("bob", "", "clone", "-q", a.URL("team/app"), bobWork)
	next := c.Commit(bobWork, "BOB", "next\n")
	a.MustGit("bob", bobWork, "push", "-q", a.URL("team/app"), "main")
	if got := a.MustGit("bob", "", "ls-remote", a.URL("team/app"), "refs/heads/main"); !strings.HasPrefix(got, next) {
		t.Fatalf("main is %q after bob's push, want %s", got, next)
	}
}
