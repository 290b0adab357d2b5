package e2e

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
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

// A randomised history: writers and readers on three devices at once,
// faults played between them, every read checked against what was
// acknowledged before it began and against earlier reads, and at the end
// every acknowledged push looked for on every device.
//
// Three kinds of writer, so that a lost acknowledgement cannot be
// restored by a later push:
//   - linear: one writer per branch (refs/heads/lin<N>) pushing its own
//     chain with --force; its newest acknowledged commit must be in what
//     is served;
//   - shared: several writers fetch refs/heads/shared from a device, add
//     a commit and push it without --force; a rejected non-fast-forward is
//     fine, an acknowledged commit must stay in the branch's history;
//   - once: a new branch (refs/heads/once/...) or tag (refs/tags/...) per
//     push at a new root commit, never moved: once acknowledged, it must
//     be served at exactly that commit, for good.

// refKey names one ref of one repository.
type refKey struct{ repo, ref string }

func (k refKey) String() string { return k.repo + " " + k.ref }

// history is the model a run is checked against.
type history struct {
	mu     sync.Mutex
	made   map[refKey]map[string]bool // commits written for each ref
	parent map[string]string          // commit -> its parent ("" for a root)
	acked  map[refKey]string          // the newest acknowledged commit of each ref
	once   map[refKey]bool            // refs that must never move
	reads  map[string][]servedRead    // repo -> every completed read of it
	depths map[string]int
}

func newHistory() *history {
	return &history{made: map[refKey]map[string]bool{}, parent: map[string]string{}, acked: map[refKey]string{},
		once: map[refKey]bool{}, reads: map[string][]servedRead{}, depths: map[string]int{}}
}

// servedRead is one completed read: at some moment between start and end
// dev served repo's refs at these commits.
type servedRead struct {
	start, end time.Time
	dev, how   string
	refs       map[string]string // ref -> commit
}

// wrote records a commit made for k.
func (h *history) wrote(k refKey, id, parent string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.made[k] == nil {
		h.made[k] = map[string]bool{}
	}
	h.made[k][id] = true
	h.parent[id] = parent
}

// ack records that a push of id to k was acknowledged; it reports a
// shared branch's acknowledgements that do not descend from one another
// (one of them overwrote the other).
func (h *history) ack(k refKey, id string, once bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	prev, ok := h.acked[k]
	switch {
	case once:
		h.once[k] = true
		h.acked[k] = id
	case !ok || h.descends(id, prev):
		h.acked[k] = id
	case h.descends(prev, id):
		// acknowledged after a later one was: already covered
	default:
		return fmt.Errorf("%s: %s and %s were both acknowledged and neither contains the other", k, short(prev), short(id))
	}
	return nil
}

func (h *history) snapshot() map[refKey]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[refKey]string, len(h.acked))
	for k, v := range h.acked {
		out[k] = v
	}
	return out
}

// descends reports whether want is got or one of its ancestors. The
// caller holds h.mu.
func (h *history) descends(got, want string) bool {
	for c := got; c != ""; c = h.parent[c] {
		if c == want {
			return true
		}
	}
	return false
}

// depth is a commit's distance from its root, plus one. The caller holds h.mu.
func (h *history) depth(id string) int {
	if id == "" {
		return 0
	}
	if d, ok := h.depths[id]; ok {
		return d
	}
	d := 1 + h.depth(h.parent[id])
	h.depths[id] = d
	return d
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// Kinds of violation, counted and reported separately.
const (
	stale     = "stale read"      // older than acknowledged before the read began
	backwards = "backwards read"  // older than a read that ended before it began
	lost      = "lost push"       // acknowledged, and not served at the end
	badRead   = "unexcused read"  // a read failed without a fault in force that explains it
	frozenBad = "frozen"          // a freeze that neither healed nor was thawed after a cannot-heal reason
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
	faultKillAnswer  = "serve killed after its answer"
	faultURL         = "peer URL unreachable"
	faultRestoreURLs = "peer URLs restored"
	faultWipe        = "disk wiped"
	faultWipeAck     = "disk wiped after an acknowledgement"
	faultRootAway    = "repo root away"
	faultCutDatabase = "database connections cut"
	faultFailover    = "database failover"
)

// schedule is everything a run does, decided up front from its seed:
// each writer's and reader's operations in order, and the faults with
// the pause before each. Only the interleaving is left to the machine.
type schedule struct {
	Seed uint64 `json:"seed"`
	Ops  int    `json:"ops"`
	// Devs are the devices (a, b, c when empty); Copies how many hold each
	// repository (0: every device).
	Devs    []string     `json:"devs,omitempty"`
	Copies  int          `json:"copies,omitempty"`
	Writers []writerPlan `json:"writers"`
	Readers [][]readOp   `json:"readers"`
	Faults  []faultStep  `json:"faults"`
}

type writerPlan struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"` // linear, shared, once
	Pushes []pushOp `json:"pushes"`
}

type pushOp struct {
	Repo  string `json:"repo"`
	Dev   string `json:"dev"`
	Ref   string `json:"ref"`
	Fetch string `json:"fetch,omitempty"` // shared: the device it fetches the branch from first
	// Atomic pushes with --atomic, with which git ignores how serve
	// exited once it has the report (as a client that hangs up after
	// reading it does): an answer given too early then shows.
	Atomic bool `json:"atomic,omitempty"`
}

type readOp struct {
	Repo string `json:"repo"`
	Dev  string `json:"dev"`
	How  string `json:"how"` // ls-remote, clone
}

type faultStep struct {
	AfterMS int    `json:"after_ms"`
	Kind    string `json:"kind"`
	Dev     string `json:"dev,omitempty"`
	ForMS   int    `json:"for_ms,omitempty"`
	Pick    int    `json:"pick,omitempty"` // which process, among those running, for kills
}

// faultMix is the share (out of 40) of each fault in a schedule; what is
// left restores the peer URLs.
type faultMix map[string]int

var defaultMix = faultMix{faultKillServe: 4, faultKillRelay: 4, faultKillAnswer: 2, faultCutDatabase: 4,
	faultURL: 4, faultRootAway: 4, faultWipe: 1, faultWipeAck: 1}

var (
	historyRepos = []string{"team/app", "team/lib"}
	historyDevs  = []string{"a", "b", "c"}
)

// newSchedule draws a run of ops operations from seed: a quarter are
// pushes (two linear writers, two shared ones, one of one-shot refs),
// the rest reads (a shared writer's fetch before each push, then
// readers' ls-remote and, one in five, clones), and faults enough to
// last longer than the run.
func newSchedule(seed uint64, ops int, mix faultMix) schedule {
	return newScheduleOn(seed, ops, mix, historyDevs, 0)
}

// newScheduleOn is newSchedule on devs, each repository on copies of them.
func newScheduleOn(seed uint64, ops int, mix faultMix, devs []string, copies int) schedule {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := schedule{Seed: seed, Ops: ops, Devs: devs, Copies: copies}
	historyDevs := devs
	s.Writers = []writerPlan{{Name: "lin0", Kind: "linear"}, {Name: "lin1", Kind: "linear"},
		{Name: "s0", Kind: "shared"}, {Name: "s1", Kind: "shared"}, {Name: "o0", Kind: "once"}}
	pick := func(l []string) string { return l[rng.IntN(len(l))] }
	pushes, reads := ops/4, ops-ops/4
	for i := 0; i < pushes; i++ {
		w := &s.Writers[i%len(s.Writers)]
		op := pushOp{Repo: pick(historyRepos), Dev: pick(historyDevs), Atomic: rng.IntN(2) == 0}
		switch w.Kind {
		case "linear":
			op.Ref = "refs/heads/" + w.Name
		case "shared":
			op.Ref, op.Fetch = "refs/heads/shared", pick(historyDevs)
			reads--
		case "once":
			if rng.IntN(2) == 0 {
				op.Ref = fmt.Sprintf("refs/heads/once/%s-%d", w.Name, i)
			} else {
				op.Ref = fmt.Sprintf("refs/tags/t-%s-%d", w.Name, i)
			}
		}
		w.Pushes = append(w.Pushes, op)
	}
	s.Readers = make([][]readOp, 3)
	for i := 0; i < reads; i++ {
		how := "ls-remote"
		if rng.IntN(5) == 0 {
			how = "clone"
		}
		s.Readers[i%3] = append(s.Readers[i%3], readOp{Repo: pick(historyRepos), Dev: pick(historyDevs), How: how})
	}
	kinds := []string{faultKillServe, faultKillRelay, faultKillAnswer, faultCutDatabase, faultURL, faultRootAway, faultWipe, faultWipeAck, faultFailover,
		faultMove, faultMoveKilled, faultDrain, faultRename}
	for i := 0; i < ops; i++ {
		step := faultStep{AfterMS: 200 + rng.IntN(600), Kind: faultRestoreURLs, Pick: rng.IntN(1000)}
		k := rng.IntN(40)
		for _, kind := range kinds {
			if k < mix[kind] {
				step.Kind = kind
				break
			}
			k -= mix[kind]
		}
		switch step.Kind {
		case faultURL, faultWipe:
			step.Dev = pick(historyDevs)
		case faultRootAway:
			step.Dev, step.ForMS = pick(historyDevs), 300+rng.IntN(1700)
		}
		s.Faults = append(s.Faults, step)
	}
	return s
}

