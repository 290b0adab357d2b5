package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gitmesh/hook"
	"gitmesh/meshtest"
)

// history is the model a randomised run is checked against: for each
// (repository, branch) the commits its writer made, in order, and the
// index of the newest one acknowledged to the client; for each
// repository, every completed read.
type history struct {
	mu    sync.Mutex
	index map[string]int          // commit id -> position in its writer's chain
	acked map[string]int          // "repo branch" -> newest acknowledged position
	reads map[string][]servedRead // repo -> every completed read of it
}

// servedRead is one completed read: it served, at some moment between
// start and end, each branch at an index (0: the branch was missing).
type servedRead struct {
	start, end time.Time
	dev        string
	index      map[string]int // branch -> index served
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

// Kinds of violation, counted and reported separately.
const (
	stale     = "stale read"      // older than acknowledged before the read began
	backwards = "backwards read"  // older than a read that ended before it began
	lost      = "lost push"       // acknowledged, and not served at the end
	other     = "other violation" // anything else the run promises
)

// violations collects what a run found, by kind.
type violations struct {
	mu   sync.Mutex
	list []string
	n    map[string]int
}

func (v *violations) add(kind, format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.n == nil {
		v.n = map[string]int{}
	}
	v.n[kind]++
	v.list = append(v.list, kind+": "+fmt.Sprintf(format, args...))
}

func (v *violations) count(kind string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n[kind]
}

// The faults and device losses of a run.
const (
	faultKillServe   = "serve killed"
	faultKillRelay   = "proc-receive relay killed"
	faultURL         = "peer URL unreachable"
	faultWipe        = "disk wiped"
	faultRootAway    = "repo root away"
	faultCutDatabase = "database connections cut"
)

// TestRandomisedHistoryWithFaults runs writers and readers on three devices
// at once while killing serve processes and the proc-receive relays of
// pushes, cutting database connections, making peer URLs and repo roots
// unreachable and wiping one device's disk at a time, with one device's
// serve on a noexec TMPDIR; then it checks that nothing acknowledged was
// lost, no read was stale and no read went backwards. GITMESH_SEED replays
// a run; GITMESH_HISTORY_OPS sets its length; GITMESH_HISTORY_VERBOSE=1
// logs every failed push and every fault.
func TestRandomisedHistoryWithFaults(t *testing.T) {
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GITMESH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	ops := 300
	if s := os.Getenv("GITMESH_HISTORY_OPS"); s != "" {
		ops, _ = strconv.Atoi(s)
	}
	verbose := os.Getenv("GITMESH_HISTORY_VERBOSE") != ""
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
	// Device c serves with TMPDIR on a noexec filesystem: its pushes must
	// be recorded exactly like the others.
	noexec := noexecDir(t, filepath.Join(c.Dir, "noexec-tmp"))
	c.Devices["c"].Env = []string{"TMPDIR=" + noexec}
	repos := []string{"team/app", "team/lib"}
	c.User("alice")
	for _, r := range repos {
		c.CreateRepo("a", r)
		c.MustAdmin("grant", "alice", r, "write")
	}
	devs := []string{"a", "b", "c"}
	h := &history{index: map[string]int{}, acked: map[string]int{}, reads: map[string][]servedRead{}}
	// Writers and readers draw from separate budgets: a third of the
	// operations are pushes.
	var pushesLeft, readsLeft atomic.Int64
	pushesLeft.Store(int64(ops / 3))
	readsLeft.Store(int64(ops - ops/3))
	v := &violations{}
	// However the run fails (a helper's Fatal too), what it found and
	// what each device logged are kept.
	reported := false
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if !reported {
			for _, s := range v.list {
				t.Log(s)
			}
		}
		st := c.Admin("status")
		t.Logf("status at the end:\n%s%s", st.Stdout, st.Stderr)
		dumpLogs(t, c)
		t.Logf("seed %d: device logs are in /tmp/history-{a,b,c}.log (replay with GITMESH_SEED=%d)", seed, seed)
	})

	var pushOK, pushFail, readOK, readFail atomic.Int64
	ackedOn := map[string]*atomic.Int64{"a": {}, "b": {}, "c": {}}
	var wg sync.WaitGroup
	const writers, readers = 3, 3
	var branches []string
	for w := 0; w < writers; w++ {
		branches = append(branches, fmt.Sprintf("w%d", w))
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			works := map[string]string{}
			n := map[string]int{}
			for pushesLeft.Add(-1) >= 0 {
				repo := repos[rng.IntN(len(repos))]
				branch := branches[w]
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
					if verbose {
						t.Logf("%s push %s %s #%d to %s: %s", stamp(), repo, branch, n[repo], dev, strings.ReplaceAll(r.Stderr, "\n", " | "))
					}
				} else {
					pushOK.Add(1)
					ackedOn[dev].Add(1)
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
				if _, ok := read(c, h, v, repo, dev, branches, stale); ok {
					readOK.Add(1)
				} else {
					readFail.Add(1) // a failed read serves nothing stale
				}
			}
		}(rd)
	}
	stop := make(chan struct{})
	var faults sync.WaitGroup
	faults.Add(2)
	inj := &injector{t: t, c: c, proxy: proxy, repos: repos, v: v, verbose: verbose,
		rng: rand.New(rand.NewPCG(seed, 999)), noexec: noexec, counts: map[string]int{}}
	go func() { defer faults.Done(); inj.run(stop) }()
	var demoted, refused atomic.Int64
	go func() {
		defer faults.Done()
		repairLoop(t, c, h, seed, stop, v, branches, &demoted, &refused)
	}()
	wg.Wait()
	close(stop)
	faults.Wait()
	faulted := time.Since(began)

	// Quiet now: every device back, every copy on disk again, and
	// everything frozen shown in status and recovered with thaw.
	proxy.SetDown(false)
	restoreURLs(t, c)
	meshtest.WaitDetached(t)
	syncAll(c, repos, nil)
	frozen := frozenCopies(t, c)
	var truth int
	c.DB().QueryRow(`SELECT count(*) FROM working_copy_versions WHERE is_writing`).Scan(&truth)
	if len(frozen) != truth {
		v.add(other, "status reports %d frozen copies, the database holds %d", len(frozen), truth)
	}
	for _, f := range frozen {
		if r := c.Admin("thaw", f[0], "--promote", f[1], "--force"); r.Code != 0 {
			v.add(other, "thaw %s --promote %s --force after the faults: exit %d: %s", f[0], f[1], r.Code, r.Stderr)
		}
	}
	if left := frozenCopies(t, c); len(left) != 0 {
		v.add(other, "still frozen after thaw: %v", left)
	}
	syncAll(c, repos, v)
	for _, repo := range repos {
		c.WaitConverged(repo)
	}
	// Every acknowledged push is served by every device: each branch
	// whose newest acknowledged push some device does not serve now is a
	// lost push.
	final := h.snapshot()
	for _, repo := range repos {
		missing := map[string][]string{}
		for _, dev := range devs {
			rd, ok := read(c, h, v, repo, dev, branches, "")
			if !ok {
				v.add(other, "%s on %s: the final read failed", repo, dev)
				continue
			}
			for _, b := range branches {
				if rd.index[b] < final[repo+" "+b] {
					missing[b] = append(missing[b], fmt.Sprintf("%s serves #%d", dev, rd.index[b]))
				}
			}
		}
		for _, b := range branches {
			if len(missing[b]) > 0 {
				v.add(lost, "%s %s: #%d was acknowledged, and at the end %s", repo, b, final[repo+" "+b], strings.Join(missing[b], ", "))
			}
		}
	}
	for _, repo := range repos {
		if r := c.Devices["b"].Run(nil, "verify", repo); r.Code != 0 {
			v.add(other, "verify %s: exit %d: %s%s", repo, r.Code, r.Stdout, r.Stderr)
		}
	}
	checkBackwards(h, v, branches)

	var healed, healRefused int
	c.DB().QueryRow(`SELECT count(*) FILTER (WHERE result LIKE 'ok:%'), count(*) FILTER (WHERE result LIKE 'frozen:%')
		FROM sync_log WHERE kind = 'heal'`).Scan(&healed, &healRefused)
	t.Logf("seed %d: faults: %s; self-repairs: %d done, %d refused; thaw --demote without --force: %d succeeded, %d refused; %d branch heads checked",
		seed, inj.summary(), healed, healRefused, demoted.Load(), refused.Load(), len(final))
	t.Logf("seed %d: %d operations in %s (+%s to repair and check): pushes %d acknowledged (a %d, b %d, c with noexec TMPDIR %d), %d failed; reads %d served, %d failed; %d stale reads, %d backwards reads, %d lost acknowledged pushes, %d other violations",
		seed, ops, faulted.Round(time.Second), (time.Since(began) - faulted).Round(time.Second),
		pushOK.Load(), ackedOn["a"].Load(), ackedOn["b"].Load(), ackedOn["c"].Load(), pushFail.Load(),
		readOK.Load(), readFail.Load(), v.count(stale), v.count(backwards), v.count(lost), v.count(other))
	if pushOK.Load() < int64(ops)/16 || readOK.Load() < int64(ops)/8 {
		t.Errorf("too few operations succeeded for the run to mean anything")
	}
	if ackedOn["c"].Load() == 0 {
		t.Errorf("no push through c's serve (noexec TMPDIR) was acknowledged: that case was not tried")
	}
	for _, s := range v.list {
		t.Error(s)
	}
	reported = true
	if len(v.list) > 0 {
		t.Fatalf("seed %d: %d violations (replay with GITMESH_SEED=%d)", seed, len(v.list), seed)
	}
}

