package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"gitmesh/lock"
	"gitmesh/meshtest"
)

// scrape runs `gitmesh metrics` and parses its output with Prometheus's
// own text parser, as node_exporter's textfile collector would.
func scrape(t *testing.T, c *meshtest.Cluster) map[string]*dto.MetricFamily {
	t.Helper()
	// A push's attempt and staging rows are written by the converge it
	// starts once git has reported.
	meshtest.WaitDetached(t)
	out := c.MustAdmin("metrics")
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses gitmesh metrics: %v\n%s", err, out)
	}
	return families
}

// value is the value of the series of family name whose labels include
// every name=value pair in labels; it fails the test when there is none.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// freeze leaves a write mark on dev's copy of repo whose writer is gone:
// a push of work's main through dev is killed (SIGKILL) while its
// pre-receive hook runs. Until something meets the mark, nothing repairs
// it.
func freeze(t *testing.T, c *meshtest.Cluster, repo, dev, work string) {
	t.Helper()
	held := holdHook(t, c, dev, repo, "update")
	c.Commit(work, "KILLED", repo+" through "+dev+"\n")
	killPush(t, c, dev, work, repo, held.reached, held.let)
	if err := os.Remove(filepath.Join(c.Devices[dev].Root, repo+".git", "hooks", "update")); err != nil {
		t.Fatal(err)
	}
}

// frozenForGood freezes repo, which only dev holds, so that self-repair
// cannot open it again: a branch is moved in dev's copy by hand first, so
// the copy no longer shows its recorded version, and no other device
// holds that version.
func frozenForGood(t *testing.T, c *meshtest.Cluster, repo, dev, work string) {
	t.Helper()
	c.LocalGit(work, "push", "-q", filepath.Join(c.Devices[dev].Root, repo+".git"), "HEAD:refs/heads/stray")
	freeze(t, c, repo, dev, work)
}

// A device that missed a push shows lag 1, a frozen repository frozen 1,
// pushes and lock waits are counted per device, and a catch-up read
// counts as a fetch with its time of last sync.
func TestMetricsParsedByPrometheus(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	c.Commit(work, "README", "c is away for this one\n")
	pushWithout(t, c, "a", work, []string{"c"}, url, "main")
	// One copy, on a: no other device holds its version to repair it from.
	c.MustAdmin("repo", "create", "team/frozen", "--copies", "1")
	c.MustAdmin("grant", "alice", "team/frozen", "write")
	frozenForGood(t, c, "team/frozen", "a", work)

	m := scrape(t, c)
	if got := value(t, m, "gitmesh_copy_version_lag", "repository", "team/app", "device", "c"); got != 1 {
		t.Errorf("lag of c, which missed a push: %v, want 1", got)
	}
	if got := value(t, m, "gitmesh_copy_version_lag", "repository", "team/app", "device", "a"); got != 0 {
		t.Errorf("lag of a, the writer: %v, want 0", got)
	}
	if got := value(t, m, "gitmesh_copy_frozen", "repository", "team/frozen", "device", "a"); got != 1 {
		t.Errorf("frozen of team/frozen on a: %v, want 1", got)
	}
	if got := value(t, m, "gitmesh_copy_frozen", "repository", "team/app", "device", "a"); got != 0 {
		t.Errorf("frozen of team/app on a: %v, want 0", got)
	}
	// a and b hold the newest version of team/app: the quorum of 2.
	if got := value(t, m, "gitmesh_repository_below_quorum", "repository", "team/app"); got != 0 {
		t.Errorf("below_quorum of team/app: %v, want 0", got)
	}
	if got := value(t, m, "gitmesh_pushes_total", "device", "a", "result", "ok"); got != 2 {
		t.Errorf("recorded pushes through a: %v, want 2", got)
	}
	if got := value(t, m, "gitmesh_pushes_total", "device", "b", "result", "ok"); got != 0 {
		t.Errorf("recorded pushes through b: %v, want 0", got)
	}
	if got := value(t, m, "gitmesh_push_seconds_total", "device", "a"); got <= 0 {
		t.Errorf("push seconds of a: %v, want more than 0", got)
	}

	// c reads: it fetches the version it missed, within its read.
	began := time.Now()
	c.Devices["c"].MustGit("alice", "", "ls-remote", url)
	read := time.Since(began)
	m = scrape(t, c)
	if got := value(t, m, "gitmesh_copy_version_lag", "repository", "team/app", "device", "c"); got != 0 {
		t.Errorf("lag of c after its read: %v, want 0", got)
	}
	if got := value(t, m, "gitmesh_fetches_total", "device", "c"); got != 1 {
		t.Errorf("fetches by c after its one catch-up read: %v, want 1", got)
	}
	if got := value(t, m, "gitmesh_last_sync_timestamp_seconds", "repository", "team/app", "device", "c"); got < float64(began.Unix()) || got > float64(time.Now().Unix()+1) {
		t.Errorf("last sync of c: %v, want the time of its read (%d)", got, began.Unix())
	}
	if got := value(t, m, "gitmesh_fetch_seconds_total", "device", "c"); got <= 0 || got > read.Seconds() {
		t.Errorf("fetch seconds of c: %v, want more than 0 and at most its read's %.3fs", got, read.Seconds())
	}
	if got := value(t, m, "gitmesh_fetches_total", "device", "a"); got != 0 {
		t.Errorf("fetches by a, which never lagged: %v, want 0", got)
	}

	// A push to a frozen repository is refused and counted as such.
	c.Commit(work, "README", "into the frozen one\n")
	if r := c.Devices["a"].Git("alice", work, "push", "-q", meshtest.URL("team/frozen"), "main"); r.Code == 0 || !strings.Contains(r.Stderr, "frozen") {
		t.Fatalf("a push to a repository self-repair cannot open: exit %d, %s", r.Code, r.Stderr)
	}
	m = scrape(t, c)
	if got := value(t, m, "gitmesh_pushes_total", "device", "a", "result", "frozen"); got != 1 {
		t.Errorf("refused pushes to a frozen repository: %v, want 1", got)
	}
}