// historyRun is what one run did and found.
type historyRun struct {
	sched    schedule
	v        *violations
	summary  []string
	pushOK   int64
	readOK   int64
	ackedOnC int64
	// placed is how many moves, drains and renames completed.
	placed int64
	// failovers is how many times the primary was killed and its standby
	// promoted.
	failovers int
}

// historyOptions shape a run.
type historyOptions struct {
	bin string // the gitmesh binary (a deliberately broken one), "" for the test's own
	// ha, when set, is a primary with a synchronous streaming standby that
	// the cluster reaches through the multi-host DSN (faultFailover).
	ha *meshtest.HA
	// converge bounds the wait for every device to catch up after the
	// faults (20s when zero).
	converge time.Duration
}

// TestRandomisedHistoryWithFaults runs writers and readers on three devices
// at once while killing serve processes (also right after a push was
// answered) and the proc-receive relays of pushes, cutting database
// connections, making peer URLs and repo roots unreachable and wiping one
// device's disk at a time (also right after it acknowledged a push), with
// one device's serve on a noexec TMPDIR. It checks that nothing
// acknowledged was lost, no read was stale or went backwards, every
// failed read failed for a fault in force, every freeze healed itself or
// said it cannot, and every device's copy clones and passes git fsck.
//
// GITMESH_SEED replays a run's schedule (GITMESH_HISTORY_OPS sets its
// length); GITMESH_HISTORY_SCHEDULE=FILE replays a schedule a failed run
// saved; GITMESH_HISTORY_VERBOSE=1 logs every failed push and every fault.
func TestRandomisedHistoryWithFaults(t *testing.T) {
	sched := historySchedule(t, defaultMix)
	run := runHistory(t, sched, historyOptions{})
	for _, s := range run.summary {
		t.Log(s)
	}
	ops := int64(sched.Ops)
	if run.pushOK < ops/16 || run.readOK < ops/8 {
		run.v.add(other, "too few operations succeeded for the run to mean anything (%d pushes, %d reads)", run.pushOK, run.readOK)
	}
	if run.ackedOnC == 0 && ops >= 150 {
		run.v.add(other, "no push through c's serve (noexec TMPDIR) was acknowledged: that case was not tried")
	}
	if len(run.v.list) > 0 {
		for _, s := range run.v.list {
			t.Error(s)
		}
		t.Fatalf("seed %d: %d violations (replay with GITMESH_SEED=%d, or the schedule as printed above)", sched.Seed, len(run.v.list), sched.Seed)
	}
}

// TestRandomisedHistoryWithFailovers is the same history on a primary
// with a synchronous streaming standby, reached by every device through
// the multi-host DSN (target_session_attrs=read-write): among the other
// faults, the primary is killed, the standby promoted and a fresh standby
// attached, again and again. Acknowledged pushes survive every failover;
// reads never go stale or backwards.
func TestRandomisedHistoryWithFailovers(t *testing.T) {
	h, err := meshtest.StartHA()
	if err != nil {
		t.Fatalf("start a primary and a streaming standby: %v (apt-get install -y postgresql)", err)
	}
	t.Cleanup(h.Stop)
	mix := faultMix{faultFailover: 4, faultKillServe: 4, faultKillRelay: 4, faultKillAnswer: 2,
		faultURL: 4, faultRootAway: 2, faultWipe: 1, faultWipeAck: 1}
	sched := historySchedule(t, mix)
	if os.Getenv("GITMESH_HISTORY_SCHEDULE") == "" {
		// A run plays only the first twenty or so steps: two failovers
		// among them whatever the seed drew (a replayed schedule has them).
		fo := faultStep{AfterMS: 500, Kind: faultFailover}
		sched.Faults = append([]faultStep{sched.Faults[0], fo}, append(sched.Faults[1:4:4], append([]faultStep{fo}, sched.Faults[4:]...)...)...)
	}
	run := runHistory(t, sched, historyOptions{ha: h})
	for _, s := range run.summary {
		t.Log(s)
	}
	if run.failovers == 0 {
		run.v.add(other, "no failover was played: the run tested nothing new")
	}
	// While the database is between primaries every operation fails at
	// once (exit 6), so a slow promotion can use up most of the run: some
	// pushes and reads must still have succeeded around the failovers.
	if run.pushOK == 0 || run.readOK == 0 {
		run.v.add(other, "no push or no read succeeded (%d pushes, %d reads): the run checked nothing", run.pushOK, run.readOK)
	}
	if len(run.v.list) > 0 {
		for _, s := range run.v.list {
			t.Error(s)
		}
		t.Fatalf("seed %d: %d violations (replay with GITMESH_SEED=%d, or the schedule as printed above)", sched.Seed, len(run.v.list), sched.Seed)
	}
}

// TestHistoryCatchesBrokenBuild is the test of the history test: against
// a gitmesh built to acknowledge pushes without staging them on any peer,
// and against one that answers "ok" before deciding and recording a push,
// a short run must report lost pushes or stale reads.
func TestHistoryCatchesBrokenBuild(t *testing.T) {
	for _, c := range []struct {
		tag  string
		mix  faultMix
		lead faultStep // played at once, whatever the machine's speed
		seed uint64
	}{
		// Only a lost disk shows a push that is on one disk alone.
		{"gitmesh_broken_skipstage", faultMix{faultWipeAck: 12, faultKillServe: 2, faultURL: 2}, faultStep{Kind: faultWipeAck}, 17},
		// Only a serve that dies after answering shows an early answer.
		{"gitmesh_broken_earlyack", faultMix{faultKillAnswer: 16, faultKillServe: 2, faultURL: 2}, faultStep{Kind: faultKillAnswer}, 17},
	} {
		t.Run(c.tag, func(t *testing.T) {
			bin := meshtest.BuildTagged(t, c.tag)
			// The fault races the push's own catch-up after its answer, so
			// one short run may miss the loss: up to three seeds, and the
			// checker must catch the broken build in one of them.
			var run *historyRun
			found := 0
			for try := uint64(0); try < 3 && found == 0; try++ {
				sched := newSchedule(c.seed+try, 80, c.mix)
				sched.Faults = append([]faultStep{c.lead, c.lead, c.lead}, sched.Faults...)
				run = runHistory(t, sched, historyOptions{bin: bin, converge: 3 * time.Second})
				for _, s := range run.summary {
					t.Log(s)
				}
				found = run.v.count(lost) + run.v.count(stale)
			}
			if found == 0 {
				for _, s := range run.v.list {
					t.Log(s)
				}
				t.Fatalf("the history test found no lost push and no stale read against a build with %s", c.tag)
			}
			t.Logf("against %s the checker found %d lost pushes and %d stale reads (%d violations in all); first: %s",
				c.tag, run.v.count(lost), run.v.count(stale), len(run.v.list), run.v.list[0])
		})
	}
	// The control: the same faults, led the same way, against the real
	// build find nothing, so what the broken builds showed is theirs.
	t.Run("control", func(t *testing.T) {
		mix := faultMix{faultWipeAck: 6, faultKillAnswer: 8, faultKillServe: 2, faultURL: 2}
		sched := newSchedule(17, 80, mix)
		lead := []faultStep{{Kind: faultWipeAck}, {Kind: faultKillAnswer}, {Kind: faultKillAnswer}, {Kind: faultKillAnswer}}
		sched.Faults = append(lead, sched.Faults...)
		run := runHistory(t, sched, historyOptions{converge: 3 * time.Second})
		for _, s := range run.summary {
			t.Log(s)
		}
		for _, s := range run.v.list {
			t.Error(s)
		}
	})
}