func stamp() string { return time.Now().Format("15:04:05.000") }

// noexecDir mounts a tmpfs with noexec on dir until the test ends and
// checks that nothing there can be run. Tests run as root: a failure to
// mount fails the test.
func noexecDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "noexec", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a noexec tmpfs on %s (tests run as root): %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(probe).Run(); err == nil {
		t.Fatalf("%s is not noexec: a script there ran", dir)
	}
	os.Remove(probe)
	return dir
}

// read lists repo's branches on dev and records what it served in h. A
// read that served a branch older than the push acknowledged before it
// began counts once as a violation of kind (stale during the run); kind
// "" leaves that check to the caller. It returns the read, and whether
// it succeeded (a failed read serves nothing).
func read(c *meshtest.Cluster, h *history, v *violations, repo, dev string, branches []string, kind string) (servedRead, bool) {
	before := h.snapshot()
	rd := servedRead{start: time.Now(), dev: dev, index: map[string]int{}}
	r := c.Devices[dev].Git("alice", "", "ls-remote", meshtest.URL(repo))
	rd.end = time.Now()
	if r.Code != 0 {
		return rd, false
	}
	heads := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if id, ref, ok := strings.Cut(line, "\t"); ok {
			heads[strings.TrimPrefix(ref, "refs/heads/")] = id
		}
	}
	h.mu.Lock()
	for _, b := range branches {
		if id, ok := heads[b]; ok {
			if rd.index[b], ok = h.index[id]; !ok {
				v.add(other, "%s on %s: branch %s at %s, a commit no writer made", repo, dev, b, id)
			}
		}
	}
	h.reads[repo] = append(h.reads[repo], rd)
	h.mu.Unlock()
	if kind != "" {
		if older := olderThan(rd, before, repo, branches); len(older) > 0 {
			v.add(kind, "%s on %s at %s served %s", repo, dev, rd.start.Format("15:04:05.000"), strings.Join(older, ", "))
		}
	}
	return rd, true
}

