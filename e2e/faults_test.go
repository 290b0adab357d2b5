package e2e

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// hold is an administrator's hook that stops a push (or a gc) at a known
// step: it touches a marker, then waits until let is called, or the
// process that ran it is gone (a killed serve or receive-pack), or a
// minute has passed; the test's end lets it go, so that a failing test
// leaves nothing behind.
type hold struct{ marker, release string }

// holdHook installs hook name (pre-receive, update, pre-auto-gc) in dev's
// copy of repo as such a hold, and returns it.
func holdHook(t *testing.T, c *meshtest.Cluster, dev, repo, name string) hold {
	t.Helper()
	return holdHookAt(t, c, dev, repo, name, "")
}

// slowPreReceive is holdHook's pre-receive hold with marker as its marker
// (exists(marker) tells it is reached).
func slowPreReceive(t *testing.T, c *meshtest.Cluster, dev, repo, marker string) hold {
	t.Helper()
	return holdHookAt(t, c, dev, repo, "update", marker)
}

// holdHookAt is holdHook with the marker at the path given ("": its own).
func holdHookAt(t *testing.T, c *meshtest.Cluster, dev, repo, name, marker string) hold {
	t.Helper()
	dir, err := os.MkdirTemp(c.Dir, "hold-")
	if err != nil {
		t.Fatal(err)
	}
	h := hold{marker: marker, release: filepath.Join(dir, "release")}
	if marker == "" {
		h.marker = filepath.Join(dir, "reached")
	}
	input := ""
	if name == "pre-receive" {
		input = "cat >/dev/null\n"
	}
	script := fmt.Sprintf("#!/bin/sh\n%stouch %q\ni=0\nwhile [ ! -e %q ] && kill -0 $PPID 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n",
		input, h.marker, h.release)
	path := filepath.Join(c.Devices[dev].Root, repo+".git", "hooks", name)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.let)
	return h
}

// reached reports whether a push (or gc) is held in the hook.
func (h hold) reached() bool { _, err := os.Stat(h.marker); return err == nil }

// let lets the held push (and every later one) go on.
func (h hold) let() { os.WriteFile(h.release, nil, 0o644) }

