package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// killWriter starts a push of main to team/app on dev, waits until
// reached() and kills its serve with SIGKILL, as a crash would; then it
// calls release, if given, which lets go at once whatever held the push
// (a hold ends by itself once its push is gone, only later). It returns
// the push's stderr.
func killWriter(t *testing.T, c *meshtest.Cluster, dev, work string, reached func() bool, release ...func()) string {
	t.Helper()
	return killPush(t, c, dev, work, "team/app", reached, func() {
		for _, f := range release {
			if f != nil {
				f()
			}
		}
	})
}

// killPush is killWriter for a push to repo.
func killPush(t *testing.T, c *meshtest.Cluster, dev, work, repo string, reached func() bool, release func()) string {
	t.Helper()
	push := c.Devices[dev].GitCmd("alice", work, "push", meshtest.URL(repo), "main")
	var stderr bytes.Buffer
	push.Stderr = &stderr
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the push to reach the stage", reached)
	var pid int
	if err := c.DB().QueryRow(`SELECT (write_properties->>'pid')::int FROM working_copy_versions
		WHERE is_writing AND repository_id = (SELECT id FROM repositories WHERE name = $1)`, repo).Scan(&pid); err != nil {
		t.Fatalf("no write mark at the stage: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if release != nil {
		release()
	}
	if err := finish(t, push); err == nil {
		t.Fatalf("push acknowledged although its serve was killed: %s", stderr.String())
	}
	return stderr.String()
}

// heals lists the heal events recorded in sync_log.
func heals(t *testing.T, c *meshtest.Cluster) []string {
	t.Helper()
	rows, err := c.DB().Query(`SELECT d.name || ': ' || s.result FROM sync_log s JOIN devices d ON d.id = s.device_id
		WHERE s.kind = 'heal' ORDER BY s.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// healsAfterKill kills a writer on a at the stage reached() reports
// (release lets go what held it there), then expects the next push,
// through dev, to repair the repository by itself and land, with nothing
// acknowledged lost.
func healsAfterKill(t *testing.T, c *meshtest.Cluster, work, base, dev string, reached func() bool, release, undo func()) {
	t.Helper()
	url := meshtest.URL("team/app")
	c.Commit(work, "README", "killed, never acknowledged\n")
	killWriter(t, c, "a", work, reached, release)
	undo()
	if !statusOf(t, c, "team/app")["a"].Frozen {
		t.Fatalf("status does not show the dead writer's mark:\n%s", c.MustAdmin("status", "team/app"))
	}
	next := c.Commit(work, "README", "after the repair\n")
	r := c.Devices[dev].Git("alice", work, "push", url, "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "repair") {
		dumpLogs(t, c)
		t.Fatalf("push through %s after the writer died: exit %d, %s", dev, r.Code, r.Stderr)
	}
	c.WaitConverged("team/app")
	serves(t, c, next, "a", "b", "c")
	for _, d := range []string{"a", "b", "c"} {
		clone := filepath.Join(c.Dir, fmt.Sprintf("check-%s-%d", d, time.Now().UnixNano()))
		c.Devices[d].MustGit("alice", "", "clone", "-q", url, clone)
		if log := c.LocalGit(clone, "log", "--format=%H"); !strings.Contains(log, base) {
			t.Fatalf("%s lost the acknowledged %s after the repair:\n%s", d, base, log)
		}
	}
	h := heals(t, c)
	if len(h) != 1 || !strings.HasPrefix(h[0], "a: ok: ") {
		t.Fatalf("heal events: %q, want one by a", h)
	}
	if r := c.Admin("verify", "team/app"); r.Code != 0 {
		t.Fatalf("verify after the repair: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestWriterKilledWhileReceivingHealsOnTheNextPushElsewhere(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	work, base := pushed(t, c)
	c.WaitConverged("team/app")
	held := holdHook(t, c, "a", "team/app", "update")
	healsAfterKill(t, c, work, base, "b", held.reached, held.let, func() {
		os.Remove(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update"))
	})
}

func TestWriterKilledWhileValidatingHealsOnTheNextPushThere(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	work, base := pushed(t, c)
	c.WaitConverged("team/app")
	held := holdHook(t, c, "a", "team/app", "update")
	healsAfterKill(t, c, work, base, "a", held.reached, held.let, func() {
		os.Remove(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update"))
	})
}

func TestWriterKilledWhileReplicatingHealsOnTheNextPushElsewhere(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	work, base := pushed(t, c)
	c.WaitConverged("team/app")
	// Holding b's and c's read locks keeps the writer replicating.
	conn, err := c.DB().Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `SELECT pg_advisory_lock(-d.id, r.id) FROM devices d, repositories r
		WHERE d.name IN ('b', 'c') AND r.name = 'team/app'`); err != nil {
		t.Fatal(err)
	}
	stagedOnA := func() bool { // the killed push is staged on a: it replicates now
		out := c.LocalGit(filepath.Join(c.Devices["a"].Root, "team/app.git"), "for-each-ref", "--format=%(objectname)", "refs/gitmesh/stage/")
		return out != "" && !strings.Contains(out, base)
	}
	healsAfterKill(t, c, work, base, "c", stagedOnA, nil, func() {
		conn.ExecContext(t.Context(), `SELECT pg_advisory_unlock_all()`)
	})
}

func TestWriterKilledWithItsCopyChangedIsRewoundFromAPeer(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	work, base := pushed(t, c)
	c.WaitConverged("team/app")
	dir := filepath.Join(c.Devices["a"].Root, "team/app.git")
	stray := c.Commit(work, "STRAY", "moved by hand on a\n")
	c.LocalGit(work, "push", "-q", dir, "HEAD:refs/heads/stray")
	c.LocalGit(work, "reset", "-q", "--hard", "HEAD~1")
	held := holdHook(t, c, "a", "team/app", "update")
	healsAfterKill(t, c, work, base, "b", held.reached, held.let, func() {
		os.Remove(filepath.Join(dir, "hooks", "update"))
	})
	if out := c.LocalGit(dir, "for-each-ref", "refs/heads/stray"); strings.Contains(out, stray) {
		t.Fatalf("a still shows the stray ref after being rewound: %s", out)
	}
}

func TestDeadWriterWithNoGoodCopyStaysFrozenWithTheReason(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.Devices["b"].MustGit("alice", "", "ls-remote", url)
	// Quorum 1: a alone holds the newest version.
	a := c.Devices["a"]
	a.WriteConfig(`write_quorum = 1`)
	only := c.Commit(work, "README", "only on a\n")
	pushWithout(t, c, "a", work, []string{"b"}, url, "main")
	dir := filepath.Join(a.Root, "team/app.git")
	c.LocalGit(work, "push", "-q", dir, "HEAD:refs/heads/stray")
	held := holdHook(t, c, "a", "team/app", "update")
	c.Commit(work, "README", "killed\n")
	killWriter(t, c, "a", work, held.reached, held.let)
	os.Remove(filepath.Join(dir, "hooks", "update"))

	for _, d := range []string{"a", "b"} {
		r := c.Devices[d].Git("alice", work, "push", url, "main")
		if r.Code == 0 || !strings.Contains(r.Stderr, "frozen") || !strings.Contains(r.Stderr, "no other device holds it") {
			t.Fatalf("push through %s: exit %d, %s", d, r.Code, r.Stderr)
		}
	}
	if st := c.MustAdmin("status", "team/app"); !strings.Contains(st, "FROZEN") {
		t.Fatalf("status does not show FROZEN:\n%s", st)
	}
	h := heals(t, c)
	if len(h) != 1 || !strings.HasPrefix(h[0], "a: frozen: ") {
		t.Fatalf("heal events after two refused pushes: %q, want the refusal recorded once", h)
	}
	m := scrape(t, c)
	if got := value(t, m, "gitmesh_heal_refusals_total", "device", "a"); got != 1 {
		t.Errorf("metrics: %v refused repairs on a, want 1", got)
	}
	if got := value(t, m, "gitmesh_heals_total", "device", "a"); got != 0 {
		t.Errorf("metrics: %v repairs made on a, want 0 (it was refused)", got)
	}
	if out := a.MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, only) {
		t.Fatalf("a serves %q, want the acknowledged %s", out, only)
	}
	c.MustAdmin("thaw", "team/app", "--promote", "a", "--force")
	writable(t, c, "team/app")
}

// A dead writer's mark is repaired by its own device's sync and by its
// own device's replicate, never by another device's sync.
func TestDeadWriterHealsBySyncAndReplicate(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	hook := filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update")
	kill := func(what string) {
		t.Helper()
		held := holdHook(t, c, "a", "team/app", "update")
		c.Commit(work, "README", what+"\n")
		killWriter(t, c, "a", work, held.reached, held.let)
		os.Remove(hook)
	}

	kill("killed before a's sync")
	if r := c.Devices["b"].Run(nil, "sync", "team/app"); r.Code != 0 {
		t.Fatalf("sync on b: exit %d, %s", r.Code, r.Stderr)
	}
	if !statusOf(t, c, "team/app")["a"].Frozen {
		t.Fatal("b's sync repaired a's mark: only a may")
	}
	if h := heals(t, c); len(h) != 0 {
		t.Fatalf("heal events after b's sync: %q, want none", h)
	}
	// The writer's own device: its sync repairs the mark and says so.
	r := c.Devices["a"].Run(nil, "sync", "team/app")
	if r.Code != 0 || !strings.Contains(r.Stdout, "team/app: current on a") {
		t.Fatalf("sync on a: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	writable(t, c, "team/app")
	if h := heals(t, c); len(h) != 1 || !strings.HasPrefix(h[0], "a: ok: ") {
		t.Fatalf("heal events after a's sync: %q, want one by a", h)
	}

	// A sweep an hour away: replicate looks for dead writers' marks itself.
	kill("killed before a's replicate")
	cmd := exec.Command(meshtest.Binary(), "--config", c.Devices["a"].Config, "replicate", "--sweep", "1h")
	cmd.Env = meshtest.GitEnv(c.Dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "a's replicate to repair the mark", func() bool {
		return !statusOf(t, c, "team/app")["a"].IsWriting
	})
	writable(t, c, "team/app")
	if h := heals(t, c); len(h) != 2 || !strings.HasPrefix(h[1], "a: ok: ") {
		t.Fatalf("heal events after a's replicate: %q, want a second one by a", h)
	}
}

func TestWriterKilledWhileRetryingToRecordHealsOnceTheDatabaseIsBack(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	proxy := proxiedDevice(t, c, "a", `record_timeout = "60s"`)
	work, base := pushed(t, c)
	c.WaitConverged("team/app")
	fired := proxy.CutOn(recordMarker, true)
	cut := func() bool {
		select {
		case <-fired:
			return true
		default:
			return false
		}
	}
	healsAfterKill(t, c, work, base, "b", cut, nil, func() { proxy.SetDown(false) })
}

// A repair clears the mark and writes its sync_log row in one
// transaction: when the row cannot be written (here a trigger refuses
// it; in life, a failover between two transactions), the mark stays and
// the next try repairs it with its row. A freeze never ends unexplained.
func TestHealClearsTheMarkOnlyWithItsRecord(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	held := holdHook(t, c, "a", "team/app", "update")
	c.Commit(work, "README", "killed before the repair\n")
	killWriter(t, c, "a", work, held.reached, held.let)
	os.Remove(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update"))
	d := c.DB()
	if _, err := d.Exec(`CREATE FUNCTION refuse_heal_rows() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN IF NEW.kind = 'heal' THEN RAISE EXCEPTION 'no heal rows today'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER refuse_heal_rows BEFORE INSERT ON sync_log FOR EACH ROW EXECUTE FUNCTION refuse_heal_rows()`); err != nil {
		t.Fatal(err)
	}
	c.Devices["a"].Run(nil, "sync", "team/app")
	if !statusOf(t, c, "team/app")["a"].IsWriting {
		t.Fatal("the repair cleared a's mark although its sync_log row could not be written")
	}
	if _, err := d.Exec(`DROP TRIGGER refuse_heal_rows ON sync_log`); err != nil {
		t.Fatal(err)
	}
	if r := c.Devices["a"].Run(nil, "sync", "team/app"); r.Code != 0 {
		t.Fatalf("sync on a: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	writable(t, c, "team/app")
	if h := heals(t, c); len(h) != 1 || !strings.HasPrefix(h[0], "a: ok: ") {
		t.Fatalf("heal events: %q, want one by a", h)
	}
}
