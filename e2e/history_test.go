package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// history is the model a randomised run is checked against: for each
// (repository, branch) the commits its writer made, in order, and the
// index of the newest one acknowledged to the client.
type history struct {
	mu    sync.Mutex
	index map[string]int // commit id -> position in its writer's chain
	acked map[string]int // "repo branch" -> newest acknowledged position
}

func (h *history) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.acked))
	for k, v := range h.acked {
		out[k] = v
	}
	return out
}

// TestRandomisedHistoryWithFaults runs writers and readers on three devices
// at once while killing serve processes, cutting database connections and
// making peer URLs unreachable, then checks that nothing acknowledged was
// lost or read stale. GITMESH_SEED replays a run; GITMESH_HISTORY_OPS sets
// its length.
func TestRandomisedHistoryWithFaults(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GITMESH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	ops := 240
	if s := os.Getenv("GITMESH_HISTORY_OPS"); s != "" {
		ops, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (replay with GITMESH_SEED=%d)", seed, seed)
	fmt.Fprintf(os.Stderr, "history test seed %d\n", seed)

	c := meshtest.NewCluster(t, "a", "b", "c")
	u, _ := url.Parse(c.DBURL)
	proxy := meshtest.NewProxy(t, u.Host)
	proxied := *u
	proxied.Host = proxy.Addr
	for _, d := range c.Devices {
		if d.Name == "a" {
			d.DBURL = proxied.String()
		}
		d.WriteConfig("lock_timeout = \"20s\"\nrecord_timeout = \"3s\"\nfetch_timeout = \"20s\"")
	}
	repos := []string{"team/app", "team/lib"}
	c.User("alice")
	for _, r := range repos {
		c.CreateRepo("a", r)
		c.MustAdmin("grant", "alice", r, "write")
	}
	devs := []string{"a", "b", "c"}
	h := &history{index: map[string]int{}, acked: map[string]int{}}
	// Writers and readers draw from separate budgets: a third of the
	// operations are pushes.
	var pushesLeft, readsLeft atomic.Int64
	pushesLeft.Store(int64(ops / 3))
	readsLeft.Store(int64(ops - ops/3))
	var violations []string
	var vmu sync.Mutex
	violate := func(format string, args ...any) {
		vmu.Lock()
		violations = append(violations, fmt.Sprintf(format, args...))
		vmu.Unlock()
	}

	var pushOK, pushFail, readOK, readFail atomic.Int64
	var wg sync.WaitGroup
	const writers, readers = 3, 3
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			works := map[string]string{}
			n := map[string]int{}
			for pushesLeft.Add(-1) >= 0 {
				repo := repos[rng.IntN(len(repos))]
				branch := fmt.Sprintf("w%d", w)
				work, ok := works[repo]
				if !ok {
					work = c.Work(fmt.Sprintf("w%d-%s", w, strings.ReplaceAll(repo, "/", "-")))
					works[repo] = work
				}
				n[repo]++
				c.LocalGit(work, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("%s %s %d", repo, branch, n[repo]))
				id := strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD"))
				h.mu.Lock()
				h.index[id] = n[repo]
				h.mu.Unlock()
				dev := devs[rng.IntN(len(devs))]
				r := c.Devices[dev].Git("alice", work, "push", "-q", "--force", meshtest.URL(repo), "HEAD:refs/heads/"+branch)
				if r.Code != 0 {
					pushFail.Add(1)
					if os.Getenv("GITMESH_HISTORY_VERBOSE") != "" {
						t.Logf("push to %s: %s", dev, strings.ReplaceAll(r.Stderr, "\n", " | "))
					}
				} else {
					pushOK.Add(1)
					h.mu.Lock()
					h.acked[repo+" "+branch] = n[repo]
					h.mu.Unlock()
				}
			}
		}(w)
	}
	for rd := 0; rd < readers; rd++ {
		wg.Add(1)
		go func(rd int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(100+rd)))
			for readsLeft.Add(-1) >= 0 {
				repo := repos[rng.IntN(len(repos))]
				dev := devs[rng.IntN(len(devs))]
				before := h.snapshot()
				r := c.Devices[dev].Git("alice", "", "ls-remote", meshtest.URL(repo))
				if r.Code != 0 {
					readFail.Add(1)
					continue // a failed read serves nothing stale
				}
				readOK.Add(1)
				checkRead(h, before, repo, dev, r.Stdout, violate)
			}
		}(rd)
	}
	stop := make(chan struct{})
	var faults sync.WaitGroup
	faults.Add(2)
	go func() { defer faults.Done(); injectFaults(t, c, proxy, seed, stop) }()
	var demoted, refused atomic.Int64
	go func() { defer faults.Done(); repairLoop(t, c, h, seed, stop, violate, &demoted, &refused) }()
	wg.Wait()
	close(stop)
	faults.Wait()

	// Quiet now: everything frozen must show in status and recover with thaw.
	proxy.SetDown(false)
	restoreURLs(t, c)
	frozen := frozenCopies(t, c)
	var truth int
	c.DB().QueryRow(`SELECT count(*) FROM working_copy_versions WHERE is_writing`).Scan(&truth)
	if len(frozen) != truth {
		t.Errorf("status reports %d frozen copies, the database holds %d", len(frozen), truth)
	}
	for _, f := range frozen {
		c.MustAdmin("thaw", f[0], "--promote", f[1], "--force")
	}
	if left := frozenCopies(t, c); len(left) != 0 {
		t.Errorf("still frozen after thaw: %v", left)
	}
	// Every acknowledged push is present on every device after a read there.
	final := h.snapshot()
	for _, repo := range repos {
		for _, dev := range devs {
			out := c.Devices[dev].MustGit("alice", "", "ls-remote", meshtest.URL(repo))
			checkRead(h, final, repo, dev, out, violate)
		}
	}
	t.Logf("seed %d: pushes %d acknowledged, %d failed; reads %d served, %d failed; %d branch heads checked; thaw --demote without --force: %d succeeded, %d refused",
		seed, pushOK.Load(), pushFail.Load(), readOK.Load(), readFail.Load(), len(final), demoted.Load(), refused.Load())
	if pushOK.Load() < int64(ops)/16 || readOK.Load() < int64(ops)/8 {
		t.Errorf("too few operations succeeded for the run to mean anything")
	}
	for _, v := range violations {
		t.Error(v)
	}
	if len(violations) > 0 {
		dumpLogs(t, c)
	}
	if len(violations) > 0 {
		t.Fatalf("seed %d: %d violations (replay with GITMESH_SEED=%d)", seed, len(violations), seed)
	}
}

