package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitmesh/lock"
	"gitmesh/meshtest"
)

// haCluster is three devices on a primary with a synchronous standby,
// every device given both hosts in one DSN.
func haCluster(t *testing.T, settings string) (*meshtest.HA, *meshtest.Cluster) {
	t.Helper()
	h, err := meshtest.StartHA()
	if err != nil {
		t.Fatalf("start a primary and a streaming standby: %v (apt-get install -y postgresql)", err)
	}
	t.Cleanup(h.Stop)
	c := meshtest.NewClusterHA(t, h, "a", "b", "c")
	c.Settings = settings
	for _, d := range c.Devices {
		d.WriteConfig("")
	}
	return h, c
}

// onPrimary runs a query on the current primary, bounded.
func onPrimary(t *testing.T, h *meshtest.HA, q string, args ...any) *sql.Rows {
	t.Helper()
	d, err := sql.Open("postgres", h.Primary().AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	rows, err := d.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitActivity waits until a gitmesh session on the primary (in any
// database) shows the wait event (Lock: advisory, SyncRep).
func waitActivity(t *testing.T, h *meshtest.HA, app, event string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("a %q session waiting on %s", app, event), func() bool {
		rows := onPrimary(t, h, `SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1 AND wait_event = $2`, app+"%", event)
		defer rows.Close()
		var n int
		for rows.Next() {
			rows.Scan(&n)
		}
		return n > 0
	})
}

// holdLock takes an advisory lock on the primary in cluster c's database
// from a session of the test's own (it dies with that primary).
func holdLock(t *testing.T, c *meshtest.Cluster, k lock.Key) {
	t.Helper()
	conn, err := c.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_lock($1, $2)`, k.Class, k.Obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
}

func ids(t *testing.T, c *meshtest.Cluster, repo, dev string) (int32, int32) {
	t.Helper()
	var r, d int32
	if err := c.DB().QueryRow(`SELECT (SELECT id FROM repositories WHERE name = $1), (SELECT id FROM devices WHERE name = $2)`, repo, dev).Scan(&r, &d); err != nil {
		t.Fatal(err)
	}
	return r, d
}

// inflight is a push or read started in the background.
type inflight struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
}

func startInflight(t *testing.T, cmd *exec.Cmd) *inflight {
	t.Helper()
	f := &inflight{cmd: cmd}
	cmd.Stderr = &f.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return f
}

// settle waits for the command and checks that it either succeeded or
// was refused with gitmesh's sentence and a documented exit code; it
// reports whether it succeeded.
func (f *inflight) settle(t *testing.T, what string) bool {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		f.cmd.Process.Kill()
		t.Fatalf("%s never ended: %s", what, f.stderr.String())
	}
	if err == nil {
		t.Logf("%s succeeded", what)
		return true
	}
	if strings.Contains(f.stderr.String(), "devices could store") {
		t.Fatalf("%s blamed the devices for the database's failover: %s", what, said(f.stderr.String()))
	}
	if !strings.Contains(f.stderr.String(), "gitmesh: ") {
		t.Fatalf("%s failed without a sentence of gitmesh's: %v\n%s", what, err, f.stderr.String())
	}
	t.Logf("%s refused: %v: %s", what, err, said(f.stderr.String()))
	return false
}

// said is what gitmesh told the user, one line per sentence.
func said(stderr string) string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "gitmesh: ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, " | ")
}

// TestDatabaseFailoverLosesNothingAcknowledged promotes the synchronous
// standby while the cluster is idle, while a push waits for the write lock
// (before its mark), sits in pre-receive (marked, before staging), runs
// the repository's update hook (just before staging), waits on its
// record's commit, and while a read waits to catch up. Every acknowledged
// push stays readable everywhere, each in-flight request succeeds or is
// refused with a sentence, and pushes work again after each failover.
func TestDatabaseFailoverLosesNothingAcknowledged(t *testing.T) {
	h, c := haCluster(t, "lock_timeout = \"10s\"\nrecord_timeout = \"30s\"\nconnect_timeout = \"2s\"")
	url := meshtest.URL("team/app")
	work, first := pushed(t, c)
	acked := map[string]string{"main": first} // branch -> acknowledged commit
	repoID, _ := ids(t, c, "team/app", "b")
	pushTo := func(dev, branch, content string) *exec.Cmd {
		c.LocalGit(work, "checkout", "-q", "-B", branch, "main")
		c.Commit(work, branch+".txt", content)
		return c.Devices[dev].GitCmd("alice", work, "push", url, branch+":"+branch)
	}
	head := func() string { return strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD")) }
	after := func(stage string) {
		t.Helper()
		// Pushes work again on the promoted primary, before a new
		// standby is attached (pg_auto_failover's single-node mode).
		branch := "after-" + stage
		r := run(pushTo("c", branch, "after "+stage+"\n"))
		if r.Code != 0 {
			t.Fatalf("push after the failover %s: exit %d: %s", stage, r.Code, r.Stderr)
		}
		acked[branch] = head()
		if err := h.AttachStandby(); err != nil {
			t.Fatalf("attach a fresh standby after the failover %s: %v", stage, err)
		}
		checkAcked(t, c, url, acked)
	}
	failover := func(stage string) {
		t.Helper()
		t.Logf("failover %s", stage)
		if err := h.Failover(); err != nil {
			t.Fatalf("failover %s: %v", stage, err)
		}
	}

	// Idle, and for a moment no primary at all: only the standby answers.
	h.KillPrimary()
	if r := c.Devices["b"].Git("alice", "", "ls-remote", url); r.Code == 0 || !strings.Contains(r.Stderr, "unreachable from device b; try again later") {
		t.Fatalf("read with only a standby: exit %d: %s", r.Code, r.Stderr)
	}
	if r := c.Admin("status"); r.Code != 6 || !strings.Contains(r.Stderr, "read-only standby") || !strings.Contains(r.Stderr, "database_url") {
		t.Fatalf("status with only a standby: exit %d: %s", r.Code, r.Stderr)
	}
	if r := c.Admin("check", "--no-probe"); r.Code != 2 || !strings.Contains(r.Stdout, "CRITICAL: the coordination database is reached only as a read-only standby") {
		t.Fatalf("check with only a standby: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if err := h.Promote(); err != nil {
		t.Fatal(err)
	}
	after("idle")

	// A push waiting for the write lock: nothing is marked yet.
	holdLock(t, c, lock.Write(repoID))
	p := startInflight(t, pushTo("a", "waiting", "waited\n"))
	waitActivity(t, h, "gitmesh push", "advisory")
	failover("while a push waits for the write lock")
	if p.settle(t, "the push waiting for the write lock") {
		acked["waiting"] = head()
	}
	after("waiting")

	// Marked, in pre-receive; then in the update hook, just before staging.
	for _, hook := range []string{"pre-receive", "update"} {
		marker, release := filepath.Join(c.Dir, "in-"+hook), filepath.Join(c.Dir, "release-"+hook)
		drain := ""
		if hook == "pre-receive" {
			drain = "cat >/dev/null\n"
		}
		path := adminHook(t, c, "a", hook, drain+fmt.Sprintf("touch %q\ni=0\nwhile [ ! -e %q ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n", marker, release))
		p := startInflight(t, pushTo("a", hook, "in "+hook+"\n"))
		waitFor(t, "the push to reach "+hook, exists(marker))
		failover("while a push runs " + hook)
		os.WriteFile(release, nil, 0o644)
		if p.settle(t, "the push in "+hook) {
			acked[hook] = head()
		}
		os.Remove(path)
		after(hook)
	}

	// Recording: the commit waits for the standby, which never answers;
	// the primary dies under it and the standby, which never saw it, is
	// promoted.
	marker, release := filepath.Join(c.Dir, "in-record"), filepath.Join(c.Dir, "release-record")
	path := adminHook(t, c, "a", "pre-receive", fmt.Sprintf("cat >/dev/null\ntouch %q\ni=0\nwhile [ ! -e %q ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n", marker, release))
	p = startInflight(t, pushTo("a", "recording", "recording\n"))
	waitFor(t, "the push to reach the update hook", exists(marker))
	if err := h.Stall(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(release, nil, 0o644)
	waitActivity(t, h, "gitmesh push", "SyncRep")
	failover("while a push records its version")
	if p.settle(t, "the push recording its version") {
		acked["recording"] = head()
	}
	os.Remove(path)
	after("recording")

	// A catch-up: b lags (its read lock was held while a pushed), and a
	// read on b waits for that lock when the primary dies.
	_, bID := ids(t, c, "team/app", "b")
	holdLock(t, c, lock.Read(repoID, bID))
	settings := c.Settings
	c.Settings = strings.Replace(settings, `lock_timeout = "10s"`, `lock_timeout = "2s"`, 1)
	c.Devices["a"].WriteConfig("")
	if r := run(pushTo("a", "lagging", "b lags\n")); r.Code != 0 {
		t.Fatalf("push while b's read lock is held: exit %d: %s", r.Code, r.Stderr)
	}
	acked["lagging"] = head()
	c.Settings = settings
	c.Devices["a"].WriteConfig("")
	read := startInflight(t, c.Devices["b"].GitCmd("alice", "", "ls-remote", url))
	waitActivity(t, h, "gitmesh fetch", "advisory")
	failover("while a read waits to catch up")
	read.settle(t, "the read catching up")
	after("catch-up")
}

// checkAcked reads every acknowledged branch through every device.
func checkAcked(t *testing.T, c *meshtest.Cluster, url string, acked map[string]string) {
	t.Helper()
	for _, dev := range []string{"a", "b", "c"} {
		out := c.Devices[dev].MustGit("alice", "", "ls-remote", url)
		for branch, id := range acked {
			if !strings.Contains(out, id+"\trefs/heads/"+branch+"\n") {
				t.Fatalf("device %s lost the acknowledged %s=%s:\n%s", dev, branch, id, out)
			}
		}
	}
}

func run(cmd *exec.Cmd) meshtest.Result {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := meshtest.Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		r.Code = -1
	}
	return r
}

// TestStalledDatabaseCommitsAreBounded stalls the primary's commits (its
// synchronous standby is named one that does not exist): reads on the
// fast path still work, a push ends within lock_timeout with exit 6 and a
// sentence, a later push is not stuck behind it, `check` is critical, and
// once commits go through again pushes work and nothing stays frozen.
func TestStalledDatabaseCommitsAreBounded(t *testing.T) {
	const lockTimeout = 3 * time.Second
	h, c := haCluster(t, "lock_timeout = \"3s\"\nrecord_timeout = \"4s\"\nconnect_timeout = \"2s\"")
	url := meshtest.URL("team/app")
	work, acked := pushed(t, c)
	c.WaitConverged("team/app")

	if err := h.Stall(); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"a", "b", "c"} {
		began := time.Now()
		r := c.Devices[dev].Git("alice", "", "ls-remote", url, "refs/heads/main")
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, acked) || time.Since(began) > lockTimeout {
			t.Fatalf("read on %s while commits stall: exit %d after %s: %q %s", dev, r.Code, time.Since(began), r.Stdout, r.Stderr)
		}
	}

	// The push, as sshd runs it: serve's own exit code. It speaks the
	// protocol (a ref command, an empty pack): the write lock and mark
	// come with the commands (issue 19).
	c.Commit(work, "README", "never committed\n")
	began := time.Now()
	r := rawPush(t, c, "a", "alice", "team/app", gitexecZero+" "+acked+" refs/heads/stalled")
	took := time.Since(began)
	if r.Code != 6 || !strings.Contains(r.Stderr, "does not commit") || took > lockTimeout+5*time.Second {
		t.Fatalf("push while commits stall: exit %d after %s (want 6 within about %s): %s", r.Code, took, lockTimeout, r.Stderr)
	}
	t.Logf("stalled push ended after %s: %s", took.Round(time.Millisecond), strings.TrimSpace(r.Stderr))

	// A later push, elsewhere, meets the stalled push's mark (committed
	// locally when its commit was cancelled): bounded too.
	began = time.Now()
	r = c.Devices["b"].Git("alice", work, "push", url, "main")
	took = time.Since(began)
	if r.Code == 0 || !strings.Contains(r.Stderr, "gitmesh: ") || took > 3*lockTimeout+5*time.Second {
		t.Fatalf("a later push while commits stall: exit %d after %s: %s", r.Code, took, r.Stderr)
	}
	t.Logf("later push ended after %s: %s", took.Round(time.Millisecond), said(r.Stderr))

	// An admin command that writes: bounded like a lock step, exit 6.
	began = time.Now()
	r = c.Admin("user", "add", "bob")
	if took = time.Since(began); r.Code != 6 || !strings.Contains(r.Stderr, "did not complete") || took > lockTimeout+2*time.Second+5*time.Second {
		t.Fatalf("user add while commits stall: exit %d after %s: %s", r.Code, took, r.Stderr)
	}
	if r := c.Admin("status", "team/app"); r.Code != 0 {
		t.Fatalf("status while commits stall: exit %d: %s", r.Code, r.Stderr)
	}

	chk := c.Admin("check", "--no-probe")
	if chk.Code != 2 || !strings.Contains(chk.Stdout, "CRITICAL") || !strings.Contains(chk.Stdout, "does not commit") {
		t.Fatalf("check while commits stall: exit %d: %s%s", chk.Code, chk.Stdout, chk.Stderr)
	}

	// Commits go through again: the cluster heals by itself.
	if err := h.Unstall(); err != nil {
		t.Fatal(err)
	}
	next := c.Commit(work, "README", "after the stall\n")
	waitFor(t, "a push to succeed after the stall", func() bool {
		return c.Devices["a"].Git("alice", work, "push", "-q", url, "main").Code == 0
	})
	c.WaitConverged("team/app")
	for _, dev := range []string{"a", "b", "c"} {
		if out := c.Devices[dev].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, next) {
			t.Fatalf("%s serves %q after the stall, want %s", dev, out, next)
		}
	}
	if chk := c.Admin("check", "--no-probe"); chk.Code != 0 {
		t.Fatalf("check after the stall: exit %d: %s%s", chk.Code, chk.Stdout, chk.Stderr)
	}

	// Commits stall while a push records its version: not acknowledged
	// after record_timeout (the cancelled commit may have committed
	// locally), and healed once commits go through again.
	// Held in the update hook: the write is marked by then (the mark
	// comes with the commands, issue 19).
	marker, release := filepath.Join(c.Dir, "in-update"), filepath.Join(c.Dir, "release")
	adminHook(t, c, "a", "update", fmt.Sprintf("cat >/dev/null\ntouch %q\ni=0\nwhile [ ! -e %q ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n", marker, release))
	unknown := c.Commit(work, "README", "recorded while commits stall\n")
	p := startInflight(t, c.Devices["a"].GitCmd("alice", work, "push", url, "main"))
	waitFor(t, "the push to reach the update hook", exists(marker))
	if err := h.Stall(); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	os.WriteFile(release, nil, 0o644)
	if p.settle(t, "the push recording while commits stall") {
		t.Fatalf("a push whose record never committed was acknowledged")
	}
	if took := time.Since(began); took > 4*time.Second+10*time.Second || !strings.Contains(p.stderr.String(), "did not confirm the push in time") {
		log, _ := os.ReadFile(c.Devices["a"].Log)
		t.Fatalf("push recording while commits stall: after %s: %s\n%s", took, p.stderr.String(), log)
	}
	if err := h.Unstall(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update"))
	last := c.Commit(work, "README", "after the stalled record\n")
	waitFor(t, "a push to succeed after the stalled record", func() bool {
		return c.Devices["b"].Git("alice", work, "push", "-q", url, "main").Code == 0
	})
	c.WaitConverged("team/app")
	for _, dev := range []string{"a", "b", "c"} {
		out := c.Devices[dev].MustGit("alice", "", "ls-remote", url, "refs/heads/main")
		if !strings.HasPrefix(out, last) {
			t.Fatalf("%s serves %q after the stalled record, want %s (its parent %s may or may not have been recorded)", dev, out, last, unknown)
		}
	}
	if r := c.Admin("verify"); r.Code != 0 {
		t.Fatalf("verify after the stalled record: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
}