// olderThan lists the branches rd served older than acknowledged in acked.
func olderThan(rd servedRead, acked map[string]int, repo string, branches []string) []string {
	var older []string
	for _, b := range branches {
		if want, ok := acked[repo+" "+b]; ok && rd.index[b] < want {
			older = append(older, fmt.Sprintf("%s at #%d, acknowledged #%d before", b, rd.index[b], want))
		}
	}
	return older
}

// checkBackwards counts every read that served a branch older than a read
// of the same repository, on any device, that had ended before it began:
// once served, a value never goes back.
func checkBackwards(h *history, v *violations, branches []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for repo, reads := range h.reads {
		for _, r := range reads {
			var back []string
			for _, b := range branches {
				var newest *servedRead
				for i, e := range reads {
					if e.end.Before(r.start) && e.index[b] > r.index[b] && (newest == nil || e.index[b] > newest.index[b]) {
						newest = &reads[i]
					}
				}
				if newest != nil {
					back = append(back, fmt.Sprintf("%s at #%d after a read on %s that ended at %s served #%d",
						b, r.index[b], newest.dev, newest.end.Format("15:04:05.000"), newest.index[b]))
				}
			}
			if len(back) > 0 {
				v.add(backwards, "%s on %s at %s served %s", repo, r.dev, r.start.Format("15:04:05.000"), strings.Join(back, "; "))
			}
		}
	}
}