// checkRead fails when a read served a branch older than the push
// acknowledged before the read began.
func checkRead(h *history, before map[string]int, repo, dev, out string, violate func(string, ...any)) {
	served := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if id, ref, ok := strings.Cut(line, "\t"); ok {
			served[strings.TrimPrefix(ref, "refs/heads/")] = id
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, want := range before {
		r, branch, _ := strings.Cut(key, " ")
		if r != repo {
			continue
		}
		id, ok := served[branch]
		if !ok {
			violate("%s on %s: branch %s missing, acknowledged #%d before the read", repo, dev, branch, want)
			continue
		}
		if got, known := h.index[id]; !known || got < want {
			violate("%s on %s: branch %s at #%d (%s), acknowledged #%d before the read", repo, dev, branch, got, id, want)
		}
	}
}

// injectFaults kills serve processes, cuts device a's database
// connections and makes a peer URL unreachable, at random, until stop.
func injectFaults(t *testing.T, c *meshtest.Cluster, proxy *meshtest.Proxy, seed uint64, stop chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, 999))
	db := c.DB()
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(100+rng.IntN(400)) * time.Millisecond):
		}
		switch f := rng.IntN(10); {
		case f < 3:
			killServe(rng)
		case f < 5:
			proxy.Cut()
		case f < 6:
			dev := []string{"a", "b", "c"}[rng.IntN(3)]
			db.Exec(`UPDATE devices SET url = '/nonexistent/' || name WHERE name = $1`, dev)
		default:
			restoreURLs(t, c)
		}
	}
}

// killServe sends SIGKILL to one running `gitmesh serve`.
func killServe(rng *rand.Rand) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), meshtest.Binary()) || !strings.Contains(string(b), "\x00serve\x00") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) > 0 {
		syscall.Kill(pids[rng.IntN(len(pids))], syscall.SIGKILL)
	}
}

func restoreURLs(t *testing.T, c *meshtest.Cluster) {
	for _, d := range c.Devices {
		if _, err := c.DB().Exec(`UPDATE devices SET url = $1 WHERE name = $2`, d.Root, d.Name); err != nil {
			t.Errorf("restore url of %s: %v", d.Name, err)
		}
	}
}