// historySchedule is the run's schedule: the file GITMESH_HISTORY_SCHEDULE
// names, or one drawn from GITMESH_SEED (a fresh seed without it) and
// GITMESH_HISTORY_OPS (300 without it). A malformed value fails the test.
func historySchedule(t *testing.T, mix faultMix) schedule {
	t.Helper()
	if f := os.Getenv("GITMESH_HISTORY_SCHEDULE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("GITMESH_HISTORY_SCHEDULE: %v", err)
		}
		var s schedule
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("GITMESH_HISTORY_SCHEDULE=%s is not a schedule a history run saved: %v", f, err)
		}
		if s.Ops <= 0 || len(s.Writers) == 0 || len(s.Readers) == 0 {
			t.Fatalf("GITMESH_HISTORY_SCHEDULE=%s is not a schedule a history run saved: it holds no operations", f)
		}
		t.Logf("replaying the schedule in %s (seed %d)", f, s.Seed)
		return s
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GITMESH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("GITMESH_SEED=%q is not a seed: give the decimal number a run printed, e.g. GITMESH_SEED=1796230687140696893", s)
		}
	}
	ops := 300
	if s := os.Getenv("GITMESH_HISTORY_OPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 10 || n > 100000 {
			t.Fatalf("GITMESH_HISTORY_OPS=%q is not a number of operations from 10 to 100000", s)
		}
		ops = n
	}
	return newSchedule(seed, ops, mix)
}