// syncAll brings every device's copies up to date, as an administrator
// (or `gitmesh replicate`) would after an outage; v, when set, counts a
// failure.
func syncAll(c *meshtest.Cluster, repos []string, v *violations) {
	for _, d := range []string{"a", "b", "c"} {
		for _, repo := range repos {
			if r := c.Devices[d].Run(nil, "sync", repo); r.Code != 0 && v != nil {
				v.add(other, "sync %s on %s after the faults: exit %d: %s", repo, d, r.Code, r.Stderr)
			}
		}
	}
}

// injector plays the faults of a run, seeded: it kills serve processes
// and the proc-receive relays of pushes, cuts device a's database
// connections, makes a peer URL unreachable, moves a device's repo root
// away for a while and wipes a device's disk. It loses at most one disk
// at a time: after a wipe it wipes again only once the wiped device holds
// every repository again (checkWiped), since a write quorum of 2 of 3
// promises to survive one lost disk, not two. Unreachable devices only
// delay, so those faults overlap freely (one root away at a time).
type injector struct {
	t       *testing.T
	c       *meshtest.Cluster
	proxy   *meshtest.Proxy
	db      *sql.DB
	repos   []string
	v       *violations
	rng     *rand.Rand
	verbose bool
	noexec  string

	counts    map[string]int
	away      string           // device whose repo root is moved away, or ""
	awayUntil time.Time        // when it comes back
	wiped     string           // device wiped and not yet seen caught up, or ""
	wipedAt   map[string]int64 // the newest version of each repository at the wipe
	checked   time.Time        // when the wiped device was last checked
	n         int              // for unique names
	// relaysNoexec counts relays seen serving a push through the noexec TMPDIR.
	relaysNoexec int
}

func (f *injector) log(fault, format string, args ...any) {
	f.counts[fault]++
	if f.verbose || fault == faultWipe || fault == faultRootAway {
		f.t.Logf("%s fault: %s: %s", stamp(), fault, fmt.Sprintf(format, args...))
	}
}

func (f *injector) summary() string {
	var parts []string
	for _, k := range []string{faultKillServe, faultKillRelay, faultCutDatabase, faultURL, faultRootAway, faultWipe} {
		parts = append(parts, fmt.Sprintf("%s %d", k, f.counts[k]))
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" (relays seen with the noexec TMPDIR: %d)", f.relaysNoexec)
}

func (f *injector) run(stop chan struct{}) {
	f.db = f.c.DB()
	defer f.comeBack()
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(200+f.rng.IntN(600)) * time.Millisecond):
		}
		if f.away != "" && time.Now().After(f.awayUntil) {
			f.comeBack()
		}
		f.checkWiped()
		switch k := f.rng.IntN(20); {
		case k < 2:
			if pid, ok := f.kill("serve"); ok {
				f.log(faultKillServe, "pid %d", pid)
			}
		case k < 4:
			if pid, ok := f.kill("hook"); ok {
				f.log(faultKillRelay, "pid %d", pid)
			}
		case k < 6:
			f.proxy.Cut()
			f.log(faultCutDatabase, "device a")
		case k < 8:
			dev := []string{"a", "b", "c"}[f.rng.IntN(3)]
			f.db.Exec(`UPDATE devices SET url = '/nonexistent/' || name WHERE name = $1`, dev)
			f.log(faultURL, "%s", dev)
		case k < 10:
			dev := []string{"a", "b", "c"}[f.rng.IntN(3)]
			if f.away == "" && dev != f.wiped {
				f.goAway(dev, time.Duration(300+f.rng.IntN(1700))*time.Millisecond)
			}
		case k < 11:
			dev := []string{"a", "b", "c"}[f.rng.IntN(3)]
			if f.wiped == "" && dev != f.away {
				f.wipe(dev)
			}
		default:
			restoreURLs(f.t, f.c)
		}
	}
}