// repairLoop plays the administrator: it thaws what status reports frozen.
// At random (seeded) it first tries --demote without --force, which must
// either thaw changing nothing acknowledged (checked by a read on the
// demoted device against what was acknowledged before the thaw) or refuse
// and leave the repository frozen; otherwise, or after a refusal, it
// promotes the writer's copy (it held the newest version when it wrote)
// with --force.
func repairLoop(t *testing.T, c *meshtest.Cluster, h *history, seed uint64, stop chan struct{}, violate func(string, ...any), demoted, refused *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, 777))
	verbose := os.Getenv("GITMESH_HISTORY_VERBOSE") != ""
	admin := c.Devices["b"]
	for {
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
		r := admin.Run(nil, "status", "--json")
		var rows []struct {
			Repository string `json:"repository"`
			Device     string `json:"device"`
			IsWriting  bool   `json:"is_writing"`
		}
		if json.Unmarshal([]byte(r.Stdout), &rows) != nil {
			continue
		}
		for _, row := range rows {
			if !row.IsWriting {
				continue
			}
			if rng.IntN(2) == 0 {
				before := h.snapshot()
				r := admin.Run(nil, "thaw", row.Repository, "--demote", row.Device)
				if verbose {
					t.Logf("%s thaw %s --demote %s: exit %d: %s %s", time.Now().Format("15:04:05.000"), row.Repository, row.Device, r.Code, r.Stdout, r.Stderr)
				}
				if r.Code == 0 {
					demoted.Add(1)
					// The demoted copy resyncs from the others on this read:
					// it must hold every push acknowledged before the thaw.
					if rd := c.Devices[row.Device].Git("alice", "", "ls-remote", meshtest.URL(row.Repository)); rd.Code == 0 {
						checkRead(h, before, row.Repository, row.Device+" (after thaw --demote)", rd.Stdout, violate)
					}
					continue
				}
				refused.Add(1)
			}
			r := admin.Run(nil, "thaw", row.Repository, "--promote", row.Device, "--force")
			if verbose {
				t.Logf("%s thaw %s --promote %s --force: exit %d: %s %s", time.Now().Format("15:04:05.000"), row.Repository, row.Device, r.Code, r.Stdout, r.Stderr)
			}
		}
	}
}

// frozenCopies lists (repository, device) pairs status reports frozen.
func frozenCopies(t *testing.T, c *meshtest.Cluster) [][2]string {
	out := c.MustAdmin("status", "--json")
	var rows []struct {
		Repository string `json:"repository"`
		Device     string `json:"device"`
		IsWriting  bool   `json:"is_writing"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var frozen [][2]string
	for _, r := range rows {
		if r.IsWriting {
			frozen = append(frozen, [2]string{r.Repository, r.Device})
		}
	}
	return frozen
}

func dumpLogs(t *testing.T, c *meshtest.Cluster) {
	for _, d := range c.Devices {
		b, _ := os.ReadFile(d.Log)
		os.WriteFile("/tmp/history-"+d.Name+".log", b, 0o644)
	}
	rows, err := c.DB().Query(`SELECT to_char(p.created_at, 'HH24:MI:SS.MS'), r.name, d.name, p.ref, left(p.old_value, 8), left(p.new_value, 8), p.version
		FROM push_log p JOIN repositories r ON r.id = p.repository_id JOIN devices d ON d.id = p.device_id ORDER BY p.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var at, repo, dev, ref, o, n string
		var v int64
		rows.Scan(&at, &repo, &dev, &ref, &o, &n, &v)
		t.Logf("push %s %s on %s %s %s..%s v%d", at, repo, dev, ref, o, n, v)
	}
	rows, err = c.DB().Query(`SELECT to_char(s.created_at, 'HH24:MI:SS.MS'), r.name, d.name, f.name, COALESCE(s.from_version, -1), s.to_version, left(s.result, 60)
		FROM sync_log s JOIN repositories r ON r.id = s.repository_id JOIN devices d ON d.id = s.device_id JOIN devices f ON f.id = s.from_device ORDER BY s.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var at, repo, dev, from, res string
		var fv, tv int64
		rows.Scan(&at, &repo, &dev, &from, &fv, &tv, &res)
		t.Logf("sync %s %s %s <- %s v%d->v%d %s", at, repo, dev, from, fv, tv, res)
	}
}