// runHistory plays sched on a fresh cluster and checks it. Violations are
// returned, not reported: the caller decides. A broken harness (git
// missing, say) fails the test.
func runHistory(t *testing.T, sched schedule, opt historyOptions) *historyRun {
	began := time.Now()
	seed := sched.Seed
	verbose := os.Getenv("GITMESH_HISTORY_VERBOSE") != ""
	t.Logf("seed %d (replay with GITMESH_SEED=%d GITMESH_HISTORY_OPS=%d)", seed, seed, sched.Ops)
	fmt.Fprintf(os.Stderr, "history test seed %d\n", seed)
	schedFile := filepath.Join(t.TempDir(), "schedule.json")
	if b, err := json.MarshalIndent(sched, "", " "); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(schedFile, b, 0o644); err != nil {
		t.Fatal(err)
	}

	var c *meshtest.Cluster
	var proxy *meshtest.Proxy
	devs := sched.devices()
	if opt.ha != nil {
		// No proxy: the failover cuts every connection itself.
		c = meshtest.NewClusterHA(t, opt.ha, devs...)
	} else {
		c = meshtest.NewCluster(t, devs...)
		u, _ := url.Parse(c.DBURL)
		proxy = meshtest.NewProxy(t, u.Host)
		proxied := *u
		proxied.Host = proxy.Addr
		c.Devices["a"].DBURL = proxied.String()
	}
	c.Bin = opt.bin
	copies := len(devs)
	if sched.Copies > 0 {
		copies = sched.Copies
	}
	for _, d := range c.Devices {
		d.WriteConfig(fmt.Sprintf("lock_timeout = \"20s\"\nrecord_timeout = \"3s\"\nfetch_timeout = \"20s\"\ncopies = %d", copies))
	}
	// Device c serves with TMPDIR on a noexec filesystem: its pushes must
	// be recorded exactly like the others.
	noexec := noexecDir(t, filepath.Join(c.Dir, "noexec-tmp"))
	c.Devices["c"].Env = []string{"TMPDIR=" + noexec}
	repos := historyRepos
	names := newRepoNames(repos)
	c.User("alice")
	for _, r := range repos {
		c.CreateRepo("a", r)
		c.MustAdmin("grant", "alice", r, "write")
	}
	h := newHistory()
	v := &violations{}
	run := &historyRun{sched: sched, v: v}
	// However the run fails (a helper's Fatal too), what it found, what
	// each device logged and the schedule are kept.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		st := c.Admin("status")
		t.Logf("status at the end:\n%s%s", st.Stdout, st.Stderr)
		dumpLogs(t, c)
		keep := fmt.Sprintf("/tmp/history-schedule-%d.json", seed)
		if b, err := os.ReadFile(schedFile); err == nil && os.WriteFile(keep, b, 0o644) == nil {
			t.Logf("seed %d: device logs are in /tmp/history-{a,b,c}.log; replay with GITMESH_SEED=%d GITMESH_HISTORY_OPS=%d, or with GITMESH_HISTORY_SCHEDULE=%s",
				seed, seed, sched.Ops, keep)
		}
	})

	inj := &injector{t: t, c: c, proxy: proxy, ha: opt.ha, repos: repos, names: names, devs: devs, v: v, verbose: verbose,
		steps: sched.Faults, noexec: noexec, counts: map[string]int{}}
	var pushOK, pushFail, readOK, readFail, excused atomic.Int64
	ackedOn := map[string]*atomic.Int64{}
	for _, d := range devs {
		ackedOn[d] = &atomic.Int64{}
	}
	// reading runs one read and checks it; a failed read must be excused
	// by a fault in force.
	reading := func(repo, dev, how, work string, kind string) {
		before := h.snapshot()
		rd, r, code, err := readRefs(c, h, repo, names.cur(repo), dev, how, work)
		if verbose && rd.end.Sub(rd.start) > 3*time.Second {
			t.Logf("%s slow %s %s on %s took %s: exit %d %s", stamp(), how, repo, dev, rd.end.Sub(rd.start), r.Code, flat(r.Stderr))
		}
		if err != nil {
			v.add(other, "%s %s on %s: %v", how, repo, dev, err)
			return
		}
		if r.Code != 0 {
			readFail.Add(1)
			why, ok := inj.excuse(dev, rd.start, rd.end, code, r.Stderr)
			if !ok {
				v.add(badRead, "%s %s on %s at %s failed (serve exit %d) with no fault in force that explains it: %s",
					how, repo, dev, rd.start.Format("15:04:05.000"), code, flat(r.Stderr))
			} else {
				excused.Add(1)
				if verbose {
					t.Logf("%s %s %s on %s failed, excused by %s: %s", stamp(), how, repo, dev, why, flat(r.Stderr))
				}
			}
			return
		}
		readOK.Add(1)
		checkServed(h, v, rd, repo, before, kind)
	}

	var wg sync.WaitGroup
	for _, w := range sched.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if verbose {
				defer func(began time.Time) { t.Logf("%s writer %s done after %s", stamp(), w.Name, time.Since(began)) }(time.Now())
			}
			works := map[string]string{}
			tips := map[string]string{}
			for i, op := range w.Pushes {
				work, ok := works[op.Repo]
				if !ok {
					work = c.Work(fmt.Sprintf("%s-%s", w.Name, strings.ReplaceAll(op.Repo, "/", "-")))
					works[op.Repo] = work
				}
				k := refKey{op.Repo, op.Ref}
				msg := fmt.Sprintf("%s %s %s #%d", op.Repo, op.Ref, w.Name, i)
				var id, parent string
				var err error
				force := false
				switch w.Kind {
				case "linear":
					parent, force = tips[op.Repo], true
				case "shared":
					reading(op.Repo, op.Fetch, "fetch", work, stale)
					parent, _ = localGit(c, work, "rev-parse", "--verify", "-q", "refs/seen/heads/shared")
				}
				id, err = commitTree(c, work, parent, msg)
				if err != nil {
					v.add(other, "%s: %v", w.Name, err)
					return
				}
				tips[op.Repo] = id
				h.wrote(k, id, parent)
				args := []string{"push", "-q", meshtest.URL(names.cur(op.Repo)), id + ":" + op.Ref}
				if force {
					args = append(args, "--force")
				}
				if op.Atomic {
					args = append(args, "--atomic")
				}
				pushStart := time.Now()
				var r meshtest.Result
				// Only an atomic push is acknowledged whatever serve does
				// after answering: that is the one a kill there tests.
				// A kill stays armed until a push's answer takes it.
				if op.Atomic && inj.armKill.Load() > 0 {
					r = c.Devices[op.Dev].PushAnswered("alice", work, inj.killAnswered, args...)
				} else {
					r = c.Devices[op.Dev].Git("alice", work, args...)
				}
				if verbose && time.Since(pushStart) > 3*time.Second {
					t.Logf("%s slow push %s %s to %s took %s: exit %d %s", stamp(), op.Repo, op.Ref, op.Dev, time.Since(pushStart), r.Code, flat(r.Stderr))
				}
				if r.Code != 0 {
					pushFail.Add(1)
					if verbose {
						t.Logf("%s push %s %s %s to %s: %s", stamp(), op.Repo, op.Ref, short(id), op.Dev, flat(r.Stderr))
					}
					continue
				}
				pushOK.Add(1)
				ackedOn[op.Dev].Add(1)
				if err := h.ack(k, id, w.Kind == "once"); err != nil {
					v.add(lost, "%v", err)
				}
				inj.acked(op.Dev)
			}
		}()
	}
	for i, ops := range sched.Readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if verbose {
				defer func(began time.Time) { t.Logf("%s reader %d done after %s", stamp(), i, time.Since(began)) }(time.Now())
			}
			work := c.Work(fmt.Sprintf("reader%d", i))
			for _, op := range ops {
				reading(op.Repo, op.Dev, op.How, work, stale)
			}
		}()
	}
	stop := make(chan struct{})
	var faults sync.WaitGroup
	faults.Add(2)
	go func() { defer faults.Done(); inj.run(stop) }()
	fw := &freezeWatch{c: c, db: c.DB(), v: v, verbose: verbose, t: t, rng: rand.New(rand.NewPCG(seed, 777)), seen: map[string]*freezeEpisode{}}
	go func() { defer faults.Done(); fw.run(stop) }()
	wg.Wait()
	close(stop)
	faults.Wait()
	faulted := time.Since(began)

	// Quiet now: every device back and caught up (a sync on each device
	// also lets it repair its own frozen repositories).
	if proxy != nil {
		proxy.SetDown(false)
	}
	restoreURLs(t, c)
	meshtest.WaitDetached(t)
	syncAll(c, devs, names.all(), nil)
	frozen := frozenCopies(t, c)
	var truth int
	if err := fw.db.QueryRow(`SELECT count(*) FROM working_copy_versions WHERE is_writing`).Scan(&truth); err != nil {
		v.add(other, "count write marks: %v", err)
	}
	if len(frozen) != truth {
		v.add(other, "status reports %d frozen copies, the database holds %d", len(frozen), truth)
	}
	// What is still frozen must have said it cannot heal; then, and only
	// then, an administrator thaws it.
	for _, f := range frozen {
		fw.thawIfCannotHeal(f.Repository, f.Device, f.Started, f.PID, true)
	}
	if left := frozenCopies(t, c); len(left) != 0 {
		v.add(frozenBad, "still frozen at the end: %v", left)
	}
	syncAll(c, devs, names.all(), v)
	for _, repo := range names.all() {
		if opt.converge == 0 {
			opt.converge = 20 * time.Second
		}
		if err := waitConverged(c, repo, opt.converge); err != nil {
			v.add(other, "%v", err)
		}
	}
	fw.account()

	// Every acknowledged push is on every device: a clone from each
	// passes git fsck --strict, each copy passes fsck --connectivity-only,
	// and every acknowledged ref is there (a one-shot ref or tag at
	// exactly its commit).
	final := h.snapshot()
	for _, repo := range repos {
		var first map[string]string
		name := names.cur(repo)
		holders := holdersOf(t, c, name)
		for _, dev := range devs {
			dir := filepath.Join(c.Dir, fmt.Sprintf("final-%s-%s", dev, strings.ReplaceAll(repo, "/", "-")))
			r, code := c.Devices[dev].GitReporting("alice", "", "clone", "-q", "--mirror", meshtest.URL(name), dir)
			if r.Code != 0 {
				// Nothing acknowledged is served there.
				n := 0
				for k := range final {
					if k.repo == repo {
						n++
					}
				}
				v.add(lost, "%s: the clone from %s at the end failed, so none of its %d acknowledged refs is served there: exit %d (serve %d): %s",
					repo, dev, n, r.Code, code, flat(r.Stderr))
				continue
			}
			if out, err := localGit(c, dir, "fsck", "--strict", "--no-progress"); err != nil {
				v.add(other, "git fsck --strict of a clone of %s from %s: %v %s", repo, dev, err, out)
			}
			copyDir := filepath.Join(c.Devices[dev].Root, name+".git")
			if !contains(holders, dev) {
				if _, err := os.Stat(copyDir); err == nil {
					v.add(other, "%s holds no copy of %s (its holders: %v), yet its disk has one", dev, name, holders)
				}
			} else if out, err := localGit(c, copyDir, "fsck", "--connectivity-only", "--no-progress"); err != nil {
				v.add(other, "git fsck --connectivity-only of %s's copy of %s: %v %s", dev, name, err, out)
			}
			refs, err := forEachRef(c, dir, "refs/")
			if err != nil {
				v.add(other, "%v", err)
				continue
			}
			rd := servedRead{start: time.Now(), end: time.Now(), dev: dev, how: "final clone", refs: refs}
			checkServed(h, v, rd, repo, final, lost)
			if first == nil {
				first = refs
			} else if a, b := fmt.Sprint(first), fmt.Sprint(refs); a != b {
				v.add(other, "%s: devices serve different refs at the end: %s has %s, %s has %s", repo, devs[0], a, dev, b)
			}
		}
	}
	for _, repo := range names.all() {
		if r := c.Devices["b"].Run(nil, "verify", repo); r.Code != 0 {
			v.add(other, "verify %s: exit %d: %s%s", repo, r.Code, r.Stdout, r.Stderr)
		}
	}
	checkBackwards(h, v)

	var healed, healRefused int
	if err := fw.db.QueryRow(`SELECT count(*) FILTER (WHERE result LIKE 'ok:%'), count(*) FILTER (WHERE result LIKE 'frozen:%')
		FROM sync_log WHERE kind = 'heal'`).Scan(&healed, &healRefused); err != nil {
		v.add(other, "count self-repairs: %v", err)
	}
	var onceAcked int
	for k := range final {
		if h.once[k] {
			onceAcked++
		}
	}
	run.pushOK, run.readOK, run.ackedOnC = pushOK.Load(), readOK.Load(), ackedOn["c"].Load()
	run.placed = inj.placed.Load()
	inj.mu.Lock()
	run.failovers = inj.counts[faultFailover]
	inj.mu.Unlock()
	run.summary = []string{
		fmt.Sprintf("seed %d: faults played: %s", seed, inj.summary()),
		fmt.Sprintf("seed %d: freezes seen: %d; self-repairs (sync_log heal ok): %d, refusals recorded: %d; thaws after a cannot-heal reason: %d; cleared by their own live writer: %d",
			seed, len(fw.seen), healed, healRefused, fw.thaws, fw.byWriter),
		fmt.Sprintf("seed %d: %d operations in %s (+%s to repair and check): pushes %d acknowledged (a %d, b %d, c with noexec TMPDIR %d), %d failed; reads %d served, %d failed (%d excused by a fault in force); %d refs acknowledged (%d one-shot refs and tags); %d stale reads, %d backwards reads, %d lost acknowledged pushes, %d unexcused failed reads, %d freezes unaccounted for, %d other violations",
			seed, sched.Ops, faulted.Round(time.Second), (time.Since(began) - faulted).Round(time.Second),
			pushOK.Load(), ackedOn["a"].Load(), ackedOn["b"].Load(), ackedOn["c"].Load(), pushFail.Load(),
			readOK.Load(), readFail.Load(), excused.Load(), len(final), onceAcked,
			v.count(stale), v.count(backwards), v.count(lost), v.count(badRead), v.count(frozenBad), v.count(other)),
	}
	return run
}

func stamp() string { return time.Now().Format("15:04:05.000") }

