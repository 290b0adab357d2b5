package e2e

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gitmesh/lock"
	"gitmesh/meshtest"
)

func TestSixteenReadersAfterAPushCauseOneFetch(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	url := meshtest.URL("team/app")
	work := c.Work("alice")
	want := c.Commit(work, "README", "hello\n")
	pushWithout(t, c, "a", work, []string{"c"}, url, "main") // c lags

	var wg sync.WaitGroup
	results := make([]meshtest.Result, 16)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = c.Devices["c"].Git("alice", "", "ls-remote", url, "refs/heads/main")
		}(i)
	}
	waitAll(t, &wg, "16 readers")
	for i, r := range results {
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, want) {
			t.Errorf("reader %d: exit %d, stdout %q, stderr %q", i, r.Code, r.Stdout, r.Stderr)
		}
	}
	var fetches int
	if err := c.DB().QueryRow(`SELECT count(*) FROM sync_log s JOIN devices d ON d.id = s.device_id
		WHERE d.name = 'c' AND s.kind = 'fetch' AND s.result = 'ok'`).Scan(&fetches); err != nil {
		t.Fatal(err)
	}
	if fetches != 1 {
		t.Fatalf("16 readers on c caused %d fetches, want exactly 1", fetches)
	}
}

// repoID is repo's id in the cluster's database.
func repoID(t *testing.T, c *meshtest.Cluster, repo string) int32 {
	t.Helper()
	var id int32
	if err := c.DB().QueryRow(`SELECT id FROM repositories WHERE name = $1`, repo).Scan(&id); err != nil {
		t.Fatalf("repository %s: %v", repo, err)
	}
	return id
}

// lockWaiters lists, from pg_locks, the application names of the sessions
// of db's database waiting for key.
func lockWaiters(t *testing.T, db *sql.DB, key lock.Key) []string {
	t.Helper()
	rows, err := db.Query(`SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 2
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid = $1::int4::oid AND l.objid = $2::int4::oid`, key.Class, key.Obj)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var apps []string
	for rows.Next() {
		var app string
		if err := rows.Scan(&app); err != nil {
			t.Fatal(err)
		}
		apps = append(apps, app)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return apps
}

// waitForLockWaiter waits until some session waits for key; it fails the
// test if what must be waiting (the result of a process started by
// start) ends first.
func waitForLockWaiter(t *testing.T, c *meshtest.Cluster, key lock.Key, what string, ended <-chan meshtest.Result) {
	t.Helper()
	db := c.DB() // one pool for every poll
	waitFor(t, what+" to wait for "+key.Describe(), func() bool {
		select {
		case r := <-ended:
			t.Fatalf("%s ended instead of waiting for %s: exit %d, %s%s", what, key.Describe(), r.Code, r.Stdout, r.Stderr)
		default:
		}
		return len(lockWaiters(t, db, key)) > 0
	})
}

// waitAll waits for wg, for at most two minutes.
func waitAll(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s still run after two minutes", what)
	}
}

// start runs f in the background; the channel gets its result.
func start(f func() meshtest.Result) <-chan meshtest.Result {
	ch := make(chan meshtest.Result, 1)
	go func() { ch <- f() }()
	return ch
}

// outcome waits, for at most a minute, for the result of what start ran.
func outcome(t *testing.T, what string, ch <-chan meshtest.Result) meshtest.Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Minute):
		t.Fatalf("%s still runs after a minute", what)
		return meshtest.Result{}
	}
}