// Two pushes at once to one repository: the second waits for the write
// lock while the first's pre-receive hook runs, both land, and metrics
// count one lock wait, as long as the wait was.
func TestMetricsCountLockWaits(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	held := holdHook(t, c, "a", "team/app", "update")
	other := c.Work("other") // a second client, with a clone of its own
	c.LocalGit(other, "pull", "-q", filepath.Join(c.Devices["a"].Root, "team/app.git"), "main")
	first := c.Commit(work, "README", "first\n")
	second := c.Commit(other, "OTHER", "second\n")

	firstDone := start(func() meshtest.Result { return c.Devices["a"].Git("alice", work, "push", url, "main") })
	waitFor(t, "the first push's pre-receive hook", held.reached)
	// The first holds the write lock until its hook ends; this one waits.
	began := time.Now()
	secondDone := start(func() meshtest.Result { return c.Devices["a"].Git("alice", other, "push", url, "main:other") })
	waitForLockWaiter(t, c, lock.Write(repoID(t, c, "team/app")), "the second push", secondDone)
	seen := time.Since(began)
	held.let()
	if r := outcome(t, "the first push", firstDone); r.Code != 0 || !acked(r.Stderr, "main") {
		t.Fatalf("the first push: exit %d, %s", r.Code, r.Stderr)
	}
	r := outcome(t, "the second push", secondDone)
	total := time.Since(began)
	if r.Code != 0 || !acked(r.Stderr, "other") {
		t.Fatalf("the push that waited: exit %d, %s", r.Code, r.Stderr)
	}
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url); !strings.Contains(out, first+"\trefs/heads/main") || !strings.Contains(out, second+"\trefs/heads/other") {
		t.Errorf("b serves %q, want main=%s and other=%s", out, first, second)
	}
	m := scrape(t, c)
	if got := value(t, m, "gitmesh_push_lock_waits_total", "device", "a"); got != 1 {
		t.Errorf("pushes that waited for the write lock: %v, want 1", got)
	}
	if got := value(t, m, "gitmesh_pushes_total", "device", "a", "result", "ok"); got != 3 {
		t.Errorf("recorded pushes through a: %v, want 3", got)
	}
	// The wait was seen in pg_locks before the first push was let go, and
	// it ended before the second push did.
	if got := value(t, m, "gitmesh_push_lock_wait_seconds_total", "device", "a"); got <= 0 || got > total.Seconds() {
		t.Errorf("lock wait seconds: %v, want more than 0 and at most the second push's %.3fs (it was seen waiting after %.3fs)", got, total.Seconds(), seen.Seconds())
	}
}

type checkReport struct {
	Status   string
	Problems []struct{ Severity, Kind, Repository, Device, Message string }
}