func flat(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", " | ") }

// localGit runs git in dir without any device; it never fails the test
// (it runs in the run's goroutines).
func localGit(c *meshtest.Cluster, dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = meshtest.GitEnv(c.Dir)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return strings.TrimSpace(string(out)), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, flat(string(ee.Stderr)))
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// emptyTree is git's empty tree, which every repository knows.
const emptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

// commitTree makes a new commit (a root one when parent is "") in work
// and returns its id.
func commitTree(c *meshtest.Cluster, work, parent, msg string) (string, error) {
	args := []string{"commit-tree", emptyTree, "-m", msg}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	return localGit(c, work, args...)
}

// forEachRef lists the refs under prefix in the repository at dir.
func forEachRef(c *meshtest.Cluster, dir, prefix string) (map[string]string, error) {
	out, err := localGit(c, dir, "for-each-ref", "--format=%(objectname) %(refname)", prefix)
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if id, ref, ok := strings.Cut(line, " "); ok {
			refs[ref] = id
		}
	}
	return refs, nil
}

// readRefs reads repo's refs on dev the way how says (ls-remote; a fresh
// mirror clone; a fetch into work's refs/seen/) and returns what it served,
// git's result and serve's exit status. err is the harness failing.
// readRefs reads repo (the model's name) through the name it has now.
func readRefs(c *meshtest.Cluster, h *history, repo, name, dev, how, work string) (servedRead, meshtest.Result, int, error) {
	rd := servedRead{start: time.Now(), dev: dev, how: how, refs: map[string]string{}}
	d := c.Devices[dev]
	var r meshtest.Result
	var code int
	var err error
	switch how {
	case "ls-remote":
		r, code = d.GitReporting("alice", "", "ls-remote", meshtest.URL(name))
		rd.end = time.Now()
		for _, line := range strings.Split(r.Stdout, "\n") {
			if id, ref, ok := strings.Cut(line, "\t"); ok && ref != "HEAD" && !strings.HasSuffix(ref, "^{}") {
				rd.refs[ref] = id
			}
		}
	case "clone":
		dir, derr := os.MkdirTemp(c.Dir, "read-")
		if derr != nil {
			return rd, r, 0, derr
		}
		defer os.RemoveAll(dir)
		r, code = d.GitReporting("alice", "", "clone", "-q", "--mirror", meshtest.URL(name), dir)
		rd.end = time.Now()
		if r.Code == 0 {
			rd.refs, err = forEachRef(c, dir, "refs/")
		}
	case "fetch":
		r, code = d.GitReporting("alice", work, "fetch", "-q", "--prune", "--no-tags", meshtest.URL(name),
			"+refs/heads/*:refs/seen/heads/*", "+refs/tags/*:refs/seen/tags/*")
		rd.end = time.Now()
		if r.Code == 0 {
			var seen map[string]string
			seen, err = forEachRef(c, work, "refs/seen/")
			for ref, id := range seen {
				rd.refs["refs/"+strings.TrimPrefix(ref, "refs/seen/")] = id
			}
		}
	}
	if r.Code == 0 && err == nil {
		h.mu.Lock()
		h.reads[repo] = append(h.reads[repo], rd)
		h.mu.Unlock()
	}
	return rd, r, code, err
}

// checkServed checks what rd served of repo: every ref at a commit a
// writer made for that very ref, and every ref acknowledged in acked
// (before rd began, or by the end) served at its commit or, for a
// branch that moves, at a descendant of it; kind is the violation a missing
// acknowledged push counts as.
func checkServed(h *history, v *violations, rd servedRead, repo string, acked map[refKey]string, kind string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ref, id := range rd.refs {
		if !h.made[refKey{repo, ref}][id] {
			v.add(other, "%s on %s (%s at %s): %s at %s, a commit no writer made for that ref", repo, rd.dev, rd.how, rd.start.Format("15:04:05.000"), ref, short(id))
		}
	}
	var bad []string
	for k, want := range acked {
		if k.repo != repo {
			continue
		}
		got, ok := rd.refs[k.ref]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s missing, acknowledged at %s", k.ref, short(want)))
		case h.once[k] && got != want:
			bad = append(bad, fmt.Sprintf("%s at %s, acknowledged at %s", k.ref, short(got), short(want)))
		case !h.descends(got, want):
			bad = append(bad, fmt.Sprintf("%s at %s, which does not contain %s acknowledged", k.ref, short(got), short(want)))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		v.add(kind, "%s on %s (%s at %s) served %s", repo, rd.dev, rd.how, rd.start.Format("15:04:05.000"), strings.Join(bad, "; "))
	}
}

// waitConverged waits until every holder shows the newest version of
// repo (recorded, not merely staged) and no write is in progress.
func waitConverged(c *meshtest.Cluster, repo string, bound time.Duration) error {
	d := c.DB()
	var lagging int
	var err error
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		err = d.QueryRow(`
			SELECT count(*) FROM holders h JOIN repositories hr ON hr.id = h.repository_id WHERE hr.name = $1 AND NOT EXISTS (
			  SELECT 1 FROM working_copy_versions w JOIN repositories r ON r.id = w.repository_id
			  WHERE r.name = $1 AND w.device_id = h.device_id AND NOT w.refs_pending AND NOT w.is_writing
			    AND w.version = (SELECT max(version) FROM working_copy_versions m WHERE m.repository_id = r.id))`, repo).Scan(&lagging)
		if err == nil && lagging == 0 {
			return nil
		}
	}
	return fmt.Errorf("%s did not converge on every device within %s after the faults (%d lagging, %v)", repo, bound, lagging, err)
}

// checkBackwards counts every read that served a ref older than a read
// of the same repository, on any device, that had ended before it began:
// once served, a ref never goes back (branches only move forward, one-shot
// refs never move).
func checkBackwards(h *history, v *violations) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for repo, reads := range h.reads {
		byEnd := append([]servedRead(nil), reads...)
		sort.Slice(byEnd, func(i, j int) bool { return byEnd[i].end.Before(byEnd[j].end) })
		for _, r := range reads {
			newest := map[string]servedRead{} // ref -> the read that served it newest
			for _, e := range byEnd {
				if !e.end.Before(r.start) {
					break
				}
				for ref, id := range e.refs {
					if n, ok := newest[ref]; !ok || h.depth(id) > h.depth(n.refs[ref]) {
						newest[ref] = e
					}
				}
			}
			var back []string
			for ref, e := range newest {
				got, ok := r.refs[ref]
				if !ok || !h.descends(got, e.refs[ref]) {
					back = append(back, fmt.Sprintf("%s at %s after a %s on %s that ended at %s served %s",
						ref, short(got), e.how, e.dev, e.end.Format("15:04:05.000"), short(e.refs[ref])))
				}
			}
			if len(back) > 0 {
				sort.Strings(back)
				v.add(backwards, "%s on %s (%s at %s) served %s", repo, r.dev, r.how, r.start.Format("15:04:05.000"), strings.Join(back, "; "))
			}
		}
	}
}

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

// syncAll brings every device's copies up to date, as an administrator
// (or `gitmesh replicate`) would after an outage; v, when set, counts a
// failure.
func syncAll(c *meshtest.Cluster, devs, repos []string, v *violations) {
	for _, d := range devs {
		for _, repo := range repos {
			if r := c.Devices[d].Run(nil, "sync", repo); r.Code != 0 && v != nil {
				v.add(other, "sync %s on %s after the faults: exit %d: %s", repo, d, r.Code, r.Stderr)
			}
		}
	}
}

// faultEvent is one fault while it was in force (from == to for a kill
// or a cut; to is zero while it lasts).
type faultEvent struct {
	kind, dev string
	from, to  time.Time
}

// readExcuse is a way a read may fail while one of faults is in force:
// serve's exit status and a piece of what the user was told. own: only a
// fault on the reading device itself explains it.
type readExcuse struct {
	code   int
	says   string
	own    bool
	faults []string
	// before: the fault may also have happened this long before the read.
	before time.Duration
}