// kill sends SIGKILL to one running gitmesh process of the subcommand
// ("serve", or "hook" for the proc-receive relay of a push). A relay
// lives only while serve decides a push, so it waits for one, briefly.
func (f *injector) kill(sub string) (int, bool) {
	deadline := time.Now().Add(time.Second)
	for {
		if pids := meshtest.Processes(sub); len(pids) > 0 {
			pid := pids[f.rng.IntN(len(pids))]
			if sub == "hook" {
				if env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); strings.Contains(string(env), hook.SocketEnv+"="+f.noexec+"/") {
					f.relaysNoexec++
				}
				time.Sleep(time.Duration(f.rng.IntN(60)) * time.Millisecond)
			}
			return pid, syscall.Kill(pid, syscall.SIGKILL) == nil
		}
		if sub != "hook" || time.Now().After(deadline) {
			return 0, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goAway makes dev unreachable for d by moving its repo root away: its
// serve and its peers find no root, as with an unmounted disk.
func (f *injector) goAway(dev string, d time.Duration) {
	root := f.c.Devices[dev].Root
	if err := os.Rename(root, root+".away"); err != nil {
		f.v.add(other, "move the repo root of %s away: %v", dev, err)
		return
	}
	f.away, f.awayUntil = dev, time.Now().Add(d)
	f.log(faultRootAway, "%s for %s", dev, d)
}

// comeBack moves the repo root that is away back. Nothing may have
// created a new root meanwhile: a missing root is not an empty disk.
func (f *injector) comeBack() {
	if f.away == "" {
		return
	}
	dev := f.away
	root := f.c.Devices[dev].Root
	if err := os.Rename(root+".away", root); err != nil {
		var found []string
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			found = append(found, e.Name())
		}
		copies, _ := filepath.Glob(filepath.Join(root, "*", "*.git"))
		f.v.add(other, "%s: something created a new repo root while the root was away (%v); it holds %v, copies %v",
			dev, err, found, copies)
		// Keep the real disk: the new root's contents are lost, as a disk
		// mounted over them would hide them.
		f.n++
		os.Rename(root, fmt.Sprintf("%s.created-%d", root, f.n))
		if err := os.Rename(root+".away", root); err != nil {
			f.t.Errorf("move the repo root of %s back: %v", dev, err)
		}
	}
	f.away = ""
	if f.verbose {
		f.t.Logf("%s %s's repo root is back", stamp(), dev)
	}
}

// wipe loses dev's disk: every repository under its root goes at once,
// the root itself stays. They are moved aside, not deleted: a git process
// that was already working in one finishes on the old disk, as if it had
// done so just before the loss, instead of seeing files vanish under it.
func (f *injector) wipe(dev string) {
	root := f.c.Devices[dev].Root
	f.n++
	trash := filepath.Join(filepath.Dir(root), fmt.Sprintf("wiped-%d", f.n))
	if err := os.Mkdir(trash, 0o755); err != nil {
		f.t.Errorf("wipe %s: %v", dev, err)
		return
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		f.t.Errorf("wipe %s: %v", dev, err)
		return
	}
	at := stamp()
	for _, e := range entries {
		if err := os.Rename(filepath.Join(root, e.Name()), filepath.Join(trash, e.Name())); err != nil {
			f.t.Errorf("wipe %s: %v", dev, err)
		}
	}
	f.wiped, f.checked, f.wipedAt = dev, time.Now(), f.newest()
	f.log(faultWipe, "%s at %s", dev, at)
}

// checkWiped ends the loss of the wiped device once, for every
// repository, it records a version at least as new as the newest at the
// wipe and its copy on disk matches what was recorded for it (`verify`):
// then every push acknowledged before the wipe is on two disks again, and
// every later one was stored on two by its quorum.
func (f *injector) checkWiped() {
	if f.wiped == "" || f.away != "" || time.Since(f.checked) < time.Second {
		return
	}
	f.checked = time.Now()
	for _, repo := range f.repos {
		// Only the wiped device's copy matters here: verify also counts
		// pushes in progress and peers unreachable now. The version is
		// read after it, so a copy verify skipped (no version) fails.
		r := f.c.Devices["b"].Run(nil, "verify", repo)
		out := r.Stdout + r.Stderr
		if strings.Contains(out, repo+" on "+f.wiped+":") || r.Code != 0 && !strings.Contains(out, "problem(s)") {
			if f.verbose {
				f.t.Logf("%s %s not back yet: verify %s: %s", stamp(), f.wiped, repo, strings.ReplaceAll(r.Stdout+r.Stderr, "\n", " | "))
			}
			return
		}
		var v int64
		err := f.db.QueryRow(`SELECT w.version FROM working_copy_versions w
			JOIN repositories r ON r.id = w.repository_id JOIN devices d ON d.id = w.device_id
			WHERE r.name = $1 AND d.name = $2`, repo, f.wiped).Scan(&v)
		if err != nil || v < f.wipedAt[repo] {
			if f.verbose {
				f.t.Logf("%s %s not back yet: %s at version %d (%v), %d at the wipe", stamp(), f.wiped, repo, v, err, f.wipedAt[repo])
			}
			return
		}
	}
	f.t.Logf("%s %s holds every repository again since its disk was wiped", stamp(), f.wiped)
	f.wiped = ""
}

// newest is the newest recorded version of each repository.
func (f *injector) newest() map[string]int64 {
	out := map[string]int64{}
	for _, repo := range f.repos {
		var v int64
		f.db.QueryRow(`SELECT max(w.version) FROM working_copy_versions w
			JOIN repositories r ON r.id = w.repository_id WHERE r.name = $1`, repo).Scan(&v)
		out[repo] = v
	}
	return out
}

func restoreURLs(t *testing.T, c *meshtest.Cluster) {
	db := c.DB()
	defer db.Close()
	for _, d := range c.Devices {
		if _, err := db.Exec(`UPDATE devices SET url = $1 WHERE name = $2`, d.Root, d.Name); err != nil {
			t.Errorf("restore url of %s: %v", d.Name, err)
		}
	}
}

// repairLoop plays the administrator: it thaws what status reports frozen
// (a write mark whose writer's session is gone; a push in progress is
// left alone). At random (seeded) it first tries --demote without --force, which must
// either thaw changing nothing acknowledged (checked by a read on the
// demoted device against what was acknowledged before the thaw) or refuse
// and leave the repository frozen; otherwise, or after a refusal, it
// promotes the writer's copy (it held the newest version when it wrote)
// with --force.
func repairLoop(t *testing.T, c *meshtest.Cluster, h *history, seed uint64, stop chan struct{}, v *violations, branches []string, demoted, refused *atomic.Int64) {
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
			Frozen     bool   `json:"frozen"`
		}
		if json.Unmarshal([]byte(r.Stdout), &rows) != nil {
			continue
		}
		for _, row := range rows {
			if !row.Frozen {
				continue // a push in progress, or nothing to thaw
			}
			if rng.IntN(2) == 0 {
				r := admin.Run(nil, "thaw", row.Repository, "--demote", row.Device)
				if verbose {
					t.Logf("%s thaw %s --demote %s: exit %d: %s %s", stamp(), row.Repository, row.Device, r.Code, r.Stdout, r.Stderr)
				}
				if r.Code == 0 {
					demoted.Add(1)
					// The demoted copy resyncs from the others on this read:
					// it must hold every push acknowledged before it.
					read(c, h, v, row.Repository, row.Device, branches, stale)
					continue
				}
				refused.Add(1)
			}
			r := admin.Run(nil, "thaw", row.Repository, "--promote", row.Device, "--force")
			if verbose {
				t.Logf("%s thaw %s --promote %s --force: exit %d: %s %s", stamp(), row.Repository, row.Device, r.Code, r.Stdout, r.Stderr)
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
		FROM sync_log s JOIN repositories r ON r.id = s.repository_id JOIN devices d ON d.id = s.device_id JOIN devices f ON f.id = s.from_device WHERE s.kind = 'fetch' ORDER BY s.id`)
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
