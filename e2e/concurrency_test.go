package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"

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
	wg.Wait()
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

func TestConcurrentPushesToDifferentDevicesAreSerialised(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	url := meshtest.URL("team/app")
	base := c.Work("base")
	c.Commit(base, "README", "base\n")
	c.Devices["a"].MustGit("alice", base, "push", "-q", url, "main")

	// Each writer pushes its own branch and also tries main: both branch
	// pushes must land; of the two main pushes one may be rejected as a
	// non-fast-forward, exactly as plain git would.
	devs := []string{"a", "b"}
	heads := map[string]string{}
	works := map[string]string{}
	for _, d := range devs {
		w := c.Dir + "/w-" + d
		c.Devices["a"].MustGit("alice", "", "clone", "-q", url, w)
		heads[d] = c.Commit(w, d+".txt", d+"\n")
		works[d] = w
	}
	var wg sync.WaitGroup
	res := map[string]meshtest.Result{}
	var mu sync.Mutex
	for _, d := range devs {
		wg.Add(1)
		go func(d string) {
			defer wg.Done()
			r := c.Devices[d].Git("alice", works[d], "push", url, "main", "main:refs/heads/from-"+d)
			mu.Lock()
			res[d] = r
			mu.Unlock()
		}(d)
	}
	wg.Wait()
	mainWinners := 0
	for _, d := range devs {
		r := res[d]
		if r.Code != 0 && !strings.Contains(r.Stderr, "non-fast-forward") && !strings.Contains(r.Stderr, "fetch first") {
			t.Fatalf("push to %s failed for another reason than a non-fast-forward: %s", d, r.Stderr)
		}
		if r.Code == 0 {
			mainWinners++
		}
	}
	if mainWinners == 0 {
		t.Fatalf("neither push won main: %v", res)
	}
	// Every device serves both branches and the winner's main.
	for _, reader := range []string{"a", "b", "c"} {
		out := c.Devices[reader].MustGit("alice", "", "ls-remote", url)
		for _, d := range devs {
			if !strings.Contains(out, fmt.Sprintf("%s\trefs/heads/from-%s", heads[d], d)) {
				t.Errorf("%s does not serve from-%s=%s:\n%s", reader, d, heads[d], out)
			}
		}
	}
	var versions []int64
	rows, err := c.DB().Query(`SELECT DISTINCT version FROM working_copy_versions`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int64
		rows.Scan(&v)
		versions = append(versions, v)
	}
	// Each committed ref transaction is a version: at least base + 2.
	if len(versions) != 1 || versions[0] < 3 {
		t.Fatalf("after a base push and two serialised pushes read everywhere, versions are %v, want one value >= 3", versions)
	}
}

func TestFrozenRepositoryRefusesPushesAndServesReads(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	c.CreateRepo("a", "team/app", "alice")
	url := meshtest.URL("team/app")
	work := c.Work("alice")
	want := c.Commit(work, "README", "hello\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")

	// A writer on a that died between marking and recording.
	if _, err := c.DB().Exec(`UPDATE working_copy_versions SET is_writing = true,
		write_properties = jsonb_build_object('user', 'mallory', 'device', 'a', 'pid', 1,
		    'started', now(), 'token', 'dead')
		WHERE device_id = (SELECT id FROM devices WHERE name = 'a')`); err != nil {
		t.Fatal(err)
	}
	c.Commit(work, "README", "more\n")
	for _, d := range []string{"a", "b"} {
		r := c.Devices[d].Git("alice", work, "push", url, "main")
		if r.Code == 0 {
			t.Fatalf("push to %s of a frozen repository succeeded", d)
		}
		// The writer is another user: named in status and the log, not
		// to the pusher (issue 19).
		if !strings.Contains(r.Stderr, "frozen") || !strings.Contains(r.Stderr, "device a") || strings.Contains(r.Stderr, "mallory") {
			t.Fatalf("refusal on %s does not name the device, or names the writer: %s", d, r.Stderr)
		}
	}
	for _, d := range []string{"a", "b"} {
		out := c.Devices[d].MustGit("alice", "", "ls-remote", url, "refs/heads/main")
		if !strings.HasPrefix(out, want) {
			t.Fatalf("read from %s of a frozen repository: %q, want %s", d, out, want)
		}
	}
	st := c.MustAdmin("status", "team/app")
	if !strings.Contains(st, "FROZEN") {
		t.Fatalf("status does not report the frozen copy:\n%s", st)
	}
}