// readExcuses are the failures a read may show, with the faults that
// explain each; any other failure is a violation.
var readExcuses = []readExcuse{
	// A name used just as the repository was renamed.
	{3, "not found", false, []string{faultRename}, 0},
	// Passed on to a holder whose repo root is away.
	{1, "cannot open its copy", false, []string{faultRootAway}, 0},
	// Passed on by a device without a copy while every holder was
	// unreachable (its URL, or its repo root, away).
	{6, "could be reached from device", false, []string{faultURL, faultRootAway}, 0},
	// A request that waited on (or was passed on to) a holder just as a
	// move or drain dropped it.
	{6, "no longer holds", false, []string{faultMove, faultMoveKilled, faultDrain}, 0},
	// A serve killed by SIGKILL (128+9, as sh reports it).
	{137, "", false, []string{faultKillServe, faultKillAnswer}, 0},
	// No current peer could be fetched from. One lost disk is not enough:
	// every version is on another.
	{6, "no up-to-date copy", false, []string{faultURL, faultRootAway}, 0},
	// The reading device's own disk was wiped while it caught up: what it
	// fetched into is gone, and it says so rather than serve anything.
	{6, "no up-to-date copy", true, []string{faultWipe, faultWipeAck}, 0},
	// The device's own copy went, and the peers it must catch up from
	// already stage the next push over the version it needs.
	{6, "a write there is in progress", true, []string{faultRootAway, faultWipe, faultWipeAck}, 0},
	// Device a's database connections were cut.
	{6, "coordination database is unreachable", true, []string{faultCutDatabase}, 0},
	// The primary died: until the standby is promoted, and for the
	// sessions that were on the old primary, the database is gone.
	{6, "", false, []string{faultFailover}, 2 * time.Second},
	// The device's own repo root is away.
	{1, "cannot open its copy", true, []string{faultRootAway}, 0},
	{1, "server is misconfigured", true, []string{faultRootAway}, 0},
	// The device's own disk went between its check and git's start.
	{1, "copy of the repository is missing", true, []string{faultRootAway, faultWipe, faultWipeAck}, 0},
	// The device's own disk went while it caught up or answered.
	{1, "gitmesh failed on device", true, []string{faultRootAway, faultWipe, faultWipeAck}, 0},
	// The peer it caught up from lost its disk meanwhile: a staging push
	// there forgot that copy's record before recreating it.
	{1, "changed while it was fetched", false, []string{faultWipe, faultWipeAck}, 0},
	// The peer's copy was repaired (a killed writer's mark healed, after a
	// kill or a failover) while it was fetched from.
	{1, "changed while it was fetched", false, []string{faultKillServe, faultKillRelay, faultKillAnswer, faultFailover}, 5 * time.Second},
	// Known bug, kept visible here: a process on device a whose database
	// connection is cut loses its advisory locks with its session and
	// goes on (a converge catching up a peer's copy), so a read on that
	// peer, under the lock now free, finds its copy being rebuilt and
	// fails with an unexpected error (seen: "git init: cannot copy
	// ... .gitmesh-new/hooks/...").
	{1, "gitmesh failed on device", false, []string{faultCutDatabase}, 3 * time.Second},
}

// injector plays the faults of a schedule: it kills serve processes (also
// right after a push was answered) and the proc-receive relays of
// pushes, cuts device a's database connections, makes a peer URL
// unreachable, moves a device's repo root away for a while and wipes a
// device's disk (also right after it acknowledged a push). It loses at
// most one disk at a time: after a wipe it wipes again only once the
// wiped device holds every repository again (checkWiped), since a write
// quorum of 2 of 3 promises to survive one lost disk, not two.
// Unreachable devices only delay, so those faults overlap freely (one
// root away at a time).
type injector struct {
	t       *testing.T
	c       *meshtest.Cluster
	proxy   *meshtest.Proxy // nil on an HA pair
	ha      *meshtest.HA    // nil unless the run has a standby to fail over to
	db      *sql.DB
	repos   []string   // the model's names
	names   *repoNames // what each is called now
	devs    []string
	v       *violations
	verbose bool
	noexec  string
	steps   []faultStep

	placing atomic.Bool    // a placement fault is being played
	placeWG sync.WaitGroup // the placement fault being played
	placed  atomic.Int64   // placement faults that completed

	mu        sync.Mutex // the state below; acked only tries it
	counts    map[string]int
	played    int
	away      string    // device whose repo root is moved away, or ""
	awayUntil time.Time // when it comes back
	awayEv    *faultEvent
	wiped     string           // device wiped and not yet seen caught up, or ""
	wipedAt   map[string]int64 // the newest version of each repository at the wipe
	wipedEv   *faultEvent
	checked   time.Time    // when the wiped device was last checked
	armed     bool         // wipe the device of the next acknowledged push
	armKill   atomic.Int64 // kill the serves of this many next pushes once their client has the answer
	n         int          // for unique names
	// relaysNoexec counts relays seen serving a push through the noexec TMPDIR.
	relaysNoexec int

	evMu   sync.Mutex
	events []*faultEvent
	urlEv  []*faultEvent // peer URLs unreachable now
}

// event records a fault from now; lasting ones end with end.
func (f *injector) event(kind, dev string, lasting bool) *faultEvent {
	now := time.Now()
	e := &faultEvent{kind: kind, dev: dev, from: now}
	if !lasting {
		e.to = now
	}
	f.evMu.Lock()
	f.events = append(f.events, e)
	f.evMu.Unlock()
	return e
}

func (f *injector) end(e *faultEvent) {
	if e == nil {
		return
	}
	f.evMu.Lock()
	if e.to.IsZero() {
		e.to = time.Now()
	}
	f.evMu.Unlock()
}

// excuse names the fault in force between start and end that explains
// a read of dev failing with serve's exit status code and stderr.
func (f *injector) excuse(dev string, start, end time.Time, code int, stderr string) (string, bool) {
	f.evMu.Lock()
	defer f.evMu.Unlock()
	for _, x := range readExcuses {
		if x.code != code || !strings.Contains(stderr, x.says) {
			continue
		}
		for _, e := range f.events {
			if !contains(x.faults, e.kind) || x.own && e.dev != dev && !namesDevice(stderr, e.dev) || e.from.After(end) || !e.to.IsZero() && e.to.Before(start.Add(-x.before)) {
				continue
			}
			return fmt.Sprintf("%s (%s at %s)", e.kind, e.dev, e.from.Format("15:04:05.000")), true
		}
	}
	return "", false
}

// namesDevice reports whether a sentence names device dev ("from device
// e: ..."): a read passed on to a holder fails for that holder's own
// faults, and says which device it was.
func namesDevice(stderr, dev string) bool {
	return regexp.MustCompile(`\bdevice ` + regexp.QuoteMeta(dev) + `\b`).MatchString(stderr)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (f *injector) log(fault, format string, args ...any) {
	f.counts[fault]++
	if f.verbose || fault == faultWipe || fault == faultWipeAck || fault == faultRootAway {
		f.t.Logf("%s fault: %s: %s", stamp(), fault, fmt.Sprintf(format, args...))
	}
}

func (f *injector) summary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for _, k := range []string{faultKillServe, faultKillAnswer, faultKillRelay, faultCutDatabase, faultFailover, faultURL, faultRootAway, faultWipe, faultWipeAck} {
		parts = append(parts, fmt.Sprintf("%s %d", k, f.counts[k]))
	}
	parts = append(parts, f.placementSummary())
	return strings.Join(parts, ", ") + fmt.Sprintf(" (%d of %d steps played; relays seen with the noexec TMPDIR: %d)", f.played, len(f.steps), f.relaysNoexec)
}

func (f *injector) run(stop chan struct{}) {
	f.db = f.c.DB()
	defer f.placeWG.Wait()
	defer func() {
		f.mu.Lock()
		f.comeBack()
		f.mu.Unlock()
	}()
	for _, step := range f.steps {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(step.AfterMS) * time.Millisecond):
		}
		f.mu.Lock()
		f.played++
		if f.away != "" && time.Now().After(f.awayUntil) {
			f.comeBack()
		}
		f.checkWiped()
		switch step.Kind {
		case faultKillServe, faultKillRelay:
			f.mu.Unlock()
			f.kill(step)
			continue
		case faultKillAnswer:
			f.armKill.Add(1)
		case faultFailover:
			f.mu.Unlock()
			f.failover()
			continue
		case faultCutDatabase:
			if f.proxy == nil {
				break
			}
			f.proxy.Cut()
			f.event(faultCutDatabase, "a", false)
			f.log(faultCutDatabase, "device a")
		case faultURL:
			if _, err := f.db.Exec(`UPDATE devices SET url = '/nonexistent/' || name WHERE name = $1`, step.Dev); err == nil {
				e := f.event(faultURL, step.Dev, true)
				f.evMu.Lock()
				f.urlEv = append(f.urlEv, e)
				f.evMu.Unlock()
				f.log(faultURL, "%s", step.Dev)
			}
		case faultRestoreURLs:
			restoreURLs(f.t, f.c)
			f.evMu.Lock()
			for _, e := range f.urlEv {
				e.to = time.Now()
			}
			f.urlEv = nil
			f.evMu.Unlock()
		case faultRootAway:
			if f.away == "" && step.Dev != f.wiped {
				f.goAway(step.Dev, time.Duration(step.ForMS)*time.Millisecond)
			}
		case faultWipe:
			if f.wiped == "" && step.Dev != f.away {
				f.wipe(step.Dev, faultWipe)
			}
		case faultWipeAck:
			f.armed = true
		case faultMove, faultMoveKilled, faultDrain, faultRename:
			f.place(step)
		}
		f.mu.Unlock()
	}
	<-stop
}

