package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// Placement's faults: the copies move while the writers and readers go on.
const (
	faultMove       = "copy moved"
	faultMoveKilled = "move killed and resumed"
	faultDrain      = "device drained and refilled"
	faultRename     = "repository renamed"
)

// placementMix adds moves, drains and renames to the usual faults.
var placementMix = faultMix{faultKillServe: 3, faultKillRelay: 3, faultKillAnswer: 2, faultCutDatabase: 2,
	faultURL: 3, faultRootAway: 2, faultWipe: 1, faultWipeAck: 1,
	faultMove: 5, faultMoveKilled: 3, faultDrain: 2, faultRename: 3}

var placementDevs = []string{"a", "b", "c", "d", "e"}

// TestRandomisedHistoryWithPlacement is the randomised history on five
// devices with three copies of each repository: every device answers
// (those without a copy pass requests on), and among the usual faults
// copies move (a move killed with SIGKILL mid-way, then resumed), a
// device is drained and refilled by rebalance, and repositories are
// renamed, all under load. Nothing acknowledged is lost, no read is stale
// or goes backwards, and at the end every holder's copy passes fsck and
// no device keeps a copy it does not hold.
func TestRandomisedHistoryWithPlacement(t *testing.T) {
	sched := historySchedule(t, placementMix)
	if os.Getenv("GITMESH_HISTORY_SCHEDULE") == "" { // a replay has its own
		ops := sched.Ops
		if os.Getenv("GITMESH_HISTORY_OPS") == "" {
			ops = 500 // its operations are quick: more of them, so more moves play
		}
		sched = newScheduleOn(sched.Seed, ops, placementMix, placementDevs, 3)
	}
	run := runHistory(t, sched, historyOptions{})
	for _, s := range run.summary {
		t.Log(s)
	}
	if run.pushOK == 0 || run.readOK == 0 {
		run.v.add(other, "no push or no read succeeded (%d pushes, %d reads): the run checked nothing", run.pushOK, run.readOK)
	}
	if run.placed == 0 {
		run.v.add(other, "no move, drain or rename completed: the run tested nothing new")
	}
	if len(run.v.list) > 0 {
		for _, s := range run.v.list {
			t.Error(s)
		}
		t.Fatalf("seed %d: %d violations (replay with GITMESH_SEED=%d, or the schedule as printed above)", sched.Seed, len(run.v.list), sched.Seed)
	}
}

// devices are the schedule's devices.
func (s schedule) devices() []string {
	if len(s.Devs) == 0 {
		return historyDevs
	}
	return s.Devs
}

// repoNames is what each repository of the model is called now: a rename
// changes it, the model keeps the first name.
type repoNames struct {
	mu  sync.Mutex
	now map[string]string
}

func newRepoNames(repos []string) *repoNames {
	n := &repoNames{now: map[string]string{}}
	for _, r := range repos {
		n.now[r] = r
	}
	return n
}

func (n *repoNames) cur(repo string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.now[repo]
}

func (n *repoNames) set(repo, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.now[repo] = name
}

// all is every repository's name now, in the model's order.
func (n *repoNames) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, r := range historyRepos {
		if name, ok := n.now[r]; ok {
			out = append(out, name)
		}
	}
	return out
}

// holdersOf lists the devices placed to hold repo now.
func holdersOf(t *testing.T, c *meshtest.Cluster, repo string) []string {
	d := c.DB()
	defer d.Close()
	rows, err := d.Query(`SELECT dv.name FROM holders h JOIN devices dv ON dv.id = h.device_id
		JOIN repositories r ON r.id = h.repository_id WHERE r.name = $1 ORDER BY dv.name`, repo)
	if err != nil {
		t.Errorf("read the holders of %s: %v", repo, err)
		return nil
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		out = append(out, n)
	}
	return out
}

// place plays a placement fault in the background, one at a time: a
// copy moved from a holder to a device without one (its mover killed
// mid-way and run again, for faultMoveKilled), a device drained and the
// cluster rebalanced, or a repository renamed (back and forth). What
// fails (a device unreachable, a lock busy) is logged, not a violation:
// the end checks that nothing was lost either way.
func (f *injector) place(step faultStep) {
	if !f.placing.CompareAndSwap(false, true) {
		return
	}
	f.placeWG.Add(1)
	go func() {
		defer f.placeWG.Done()
		defer f.placing.Store(false)
		switch step.Kind {
		case faultMove, faultMoveKilled:
			f.move(step)
		case faultDrain:
			f.drain(step)
		case faultRename:
			f.rename(step)
		}
	}()
}

// admin runs a gitmesh admin command on device b (its database is
// never cut), reporting whether it exited 0.
func (f *injector) admin(fault string, args ...string) bool {
	r := f.c.Devices["b"].Run(nil, args...)
	if r.Code != 0 {
		f.logLocked(fault+" refused", "%s: exit %d: %s", strings.Join(args, " "), r.Code, flat(r.Stderr))
		return false
	}
	f.logLocked(fault, "%s", strings.Join(args, " "))
	return true
}

func (f *injector) move(step faultStep) {
	repo := f.names.cur(f.repos[step.Pick%len(f.repos)])
	holders := holdersOf(f.t, f.c, repo)
	var others []string
	for _, d := range f.devs {
		if !contains(holders, d) {
			others = append(others, d)
		}
	}
	if len(holders) == 0 || len(others) == 0 {
		return
	}
	from, to := holders[step.Pick%len(holders)], others[(step.Pick/7)%len(others)]
	e := f.event(step.Kind, from, true)
	defer f.end(e)
	args := []string{"repo", "move", repo, "--from", from, "--to", to}
	if step.Kind == faultMoveKilled {
		cmd := f.c.Devices["b"].Command(nil, args...)
		if err := cmd.Start(); err != nil {
			f.v.add(other, "start %s: %v", strings.Join(args, " "), err)
			return
		}
		time.Sleep(time.Duration(20+step.Pick%400) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		f.logLocked(step.Kind, "killed %s", strings.Join(args, " "))
	}
	if f.admin(step.Kind, args...) {
		f.placed.Add(1)
	}
}

func (f *injector) drain(step faultStep) {
	dev := f.devs[step.Pick%len(f.devs)]
	e := f.event(faultDrain, dev, true)
	defer f.end(e)
	if f.admin(faultDrain, "device", "drain", dev) {
		f.placed.Add(1)
	}
	f.admin(faultDrain, "rebalance")
}

func (f *injector) rename(step faultStep) {
	logical := f.repos[step.Pick%len(f.repos)]
	old := f.names.cur(logical)
	name := logical + "-renamed"
	if old != logical {
		name = logical
	}
	e := f.event(faultRename, "", true)
	defer f.end(e)
	if f.admin(faultRename, "repo", "rename", old, name) {
		f.names.set(logical, name)
		f.placed.Add(1)
	}
}

// placementSummary counts the placement faults played.
func (f *injector) placementSummary() string {
	var parts []string
	for _, k := range []string{faultMove, faultMoveKilled, faultDrain, faultRename} {
		parts = append(parts, fmt.Sprintf("%s %d (refused %d)", k, f.counts[k], f.counts[k+" refused"]))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