// pushVersions maps each ref of repo's push log to the versions that
// recorded an update of it.
func pushVersions(t *testing.T, c *meshtest.Cluster, repo string) map[string][]int64 {
	t.Helper()
	rows, err := c.DB().Query(`SELECT ref, version FROM push_log
		WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) ORDER BY id`, repo)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]int64{}
	for rows.Next() {
		var ref string
		var v int64
		if err := rows.Scan(&ref, &v); err != nil {
			t.Fatal(err)
		}
		out[ref] = append(out[ref], v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Two pushes at once through two devices: the second waits for the write
// lock (seen in pg_locks) while the first holds it, then goes on from the
// first's result. Each is its own version, one after the other, and
// neither loses a ref.
func TestConcurrentPushesToDifferentDevicesAreSerialised(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	url := meshtest.URL("team/app")
	base := c.Work("base")
	c.Commit(base, "README", "base\n")
	c.Devices["a"].MustGit("alice", base, "push", "-q", url, "main")
	_, v0 := copies(t, c, "team/app")

	// Each writer pushes its own branch and main.
	devs := []string{"a", "b"}
	heads := map[string]string{}
	works := map[string]string{}
	for _, d := range devs {
		w := c.Dir + "/w-" + d
		c.Devices["a"].MustGit("alice", "", "clone", "-q", url, w)
		heads[d] = c.Commit(w, d+".txt", d+"\n")
		works[d] = w
	}
	push := func(d string) <-chan meshtest.Result {
		return start(func() meshtest.Result {
			return c.Devices[d].Git("alice", works[d], "push", url, "main", "main:refs/heads/from-"+d)
		})
	}
	// a's push holds the write lock while its pre-receive hook runs.
	held := holdHook(t, c, "a", "team/app", "update")
	first := push("a")
	waitFor(t, "a's push to reach pre-receive", held.reached)
	second := push("b")
	waitForLockWaiter(t, c, lock.Write(repoID(t, c, "team/app")), "b's push", second)
	held.let()
	ra, rb := outcome(t, "a's push", first), outcome(t, "b's push", second)

	// a's push lands whole; b's goes on from it: its main is refused as
	// plain git would (a moved main first), its branch lands.
	if ra.Code != 0 || !acked(ra.Stderr, "main") || !acked(ra.Stderr, "from-a") {
		t.Fatalf("a's push: exit %d, %s", ra.Code, ra.Stderr)
	}
	if !acked(rb.Stderr, "from-b") || acked(rb.Stderr, "main") || !strings.Contains(rb.Stderr, "fetch first") {
		t.Fatalf("b's push, after a's: exit %d, want from-b pushed and main refused (fetch first): %s", rb.Code, rb.Stderr)
	}
	var waits []int64
	meshtest.WaitDetached(t) // the converge each push starts records its attempt
	rows, err := c.DB().Query(`SELECT p.lock_wait_ms FROM push_attempts p JOIN devices d ON d.id = p.device_id
		WHERE d.name = 'b' AND p.result = 'ok'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var ms int64
		if err := rows.Scan(&ms); err != nil {
			t.Fatal(err)
		}
		waits = append(waits, ms)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(waits) != 1 || waits[0] <= 0 {
		t.Errorf("b's recorded push waited %v ms for the write lock, want one wait of more than 0", waits)
	}
	// One version each, consecutive, in the order the lock gave.
	pv := pushVersions(t, c, "team/app")
	for ref, want := range map[string]int64{"refs/heads/main": v0 + 1, "refs/heads/from-a": v0 + 1, "refs/heads/from-b": v0 + 2} {
		if got := pv[ref]; len(got) == 0 || got[len(got)-1] != want {
			t.Errorf("push log of %s: versions %v, want the last at %d", ref, got, want)
		}
	}
	// Every device serves both branches and a's main.
	for _, reader := range []string{"a", "b", "c"} {
		out := c.Devices[reader].MustGit("alice", "", "ls-remote", url)
		for _, d := range devs {
			if !strings.Contains(out, fmt.Sprintf("%s\trefs/heads/from-%s", heads[d], d)) {
				t.Errorf("%s does not serve from-%s=%s:\n%s", reader, d, heads[d], out)
			}
		}
		if !strings.Contains(out, heads["a"]+"\trefs/heads/main") {
			t.Errorf("%s does not serve a's main %s:\n%s", reader, heads["a"], out)
		}
	}
	if got, newest := copies(t, c, "team/app"); newest != v0+2 || got["a"].Version != newest || got["b"].Version != newest || got["c"].Version != newest {
		t.Fatalf("after two serialised pushes read everywhere: %+v, want every copy at %d", got, v0+2)
	}
}

// A repository frozen for good (its writer died, and self-repair cannot
// prove any copy right) refuses pushes through every device, naming the
// device and the writer, and still serves reads of what was acknowledged.
func TestFrozenRepositoryRefusesPushesAndServesReads(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, first := pushed(t, c) // a and b hold it
	want := c.Commit(work, "README", "only on a\n")
	pushWithout(t, c, "a", work, []string{"b"}, url, "main") // a alone holds it
	frozenForGood(t, c, "team/app", "a", work)

	c.Commit(work, "README", "more\n")
	for _, d := range []string{"a", "b"} {
		r := c.Devices[d].Git("alice", work, "push", url, "main")
		if r.Code == 0 {
			t.Fatalf("push to %s of a frozen repository succeeded", d)
		}
		// The writer's name stays with status and the log (issue 19: it
		// may be another user's session).
		if !strings.Contains(r.Stderr, "frozen") || !strings.Contains(r.Stderr, "device a") || strings.Contains(r.Stderr, "a push by alice") {
			t.Fatalf("refusal on %s does not name the device, or names the writer: %s", d, r.Stderr)
		}
	}
	// a serves the acknowledged main; b, which holds only the version
	// before it, never serves that older one.
	if out := c.Devices["a"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, want) {
		t.Fatalf("read from a of a frozen repository: %q, want %s", out, want)
	}
	r := c.Devices["b"].Git("alice", "", "ls-remote", url, "refs/heads/main")
	if r.Code == 0 || strings.Contains(r.Stdout, first) || !strings.Contains(r.Stderr, "no up-to-date copy of team/app") {
		t.Fatalf("read from b, which lacks the acknowledged version: exit %d, %q, %s", r.Code, r.Stdout, r.Stderr)
	}
	st := c.MustAdmin("status", "team/app")
	if !strings.Contains(st, "FROZEN") {
		t.Fatalf("status does not report the frozen copy:\n%s", st)
	}
}