// acked is told of every acknowledged push: when a wipe after an
// acknowledgement is armed, dev loses its disk now, before anything
// after the answer (a converge) could make up for a push held by fewer
// devices than the quorum.
func (f *injector) acked(dev string) {
	if !f.mu.TryLock() {
		return
	}
	defer f.mu.Unlock()
	if f.armed && f.wiped == "" && f.away != dev {
		f.armed = false
		f.wipe(dev, faultWipeAck)
	}
}

// kill sends SIGKILL to a running serve, to a push's proc-receive relay,
// or to the serve of a push right after its relay ended (receive-pack
// then reports the answer to the client). Relays live only while serve
// decides a push, so it waits for one, briefly.
func (f *injector) kill(step faultStep) {
	sub := "hook"
	if step.Kind == faultKillServe {
		sub = "serve"
	}
	deadline := time.Now().Add(time.Second)
	for {
		pids := meshtest.Processes(sub)
		if len(pids) == 0 {
			if sub == "serve" || time.Now().After(deadline) {
				return
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		pid := pids[step.Pick%len(pids)]
		switch step.Kind {
		case faultKillServe:
			// The event first: the killed read may end (and look for its
			// excuse) before the kill call returns here.
			f.event(step.Kind, "", false)
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				f.logLocked(step.Kind, "pid %d", pid)
			}
		case faultKillRelay:
			if env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); strings.Contains(string(env), hook.SocketEnv+"="+f.noexec+"/") {
				f.mu.Lock()
				f.relaysNoexec++
				f.mu.Unlock()
			}
			time.Sleep(time.Duration(step.Pick%60) * time.Millisecond)
			f.event(step.Kind, "", false)
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				f.logLocked(step.Kind, "pid %d", pid)
			}
		}
		return
	}
}

func (f *injector) logLocked(fault, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log(fault, format, args...)
}

// killAnswered kills the serve of a push right after its client read
// the report, when a kill after an answer is armed.
func (f *injector) killAnswered(serve int) {
	for {
		n := f.armKill.Load()
		if n <= 0 {
			return
		}
		if f.armKill.CompareAndSwap(n, n-1) {
			break
		}
	}
	f.event(faultKillAnswer, "", false)
	if syscall.Kill(serve, syscall.SIGKILL) == nil {
		f.logLocked(faultKillAnswer, "pid %d", serve)
	}
}

// running reports whether pid runs (a zombie has ended).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// goAway makes dev unreachable for d by moving its repo root away: its
// serve and its peers find no root, as with an unmounted disk.
func (f *injector) goAway(dev string, d time.Duration) {
	root := f.c.Devices[dev].Root
	// The event first: a read the move ends may look for its excuse
	// before the rename returns here.
	ev := f.event(faultRootAway, dev, true)
	if err := os.Rename(root, root+".away"); err != nil {
		f.end(ev)
		f.v.add(other, "move the repo root of %s away: %v", dev, err)
		return
	}
	f.away, f.awayUntil = dev, time.Now().Add(d)
	f.awayEv = ev
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
			f.v.add(other, "move the repo root of %s back: %v", dev, err)
		}
	}
	f.away = ""
	f.end(f.awayEv)
	if f.verbose {
		f.t.Logf("%s %s's repo root is back", stamp(), dev)
	}
}

// wipe loses dev's disk: every repository under its root goes at once,
// the root itself stays. They are moved aside, not deleted: a git process
// that was already working in one finishes on the old disk, as if it had
// done so just before the loss, instead of seeing files vanish under it.
func (f *injector) wipe(dev, kind string) {
	root := f.c.Devices[dev].Root
	f.n++
	trash := filepath.Join(filepath.Dir(root), fmt.Sprintf("wiped-%d", f.n))
	if err := os.Mkdir(trash, 0o755); err != nil {
		f.v.add(other, "wipe %s: %v", dev, err)
		return
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		f.v.add(other, "wipe %s: %v", dev, err)
		return
	}
	at := stamp()
	ev := f.event(kind, dev, true) // before the loss, as for a kill
	for _, e := range entries {
		if err := os.Rename(filepath.Join(root, e.Name()), filepath.Join(trash, e.Name())); err != nil {
			f.v.add(other, "wipe %s: %v", dev, err)
		}
	}
	f.wiped, f.checked, f.wipedAt = dev, time.Now(), f.newest()
	f.wipedEv = ev
	f.log(kind, "%s at %s", dev, at)
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
	for _, logical := range f.repos {
		repo := f.names.cur(logical)
		if !contains(holdersOf(f.t, f.c, repo), f.wiped) {
			continue // placed elsewhere now: nothing to hold again
		}
		// Only the wiped device's copy matters here: verify also counts
		// pushes in progress and peers unreachable now. The version is
		// read after it, so a copy verify skipped (no version) fails.
		r := f.c.Devices["b"].Run(nil, "verify", repo)
		out := r.Stdout + r.Stderr
		if strings.Contains(out, repo+" on "+f.wiped+":") || r.Code != 0 && !strings.Contains(out, "problem(s)") {
			if f.verbose {
				f.t.Logf("%s %s not back yet: verify %s: %s", stamp(), f.wiped, repo, flat(out))
			}
			return
		}
		var v int64
		err := f.db.QueryRow(`SELECT w.version FROM working_copy_versions w
			JOIN repositories r ON r.id = w.repository_id JOIN devices d ON d.id = w.device_id
			WHERE r.name = $1 AND d.name = $2`, repo, f.wiped).Scan(&v)
		if err != nil || v < f.wipedAt[logical] {
			if f.verbose {
				f.t.Logf("%s %s not back yet: %s at version %d (%v), %d at the wipe", stamp(), f.wiped, repo, v, err, f.wipedAt[logical])
			}
			return
		}
	}
	f.t.Logf("%s %s holds every repository again since its disk was wiped", stamp(), f.wiped)
	f.wiped = ""
	f.end(f.wipedEv)
}

// newest is the newest recorded version of each repository.
func (f *injector) newest() map[string]int64 {
	out := map[string]int64{}
	for _, repo := range f.repos {
		var v sql.NullInt64
		f.db.QueryRow(`SELECT max(w.version) FROM working_copy_versions w
			JOIN repositories r ON r.id = w.repository_id WHERE r.name = $1`, f.names.cur(repo)).Scan(&v)
		out[repo] = v.Int64
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

// freezeEpisode is one write mark seen frozen (its writer's session gone).
type freezeEpisode struct {
	repo, dev string
	id        int // the repository's id: a rename keeps it
	started   time.Time
	pid       int
	alive     bool // its writer's process still ran when first seen, or had cleared its mark
	thawed    bool
}

// freezeWatch plays the administrator of the runbook ("a frozen
// repository"): it leaves frozen repositories to repair themselves (the
// next read or push that meets the mark does) and thaws one only once
// its writer's device has recorded that it cannot heal it (sync_log,
// kind 'heal': its copy does not show its version and no other device
// holds it). At the end, account checks that every freeze it saw was
// repaired by its device, thawed after such a refusal, or cleared by its
// own writer, still alive, recording late.
type freezeWatch struct {
	t        *testing.T
	c        *meshtest.Cluster
	db       *sql.DB
	v        *violations
	verbose  bool
	rng      *rand.Rand
	seen     map[string]*freezeEpisode
	thaws    int
	byWriter int
}

func (fw *freezeWatch) run(stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(300 * time.Millisecond):
		}
		rows, err := statusRows(fw.c)
		if err != nil {
			continue
		}
		for _, row := range rows {
			if row.Frozen && row.Writer != nil {
				fw.thawIfCannotHeal(row.Repository, row.Device, row.Writer.Started, row.Writer.PID, false)
			}
		}
	}
}