func check(t *testing.T, c *meshtest.Cluster, args ...string) meshtest.Result {
	t.Helper()
	return c.Admin(append([]string{"check"}, args...)...)
}

func wantCheck(t *testing.T, what string, r meshtest.Result, code int, line string) {
	t.Helper()
	if r.Code != code || !strings.Contains(r.Stdout, line) {
		t.Errorf("%s: check exited %d, want %d, with %q on stdout:\n%s%s", what, r.Code, code, line, r.Stdout, r.Stderr)
	}
}

// check's exit codes, on a real cluster: each state a monitoring system
// must tell apart.
func TestCheckExitCodes(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")

	wantCheck(t, "healthy", check(t, c), 0, "OK: 3 devices, 1 repository")

	// c misses a push: a warning only once it has lagged for longer than --lag-warn.
	c.Commit(work, "README", "c is away\n")
	pushWithout(t, c, "a", work, []string{"c"}, url, "main")
	wantCheck(t, "c just behind", check(t, c), 0, "OK:")
	wantCheck(t, "c behind, --lag-warn 0s", check(t, c, "--lag-warn", "0s"), 1, "WARNING: team/app on device c is 1 version(s) behind")
	c.Devices["c"].MustGit("alice", "", "ls-remote", url)

	// One device of three unreachable: pushes go on (warning); two: they
	// cannot (critical).
	breakURL(t, c, "c")
	wantCheck(t, "c unreachable", check(t, c), 1, "WARNING: device c is unreachable")
	breakURL(t, c, "b")
	wantCheck(t, "b and c unreachable", check(t, c), 2, "CRITICAL: device b is unreachable")
	if r := check(t, c, "--no-probe"); r.Code != 0 {
		t.Errorf("--no-probe still probed: exit %d\n%s", r.Code, r.Stdout)
	}
	restoreURLs(t, c)

	// Below quorum: only a holds the newest version.
	c.Commit(work, "README", "only a\n")
	pushWithout(t, c, "a", work, []string{"b", "c"}, url, "main")
	wantCheck(t, "below quorum", check(t, c), 2, "CRITICAL: team/app: only 1 of 3 devices hold the newest version")
	for _, d := range []string{"b", "c"} {
		c.Devices[d].MustGit("alice", "", "ls-remote", url)
	}
	wantCheck(t, "caught up", check(t, c), 0, "OK:")

	// Frozen: critical, and --json says so.
	freeze(t, c, "team/app", "b", work)
	r := check(t, c, "--json")
	var rep checkReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("check --json: %v\n%s", err, r.Stdout)
	}
	if r.Code != 2 || rep.Status != "critical" || len(rep.Problems) != 1 || rep.Problems[0].Kind != "frozen" ||
		rep.Problems[0].Device != "b" || rep.Problems[0].Severity != "critical" {
		t.Errorf("frozen, --json: exit %d, %+v", r.Code, rep)
	}
	wantCheck(t, "frozen", check(t, c), 2, "CRITICAL: team/app is frozen for writes: a push by alice")
	c.MustAdmin("thaw", "team/app", "--promote", "b", "--force")

	// A migration not applied: critical, saying what to run.
	db := c.DB()
	if _, err := db.Exec(`DELETE FROM schema_migrations WHERE name = '004_observe.sql'`); err != nil {
		t.Fatal(err)
	}
	wantCheck(t, "migration pending", check(t, c), 2, "CRITICAL: the database lacks migrations 004_observe.sql; run 'gitmesh migrate'")
	if _, err := db.Exec(`INSERT INTO schema_migrations (name) VALUES ('004_observe.sql')`); err != nil {
		t.Fatal(err)
	}

	// Unknown: no database, a bad flag, a bad setting.
	closed := "postgres://nobody@127.0.0.1:1/none?sslmode=disable"
	r = c.Devices["a"].Run([]string{"GITMESH_DATABASE_URL=" + closed}, "check")
	wantCheck(t, "no database", r, 3, "UNKNOWN: the coordination database is unreachable")
	if lines := strings.Split(strings.TrimSpace(r.Stderr), "\n"); len(lines) != 1 {
		t.Errorf("no database: want one sentence on stderr, got %q", r.Stderr)
	}
	r = c.Devices["a"].Run([]string{"GITMESH_DATABASE_URL=" + closed}, "check", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || r.Code != 3 || rep.Status != "unknown" {
		t.Errorf("no database, --json: exit %d, %v: %s", r.Code, err, r.Stdout)
	}
	wantCheck(t, "bad --lag-warn", check(t, c, "--lag-warn", "soon"), 3, "UNKNOWN: --lag-warn takes a duration")
	wantCheck(t, "unknown flag", check(t, c, "--frob"), 3, "UNKNOWN:")
	r = c.Devices["a"].Run(nil, "--write-quorum", "most", "check")
	wantCheck(t, "bad setting", r, 3, "UNKNOWN:")
	r = c.Devices["a"].Run(nil, "--write-quorum", "most", "check", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || r.Code != 3 || rep.Status != "unknown" {
		t.Errorf("bad setting, --json: exit %d, %v: %s", r.Code, err, r.Stdout)
	}
	if r := c.Admin("check", "--help"); r.Code != 0 || !strings.Contains(r.Stdout, "--lag-warn") {
		t.Errorf("check --help: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// Over real sshd, check logs in to each device with the cluster key; a
// device whose sshd is down is reported unreachable with ssh's reason.
func TestCheckProbesDevicesOverSSH(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	wantCheck(t, "all up", check(t, c.Cluster), 0, "OK: 3 devices")
	// The probe by hand: the cluster key, no command; nothing on stdout.
	if r := c.Hosts["a"].SSH(c.ClusterKey, nil); r.Code != 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "device a is reachable") {
		t.Errorf("ssh with the cluster key and no command: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// A probe is not an error on the device probed.
	if log, _ := os.ReadFile(c.Devices["b"].Log); strings.Contains(string(log), `"level":"error"`) {
		t.Errorf("b logged an error for check's probe:\n%s", log)
	}

	// A host without the cluster key cannot tell: it says so, and
	// --no-probe is quiet.
	c.Devices["a"].WriteConfig("")
	wantCheck(t, "no cluster key", check(t, c.Cluster), 1, "WARNING: device b was not probed: cluster_key and known_hosts are not set here")
	wantCheck(t, "no cluster key, --no-probe", check(t, c.Cluster, "--no-probe"), 0, "OK: 3 devices")
	c.SetPeerSettings("a", c.ClusterKey, c.KnownHosts)

	c.Hosts["c"].StopSSHD()
	wantCheck(t, "c down", check(t, c.Cluster), 1, "WARNING: device c is unreachable: ssh failed")
	c.Hosts["c"].StartSSHD()

	// sshd answers but the repo root is gone (an unmounted disk).
	root := c.Devices["b"].Root
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(root+".away", root)
	r := check(t, c.Cluster)
	wantCheck(t, "b's root gone", r, 1, "WARNING: device b is unreachable: ssh let the cluster key in, but the device answered (exit 1): gitmesh: this device's repo root cannot be read")
	if strings.Contains(r.Stdout, root) {
		t.Errorf("check names b's repo root: %s", r.Stdout)
	}
}

// sync-log shows who fetched what from whom, newest first, filtered by
// repository and device, with control characters escaped.
func TestSyncLog(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	c.Commit(work, "README", "b is away\n")
	pushWithout(t, c, "a", work, []string{"b"}, url, "main")
	meshtest.WaitDetached(t) // its staging is recorded once git has reported
	c.Devices["b"].MustGit("alice", "", "ls-remote", url)

	var entries []struct {
		Repository, Device, From, Kind, Result string
		FromVersion                            *int64 `json:"from_version"`
		ToVersion                              *int64 `json:"to_version"`
	}
	out := c.MustAdmin("sync-log", "team/app", "--json")
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("sync-log --json: %v\n%s", err, out)
	}
	if len(entries) == 0 {
		t.Fatalf("no sync-log entry after b caught up:\n%s", out)
	}
	e := entries[0]
	if e.Repository != "team/app" || e.Device != "b" || e.From != "a" || e.Kind != "fetch" || e.Result != "ok" ||
		e.FromVersion == nil || e.ToVersion == nil || *e.ToVersion != *e.FromVersion+1 {
		t.Errorf("newest entry: %+v, want b fetching one version from a", e)
	}
	staged, refused := 0, 0
	for _, e := range entries {
		if e.Kind == "stage" && e.Device == "b" && e.From == "a" {
			if e.Result == "ok" {
				staged++
			} else {
				refused++
			}
		}
	}
	if staged != 1 || refused != 1 {
		t.Errorf("stage entries of b from a: %d ok, %d failed; want the first push staged and the second failed (b away):\n%s", staged, refused, out)
	}
	if out := c.MustAdmin("sync-log", "--device", "a", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("a fetched nothing, yet: %s", out)
	}

	// A result holding a newline and an escape sequence stays on its line.
	if _, err := c.DB().Exec(`INSERT INTO sync_log (repository_id, device_id, from_device, from_version, to_version, duration_ms, result)
		SELECT r.id, d.id, NULL, 1, 2, 1500, E'fetch failed:\nfatal: \x1b[31mred'
		FROM repositories r, devices d WHERE r.name = 'team/app' AND d.name = 'a'`); err != nil {
		t.Fatal(err)
	}
	text := c.MustAdmin("sync-log", "--limit", "1")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "TIME") || strings.ContainsRune(text, 0x1b) ||
		!strings.Contains(lines[1], `fetch failed:\x0afatal: \x1b[31mred`) || !strings.Contains(lines[1], "1 -> 2") ||
		!strings.Contains(lines[1], "1.5s") {
		t.Errorf("sync-log --limit 1, newest entry with control characters:\n%s", text)
	}
	all := c.MustAdmin("sync-log", "--limit", "0")
	if n := len(strings.Split(strings.TrimSpace(all), "\n")) - 1; n != len(entries)+1 {
		t.Errorf("sync-log --limit 0 shows %d entries, want %d", n, len(entries)+1)
	}

	for _, bad := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"team/none"}, 3, `repository "team/none" is not registered; 'gitmesh repo list' lists the registered ones`},
		{[]string{"--device", "zz"}, 1, `device "zz" is not registered; 'gitmesh device list' lists the registered ones`},
		{[]string{"--limit", "-1"}, 2, "--limit takes a number"},
		{[]string{"../x"}, 2, ""},
	} {
		r := c.Admin(append([]string{"sync-log"}, bad.args...)...)
		if r.Code != bad.code || !strings.Contains(r.Stderr, bad.msg) || r.Stdout != "" ||
			len(strings.Split(strings.TrimSpace(r.Stderr), "\n")) != 1 {
			t.Errorf("sync-log %v: exit %d, stdout %q, stderr %q; want exit %d and one line saying %q",
				bad.args, r.Code, r.Stdout, r.Stderr, bad.code, bad.msg)
		}
	}
}