// finish waits for cmd, started before, for at most a minute: a test that
// waits for a process waits with a bound.
func finish(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("%s still runs after a minute", strings.Join(cmd.Args, " "))
		return nil
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func exists(path string) func() bool {
	return func() bool { _, err := os.Stat(path); return err == nil }
}

// pushed sets up team/app on a with one acknowledged commit, readable on
// every device, and returns the work tree and the commit.
func pushed(t *testing.T, c *meshtest.Cluster) (string, string) {
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	acked := c.Commit(work, "README", "acknowledged\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	return work, acked
}

func TestKilledServeIsRepairedByTheNextRead(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, acked := pushed(t, c)
	held := holdHook(t, c, "a", "team/app", "update")

	c.Commit(work, "README", "never acknowledged\n")
	killWriter(t, c, "a", work, held.reached, held.let)

	// status tells the dead writer's mark; the next read, on another
	// device, has a repair it (its writer is gone) and is served.
	if st := c.MustAdmin("status", "team/app"); !strings.Contains(st, "FROZEN") {
		t.Fatalf("status does not show the frozen copy:\n%s", st)
	}
	r := c.Devices["b"].Git("alice", "", "ls-remote", url, "refs/heads/main")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, acked) || !strings.Contains(r.Stderr, "asking a to repair it") {
		t.Fatalf("read from b after the writer died: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}
	if st := c.MustAdmin("status", "team/app"); strings.Contains(st, "FROZEN") {
		t.Fatalf("still frozen after a read asked a to repair it:\n%s", st)
	}
	os.Remove(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update"))
	next := c.Commit(work, "README", "after the repair\n")
	c.Devices["b"].MustGit("alice", work, "push", "-q", url, "main")
	for _, d := range []string{"a", "b", "c"} {
		clone := filepath.Join(c.Dir, "check-"+d)
		c.Devices[d].MustGit("alice", "", "clone", "-q", url, clone)
		log := c.LocalGit(clone, "log", "--format=%H")
		if !strings.Contains(log, acked) || !strings.Contains(log, next) {
			t.Fatalf("%s lost an acknowledged push after the repair:\n%s", d, log)
		}
	}
}

func TestCutDatabaseConnectionDuringPushIsNotAcknowledged(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	u, _ := url.Parse(c.DBURL)
	proxy := meshtest.NewProxy(t, u.Host)
	proxied := *u
	proxied.Host = proxy.Addr
	a := c.Devices["a"]
	a.DBURL = proxied.String()
	a.WriteConfig(`record_timeout = "2s"`)
	work, acked := pushed(t, c)
	repoURL := meshtest.URL("team/app")
	held := holdHook(t, c, "a", "team/app", "update")

	unacked := c.Commit(work, "README", "cut off\n")
	push := a.GitCmd("alice", work, "push", repoURL, "main")
	var stderr bytes.Buffer
	push.Stderr = &stderr
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the push to reach pre-receive", held.reached)
	proxy.SetDown(true)
	proxy.Cut()
	held.let()
	err := finish(t, push)
	if err == nil {
		t.Fatalf("the client got ok for a push whose database connection was cut: %s", stderr.String())
	}
	t.Logf("client stderr: %s", stderr.String())
	if !strings.Contains(stderr.String(), "database") {
		t.Errorf("the client was not told about the database: %s", stderr.String())
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != acked {
		t.Errorf("a has main=%s, want the acknowledged %s: a ref moved although the write lock was gone", got, acked)
	}
	proxy.SetDown(false)

	// The writer gave up and exited: the next push repairs the mark.
	os.Remove(filepath.Join(a.Root, "team/app.git", "hooks", "update"))
	r := c.Devices["b"].Git("alice", work, "push", repoURL, "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "repair") {
		t.Fatalf("push after the cut: exit %d, %s", r.Code, r.Stderr)
	}
	if out := a.MustGit("alice", "", "ls-remote", repoURL, "refs/heads/main"); !strings.HasPrefix(out, unacked) {
		t.Fatalf("after thaw and a new push, a serves %q", out)
	}
}

func TestReadsFailOverAndNeverServeStaleCopies(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	db := c.DB()

	// Each round a and b hold the newest version, a's URL leads nowhere,
	// and c reads. c tries the leaders in random order, so rounds go on
	// until c has tried a, failed, and then fetched from b.
	failovers(t, c, "a", "b", "", func(round int) string {
		latest := c.Commit(work, "README", fmt.Sprintf("round %d\n", round))
		pushWithout(t, c, "a", work, []string{"c"}, url, "main") // a and b at the newest, c behind
		if _, err := db.Exec(`UPDATE devices SET url = '/nonexistent/a' WHERE name = 'a'`); err != nil {
			t.Fatal(err)
		}
		return latest
	})
	restoreURLs(t, c)

	newer := c.Commit(work, "README", "newer\n")
	pushWithout(t, c, "c", work, []string{"a", "b"}, url, "main")
	if _, err := db.Exec(`UPDATE devices SET url = '/nonexistent/c' WHERE name = 'c'`); err != nil {
		t.Fatal(err)
	}
	// Only c holds the newest version and it is unreachable: b must refuse.
	r := c.Devices["b"].Git("alice", "", "ls-remote", url, "refs/heads/main")
	if r.Code == 0 || strings.Contains(r.Stdout, newer) || r.Stdout != "" {
		t.Fatalf("b served a stale copy: exit %d, stdout %q", r.Code, r.Stdout)
	}
	if !strings.Contains(r.Stderr, "no up-to-date copy") || !strings.Contains(r.Stderr, "c:") {
		t.Fatalf("b's refusal does not say why: %s", r.Stderr)
	}
}

func TestDatabaseRestartGivesClearErrorsThenService(t *testing.T) {
	pg, err := meshtest.StartOwnPostgres()
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	c := meshtest.NewClusterOn(t, pg, "a", "b")
	url := meshtest.URL("team/app")
	work, acked := pushed(t, c)

	if err := pg.StopServer(); err != nil {
		t.Fatal(err)
	}
	r := c.Devices["b"].Git("alice", "", "ls-remote", url)
	if r.Code == 0 || !strings.Contains(r.Stderr, "database is unreachable") {
		t.Fatalf("read while PostgreSQL is down: exit %d, %s", r.Code, r.Stderr)
	}
	r = c.Devices["a"].Git("alice", work, "push", url, "main:other")
	if r.Code == 0 || !strings.Contains(r.Stderr, "database is unreachable") {
		t.Fatalf("push while PostgreSQL is down: exit %d, %s", r.Code, r.Stderr)
	}
	// Never reached by this process: refused is told as a setting to
	// check (exit 1), naming it; a stopped server looks just the same.
	status := c.Admin("status")
	if status.Code != 1 || !strings.Contains(status.Stderr, "database is unreachable") || !strings.Contains(status.Stderr, "database_url") {
		t.Fatalf("status while PostgreSQL is down: exit %d, %s", status.Code, status.Stderr)
	}

	if err := pg.StartServer(); err != nil {
		t.Fatal(err)
	}
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, acked) {
		t.Fatalf("after restart b serves %q", out)
	}
	next := c.Commit(work, "README", "after restart\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != next {
		t.Fatalf("push after restart: a has %s", got)
	}
	if st := c.MustAdmin("status", "--json"); !strings.Contains(st, `"is_writing": false`) || strings.Contains(st, `"is_writing": true`) {
		t.Fatalf("status after restart:\n%s", st)
	}
}

func TestLockFilesLeftByAKilledGitDoNotWedgeACopy(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.Devices["b"].MustGit("alice", "", "ls-remote", url)
	// A git killed mid-update on b leaves its lock files behind.
	for _, p := range []string{"refs/heads/main.lock", "packed-refs.lock"} {
		if err := os.WriteFile(filepath.Join(c.Devices["b"].Root, "team/app.git", p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	next := c.Commit(work, "README", "next\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, next) {
		t.Fatalf("b serves %q after catching up, want %s", out, next)
	}
	os.WriteFile(filepath.Join(c.Devices["b"].Root, "team/app.git", "refs/heads/main.lock"), nil, 0o644)
	c.Commit(work, "README", "pushed to b\n")
	c.Devices["b"].MustGit("alice", work, "push", "-q", url, "main")
}

// syncAttempt is one fetch a device logged in sync_log.
type syncAttempt struct {
	id     int64
	from   string
	result string
}

func (a syncAttempt) String() string { return a.from + ": " + a.result }

func describe(tries []syncAttempt) string {
	var s []string
	for _, a := range tries {
		s = append(s, a.String())
	}
	return "[" + strings.Join(s, "; ") + "]"
}

// syncAttempts lists dev's fetches logged after id after, oldest first.
func syncAttempts(t *testing.T, c *meshtest.Cluster, dev string, after int64) []syncAttempt {
	t.Helper()
	rows, err := c.DB().Query(`SELECT s.id, f.name, s.result FROM sync_log s
		JOIN devices d ON d.id = s.device_id JOIN devices f ON f.id = s.from_device
		WHERE d.name = $1 AND s.id > $2 AND s.kind = 'fetch' ORDER BY s.id`, dev, after)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []syncAttempt
	for rows.Next() {
		var a syncAttempt
		if err := rows.Scan(&a.id, &a.from, &a.result); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// failoverRounds bounds failovers: a reader picks the broken leader first
// with probability 1/2, so 12 rounds all miss it with probability 2^-12.
const failoverRounds = 12

// failovers runs rounds until device c, reading, is seen to fail on the
// broken leader and then fetch from the healthy one. Each round restores
// every URL, then setup pushes a new commit so that broken and healthy
// both hold the newest version, breaks broken, and returns the commit;
// c's read must serve it. A round in which c fetches from healthy first
// proves nothing about failover and is run again.
// failure is a piece of the failed fetch's logged error.
func failovers(t *testing.T, c *meshtest.Cluster, broken, healthy, failure string, setup func(round int) string) {
	t.Helper()
	url := meshtest.URL("team/app")
	var seen int64
	for round := 1; round <= failoverRounds; round++ {
		restoreURLs(t, c)
		latest := setup(round)
		if out := c.Devices["c"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, latest) {
			t.Fatalf("round %d: c served %q, want %s", round, out, latest)
		}
		tries := syncAttempts(t, c, "c", seen)
		if len(tries) == 0 {
			t.Fatalf("round %d: c served the newest commit without logging a fetch", round)
		}
		seen = tries[len(tries)-1].id
		t.Logf("round %d: c fetched %s", round, describe(tries))
		// The read succeeded, so its last fetch is from healthy and ok, and
		// every fetch before it failed on broken.
		if last := tries[len(tries)-1]; last.from != healthy || last.result != "ok" {
			t.Fatalf("round %d: c's last fetch was %v, want ok from %s", round, last, healthy)
		}
		for _, a := range tries[:len(tries)-1] {
			if a.from != broken || a.result == "ok" || !strings.Contains(a.result, failure) {
				t.Fatalf("round %d: c's fetches %s: only a fetch from %s failing with %q may precede the ok one", round, describe(tries), broken, failure)
			}
		}
		if len(tries) > 1 {
			return
		}
	}
	t.Fatalf("in %d rounds c never tried %s before %s: reads do not fail over from a broken leader", failoverRounds, broken, healthy)
}

// recordMarker is a piece of the statement that records a push's version.
const recordMarker = "SET version = $4, refs_digest = $5, refs_pending = true"

func proxiedDevice(t *testing.T, c *meshtest.Cluster, dev, extra string) *meshtest.Proxy {
	u, _ := url.Parse(c.DBURL)
	proxy := meshtest.NewProxy(t, u.Host)
	proxied := *u
	proxied.Host = proxy.Addr
	d := c.Devices[dev]
	d.DBURL = proxied.String()
	d.WriteConfig(extra)
	return proxy
}

func TestWriterReconnectsToRecordAfterLosingItsSession(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	proxy := proxiedDevice(t, c, "a", `record_timeout = "30s"`)
	work, _ := pushed(t, c)
	url := meshtest.URL("team/app")

	next := c.Commit(work, "README", "recorded after a reconnect\n")
	fired := proxy.CutOn(recordMarker, false)
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	select {
	case <-fired:
	default:
		t.Fatal("the trap never fired: the record statement changed?")
	}
	if r.Code != 0 || !strings.Contains(r.Stderr, "retrying") {
		t.Fatalf("push whose session died before recording: exit %d, %s", r.Code, r.Stderr)
	}
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, next) {
		t.Fatalf("b serves %q, want the acknowledged %s", out, next)
	}
	if st := c.MustAdmin("status", "team/app"); strings.Contains(st, "FROZEN") {
		t.Fatalf("frozen after a recorded push:\n%s", st)
	}
}

func TestUnrecordablePushIsNotAcknowledgedAndHealsWhenItsWriterIsGone(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	proxy := proxiedDevice(t, c, "a", `record_timeout = "2s"`)
	work, acked := pushed(t, c)
	url := meshtest.URL("team/app")
	c.Devices["b"].MustGit("alice", "", "ls-remote", url) // b holds the acknowledged state

	c.Commit(work, "README", "never recorded\n")
	fired := proxy.CutOn(recordMarker, true)
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	select { // the push is over: the trap fired during it, or never will
	case <-fired:
	default:
		t.Fatalf("the trap never fired: the record statement changed? push: exit %d, %s", r.Code, r.Stderr)
	}
	proxy.SetDown(false)
	if r.Code == 0 || !strings.Contains(r.Stderr, "[remote rejected] main -> main") {
		t.Fatalf("the client saw success for an unrecorded push: exit %d, %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "retrying") {
		t.Errorf("the user was not told about the retries: %s", r.Stderr)
	}
	if st := c.MustAdmin("status", "team/app"); !strings.Contains(st, "FROZEN") {
		t.Fatalf("not frozen after an unrecorded push:\n%s", st)
	}
	// The writer is gone: the next read (on b) has a repair the mark.
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, acked) {
		t.Fatalf("b serves %q, want the last acknowledged %s", out, acked)
	}
	if st := c.MustAdmin("status", "team/app"); strings.Contains(st, "FROZEN") {
		t.Fatalf("still frozen after the writer is gone and a read met the mark:\n%s", st)
	}
	if out := c.Devices["a"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, acked) {
		t.Fatalf("after the repair a serves %q, want %s", out, acked)
	}
}

func TestAKilledPushLeavesNoHookDirectoryBehind(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	work, _ := pushed(t, c)
	url := meshtest.URL("team/app")
	held := holdHook(t, c, "a", "team/app", "update")
	c.Commit(work, "README", "killed\n")
	push := c.Devices["a"].GitCmd("alice", work, "push", url, "main")
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the push to reach pre-receive", held.reached)
	var pid int
	if err := c.DB().QueryRow(`SELECT (write_properties->>'pid')::int FROM working_copy_versions WHERE is_writing`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("gitmesh-%d", os.Getuid()), fmt.Sprintf("%d-*", pid)))
	if len(left) != 1 {
		t.Fatalf("hook directories of the running push: %v", left)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	held.let()
	finish(t, push)
	os.Remove(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update"))
	c.MustAdmin("thaw", "team/app", "--promote", "a")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	if _, err := os.Stat(left[0]); !os.IsNotExist(err) {
		t.Fatalf("the killed push's hook directory %s is still there after the next push", left[0])
	}
}