// cannotHeal is the refusal after which only an administrator can help.
const cannotHeal = "no other device holds it"

// thawIfCannotHeal thaws repo's copy on dev, frozen by a write started
// at started, if and only if dev recorded that it cannot heal it; atEnd,
// a freeze without that reason is a violation.
func (fw *freezeWatch) thawIfCannotHeal(repo, dev string, started time.Time, pid int, atEnd bool) {
	var id int
	if err := fw.db.QueryRow(`SELECT id FROM repositories WHERE name = $1`, repo).Scan(&id); err != nil {
		return // renamed since status listed it: the next look finds it
	}
	key := fmt.Sprintf("%d %s %s", id, dev, started.Format(time.RFC3339Nano))
	ep, ok := fw.seen[key]
	if !ok {
		ep = &freezeEpisode{repo: repo, id: id, dev: dev, started: started, pid: pid, alive: pid > 0 && (running(pid) || fw.markGone(id, dev, pid))}
		fw.seen[key] = ep
	}
	if ep.thawed {
		return
	}
	var why string
	err := fw.db.QueryRow(`SELECT s.result FROM sync_log s
		JOIN devices d ON d.id = s.device_id
		WHERE s.repository_id = $1 AND d.name = $2 AND s.kind = 'heal' AND s.created_at >= $3 ORDER BY s.id DESC LIMIT 1`,
		id, dev, started).Scan(&why)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		fw.v.add(other, "read sync_log: %v", err)
		return
	}
	if !strings.HasPrefix(why, "frozen: ") || !strings.Contains(why, cannotHeal) {
		if atEnd {
			fw.v.add(frozenBad, "%s on %s is still frozen after the faults (a write started %s): it did not repair itself and did not say it cannot (last heal result: %q)",
				repo, dev, started.Format("15:04:05.000"), why)
		}
		return
	}
	fw.db.QueryRow(`SELECT name FROM repositories WHERE id = $1`, id).Scan(&repo) // its name now
	var r meshtest.Result
	if fw.rng.IntN(2) == 0 {
		r = fw.c.Devices["b"].Run(nil, "thaw", repo, "--demote", dev)
	}
	if r.Code != 0 || r.Stdout == "" {
		r = fw.c.Devices["b"].Run(nil, "thaw", repo, "--promote", dev)
		if r.Code != 0 {
			r = fw.c.Devices["b"].Run(nil, "thaw", repo, "--promote", dev, "--force")
		}
	}
	if fw.verbose {
		fw.t.Logf("%s %s on %s said %q; thaw: exit %d: %s %s", stamp(), repo, dev, why, r.Code, flat(r.Stdout), flat(r.Stderr))
	}
	if r.Code != 0 {
		fw.v.add(other, "thaw %s on %s after it said it cannot heal: exit %d: %s", repo, dev, r.Code, flat(r.Stderr))
		return
	}
	ep.thawed = true
	fw.thaws++
}

// markGone reports whether the mark of writer pid on dev is gone: status
// listed it a moment ago, so a writer found dead now cleared its own
// mark (a refused push does, retrying across a failover) and exited
// between status's query and the look at its pid.
func (fw *freezeWatch) markGone(id int, dev string, pid int) bool {
	var marked bool
	err := fw.db.QueryRow(`SELECT EXISTS (SELECT 1 FROM working_copy_versions w JOIN devices d ON d.id = w.device_id
		WHERE w.repository_id = $1 AND d.name = $2 AND w.is_writing AND (w.write_properties->>'pid')::int = $3)`, id, dev, pid).Scan(&marked)
	return err == nil && !marked
}

// account checks how each freeze seen ended: a self-repair counts for
// the freeze of its copy that it follows, and no later one.
func (fw *freezeWatch) account() {
	db := fw.db
	for _, ep := range fw.seen {
		next := time.Now().Add(time.Hour)
		for _, o := range fw.seen {
			if o.id == ep.id && o.dev == ep.dev && o.started.After(ep.started) && o.started.Before(next) {
				next = o.started
			}
		}
		var healed bool
		err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM sync_log s
			JOIN devices d ON d.id = s.device_id
			WHERE s.repository_id = $1 AND d.name = $2 AND s.kind = 'heal' AND s.result LIKE 'ok:%' AND s.created_at >= $3 AND s.created_at < $4)`,
			ep.id, ep.dev, ep.started, next).Scan(&healed)
		if err != nil {
			fw.v.add(other, "read sync_log: %v", err)
		}
		switch {
		case healed, ep.thawed:
		case ep.alive:
			fw.byWriter++
		default:
			fw.v.add(frozenBad, "%s on %s was frozen by a dead writer (pid %d, write started %s), and no self-repair and no thaw ended it",
				ep.repo, ep.dev, ep.pid, ep.started.Format("15:04:05.000"))
		}
	}
}

// historyStatusRow is one row of `gitmesh status --json`.
type historyStatusRow struct {
	Repository string `json:"repository"`
	Device     string `json:"device"`
	IsWriting  bool   `json:"is_writing"`
	Frozen     bool   `json:"frozen"`
	Writer     *struct {
		PID     int       `json:"pid"`
		Started time.Time `json:"started"`
	} `json:"writer"`
}

func statusRows(c *meshtest.Cluster) ([]historyStatusRow, error) {
	r := c.Devices["b"].Run(nil, "status", "--json")
	var rows []historyStatusRow
	if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil {
		return nil, fmt.Errorf("status --json: exit %d: %v: %s", r.Code, err, r.Stderr)
	}
	return rows, nil
}

// frozenCopy is a copy with a write mark.
type frozenCopy struct {
	Repository, Device string
	Started            time.Time
	PID                int
}

// frozenCopies lists the copies status reports with a write mark.
func frozenCopies(t *testing.T, c *meshtest.Cluster) []frozenCopy {
	rows, err := statusRows(c)
	if err != nil {
		t.Fatal(err)
	}
	var frozen []frozenCopy
	for _, r := range rows {
		if r.IsWriting {
			f := frozenCopy{Repository: r.Repository, Device: r.Device}
			if r.Writer != nil {
				f.Started, f.PID = r.Writer.Started, r.Writer.PID
			}
			frozen = append(frozen, f)
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
		t.Log(err)
		return
	}
	for rows.Next() {
		var at, repo, dev, ref, o, n string
		var v int64
		if err := rows.Scan(&at, &repo, &dev, &ref, &o, &n, &v); err != nil {
			t.Log(err)
			return
		}
		t.Logf("push %s %s on %s %s %s..%s v%d", at, repo, dev, ref, o, n, v)
	}
	rows, err = c.DB().Query(`SELECT to_char(s.created_at, 'HH24:MI:SS.MS'), s.kind, r.name, d.name, COALESCE(f.name, '-'), COALESCE(s.from_version, -1), COALESCE(s.to_version, -1), left(s.result, 100)
		FROM sync_log s JOIN repositories r ON r.id = s.repository_id JOIN devices d ON d.id = s.device_id LEFT JOIN devices f ON f.id = s.from_device ORDER BY s.id`)
	if err != nil {
		t.Log(err)
		return
	}
	for rows.Next() {
		var at, kind, repo, dev, from, res string
		var fv, tv int64
		if err := rows.Scan(&at, &kind, &repo, &dev, &from, &fv, &tv, &res); err != nil {
			t.Log(err)
			return
		}
		t.Logf("%s %s %s %s <- %s v%d->v%d %s", kind, at, repo, dev, from, fv, tv, res)
	}
}

// failover kills the primary, promotes the standby (what Patroni does)
// and, the cluster running meanwhile, attaches a fresh standby, so that
// the next failover has one to promote. The event lasts from the kill
// until the new primary takes writes.
func (f *injector) failover() {
	if f.ha == nil {
		return
	}
	e := f.event(faultFailover, "", true)
	err := f.ha.Failover()
	f.end(e)
	if err != nil {
		f.v.add(other, "failover: %v", err)
		return
	}
	f.mu.Lock()
	f.log(faultFailover, "standby promoted")
	f.mu.Unlock()
	if err := f.ha.AttachStandby(); err != nil {
		f.v.add(other, "attach a standby after the failover: %v", err)
	}
}