// Nothing a push records after git has reported holds the client: sshd
// keeps the client until serve exits, so the push's attempt and staging
// rows are written by the detached converge. With push_attempts locked,
// the push still answers (serve waits for no insert) and its row appears
// once the lock goes; written by serve itself, the insert would give up
// at its bound while the client waited, and the row would be lost.
func TestPushAnswersBeforeItsRecords(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)

	tx, err := c.DB().Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`LOCK TABLE push_attempts, sync_log IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	c.Commit(work, "README", "second\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitDetached(t)
	var attempts, staged int
	if err := c.DB().QueryRow(`SELECT (SELECT count(*) FROM push_attempts WHERE result = 'ok'),
		(SELECT count(*) FROM sync_log WHERE kind = 'stage')`).Scan(&attempts, &staged); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || staged != 4 {
		t.Errorf("after two pushes: %d ok attempts and %d stagings recorded, want 2 and 4 (each push on b and c)", attempts, staged)
	}
}

// A straggler cut once a quorum held the push is not a fault: sync-log
// says it was left to the catch-up after the answer, not that git died.
func TestSyncLogTellsAStragglerFromAFailure(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	conn, err := c.DB().Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// c's read lock held: its staging waits until the grace ends.
	if _, err := conn.ExecContext(t.Context(), `SELECT pg_advisory_lock(-d.id, r.id) FROM devices d, repositories r
		WHERE d.name = 'c' AND r.name = 'team/app'`); err != nil {
		t.Fatal(err)
	}
	c.Commit(work, "README", "c is slow\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	conn.ExecContext(t.Context(), `SELECT pg_advisory_unlock_all()`)
	meshtest.WaitDetached(t)
	var result string
	if err := c.DB().QueryRow(`SELECT s.result FROM sync_log s JOIN devices d ON d.id = s.device_id
		WHERE s.kind = 'stage' AND d.name = 'c' ORDER BY s.id DESC LIMIT 1`).Scan(&result); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(result, "a quorum held the push first") {
		t.Errorf("c's staging row after it was cut at the grace's end: %q, want it left to the catch-up", result)
	}
	c.WaitConverged("team/app")
}
