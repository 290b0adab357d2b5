package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gitmesh/lock"
	"gitmesh/meshtest"
)

// copyDir is device dev's copy of repo on its disk.
func copyDir(c *meshtest.Cluster, dev, repo string) string {
	return filepath.Join(c.Devices[dev].Root, repo+".git")
}

func onDisk(c *meshtest.Cluster, dev, repo string) bool {
	_, err := os.Stat(copyDir(c, dev, repo))
	return err == nil
}

// movedCluster is a cluster of a, b, c, d with team/app on a, b and c
// (3 copies: placement's fewest-copies-then-name choice) and one
// acknowledged commit.
func movedCluster(t *testing.T) (*meshtest.Cluster, string, string) {
	t.Helper()
	c := meshtest.NewCluster(t, "a", "b", "c", "d")
	c.Settings = "copies = 3"
	for _, d := range c.Devices {
		d.WriteConfig("")
	}
	c.CreateRepo("a", "team/app", "alice")
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "a,b,c" {
		t.Fatalf("team/app placed on %s, want a,b,c", got)
	}
	work := c.Work("alice")
	acked := c.Commit(work, "README", "acknowledged\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	return c, work, acked
}

// A move adds the new holder, brings its copy to the newest version,
// then drops the old holder, whose copy leaves its disk; the move is
// logged to sync_log and the repository reads the same everywhere.
func TestRepoMoveMovesACopy(t *testing.T) {
	c, _, acked := movedCluster(t)
	out := c.MustAdmin("repo", "move", "team/app", "--from", "c", "--to", "d")
	if !strings.Contains(out, "moved team/app from c to d") {
		t.Fatalf("repo move said %q", out)
	}
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "a,b,d" {
		t.Fatalf("after the move team/app is on %s, want a,b,d", got)
	}
	if onDisk(c, "c", "team/app") {
		t.Fatalf("c's copy is still on its disk after the move")
	}
	if got := c.Rev("d", "team/app", "refs/heads/main"); got != acked {
		t.Fatalf("d's copy shows main at %q, want %s", got, acked)
	}
	var result string
	if err := c.DB().QueryRow(`SELECT s.result FROM sync_log s JOIN devices d ON d.id = s.device_id
		WHERE s.kind = 'move' AND d.name = 'd'`).Scan(&result); err != nil || !strings.Contains(result, "moved from c to d") {
		t.Fatalf("sync_log has no move to d: %q, %v", result, err)
	}
	st := c.MustAdmin("status", "team/app")
	if strings.Contains(st, "moving") || strings.Contains(st, "\tc\t") || !strings.Contains(st, "3 of 3 devices hold the newest version") {
		t.Fatalf("status after the move:\n%s", st)
	}
	// Run again (a mover killed after its last step): nothing to do.
	if r := c.Admin("repo", "move", "team/app", "--from", "c", "--to", "d"); r.Code != 0 || !strings.Contains(r.Stdout, "nothing to do") {
		t.Fatalf("the same move again: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := c.Devices["d"].Git("alice", "", "ls-remote", meshtest.URL("team/app"), "refs/heads/main")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, acked) {
		t.Fatalf("ls-remote on d after the move: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// Each bad move, copies or drain request gets one sentence and its
// documented exit code, and changes nothing.
func TestMoveBadInput(t *testing.T) {
	c, _, _ := movedCluster(t)
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"repo", "move", "team/nope", "--from", "c", "--to", "d"}, 3, `repository "team/nope" is not registered`},
		{[]string{"repo", "move", "team/app", "--from", "c", "--to", "zz"}, 1, `device "zz" is not registered`},
		{[]string{"repo", "move", "team/app", "--from", "zz", "--to", "d"}, 1, `device "zz" is not registered`},
		{[]string{"repo", "move", "team/app", "--from", "d", "--to", "c"}, 2, "device d holds no copy of team/app"},
		{[]string{"repo", "move", "team/app", "--from", "c", "--to", "a"}, 2, "device a already holds a copy of team/app"},
		{[]string{"repo", "move", "team/app", "--from", "c", "--to", "c"}, 2, "name two different devices"},
		{[]string{"repo", "move", "team/app", "--from", "c"}, 2, "needs --from DEVICE and --to DEVICE"},
		{[]string{"repo", "copies", "team/app", "0"}, 2, "a repository needs at least one"},
		{[]string{"repo", "copies", "team/app", "5"}, 2, "only 4 devices are registered"},
		{[]string{"repo", "copies", "team/app", "three"}, 2, "must be a whole number"},
		{[]string{"repo", "copies", "team/nope", "2"}, 3, `repository "team/nope" is not registered`},
		{[]string{"device", "drain", "zz"}, 1, `device "zz" is not registered`},
		{[]string{"device", "remove", "c"}, 2, "run 'gitmesh device drain c' first"},
	} {
		r := c.Admin(tc.args...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.says) || len(lines) != 1 {
			t.Errorf("gitmesh %s: exit %d, stderr %q; want exit %d and one sentence saying %q",
				strings.Join(tc.args, " "), r.Code, r.Stderr, tc.code, tc.says)
		}
	}
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "a,b,c" {
		t.Fatalf("bad input changed the holders: %s", got)
	}
	var moves, tasks int
	c.DB().QueryRow(`SELECT (SELECT count(*) FROM moves), (SELECT count(*) FROM disk_tasks)`).Scan(&moves, &tasks)
	if moves != 0 || tasks != 0 || !onDisk(c, "c", "team/app") {
		t.Fatalf("bad input left %d moves and %d disk tasks (c's copy on disk: %v)", moves, tasks, onDisk(c, "c", "team/app"))
	}
}

// Moves under concurrent pushes and reads: every acknowledged push
// stays, no read goes backwards, the old holder's copy leaves its disk
// and the new one's holds everything.
func TestRepoMoveUnderPushesAndReads(t *testing.T) {
	c, work, first := movedCluster(t)
	url := meshtest.URL("team/app")
	var mu sync.Mutex
	order := map[string]int{first: 0}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var backwards []string
	for _, dev := range []string{"a", "b"} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			last := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := c.Devices[dev].Git("alice", "", "ls-remote", url, "refs/heads/main")
				if r.Code != 0 {
					mu.Lock()
					backwards = append(backwards, fmt.Sprintf("read on %s failed: exit %d, %s", dev, r.Code, r.Stderr))
					mu.Unlock()
					continue
				}
				id, _, _ := strings.Cut(r.Stdout, "\t")
				mu.Lock()
				n, known := order[id]
				if !known || n < last {
					backwards = append(backwards, fmt.Sprintf("read on %s saw %s (push %d, known %v) after push %d", dev, id, n, known, last))
				}
				mu.Unlock()
				last = max(last, n)
			}
		}()
	}
	var acked []string
	push := func(i int) bool {
		id := c.Commit(work, "README", fmt.Sprintf("push %d\n", i))
		mu.Lock()
		order[id] = i
		mu.Unlock()
		if r := c.Devices["a"].Git("alice", work, "push", "-q", url, "main"); r.Code != 0 {
			t.Errorf("push %d refused during the moves: exit %d, %s", i, r.Code, r.Stderr)
			c.LocalGit(work, "reset", "-q", "--hard", "HEAD~1")
			return false
		}
		acked = append(acked, id)
		return true
	}
	push(1)
	// Back and forth: c to d, d to c, c to d, each under pushes.
	moved := start(func() meshtest.Result {
		var r meshtest.Result
		for _, m := range [][2]string{{"c", "d"}, {"d", "c"}, {"c", "d"}} {
			if r = c.Admin("repo", "move", "team/app", "--from", m[0], "--to", m[1]); r.Code != 0 {
				break
			}
		}
		return r
	})
	i, during := 2, 0
	var r meshtest.Result
	for done := false; !done; i++ {
		select {
		case r = <-moved:
			done = true
		default:
		}
		if push(i) && !done {
			during++
		}
	}
	push(i)
	close(stop)
	waitAll(t, &readers, "the readers")
	if r.Code != 0 {
		t.Fatalf("repo move under pushes: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, b := range backwards {
		t.Error(b)
	}
	if during == 0 {
		t.Fatalf("no push was acknowledged while the moves ran (%d in all): the test checked nothing", len(acked))
	}
	t.Logf("%d pushes acknowledged, %d while the moves ran", len(acked), during)
	last := acked[len(acked)-1]
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "a,b,d" {
		t.Fatalf("after the move team/app is on %s, want a,b,d", got)
	}
	for _, dev := range []string{"a", "b", "d"} {
		r := c.Devices[dev].Git("alice", "", "ls-remote", url, "refs/heads/main")
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, last) {
			t.Errorf("ls-remote on %s after the move: exit %d, %q; want the last acknowledged push %s", dev, r.Code, r.Stdout+r.Stderr, last)
		}
	}
	if onDisk(c, "c", "team/app") {
		t.Errorf("c's copy is still on its disk after the move")
	}
	// d's own disk holds every acknowledged push.
	for _, id := range acked {
		cmd := exec.Command("git", "--git-dir", copyDir(c, "d", "team/app"), "merge-base", "--is-ancestor", id, "refs/heads/main")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("acknowledged push %s is not in d's copy: %v %s", id, err, out)
		}
	}
}

// heldLock is an advisory lock the test holds on a session of its own.
type heldLock struct {
	conn *sql.Conn
	key  lock.Key
}

func takeLock(t *testing.T, c *meshtest.Cluster, k lock.Key) *heldLock {
	t.Helper()
	conn, err := c.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_lock($1, $2)`, k.Class, k.Obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &heldLock{conn: conn, key: k}
}

func (h *heldLock) release(t *testing.T) {
	t.Helper()
	if _, err := h.conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1, $2)`, h.key.Class, h.key.Obj); err != nil {
		t.Fatal(err)
	}
}

// killMoverAt starts the move, waits until it waits for key (held by
// the test), and kills it with SIGKILL.
func killMoverAt(t *testing.T, c *meshtest.Cluster, key lock.Key, args ...string) {
	t.Helper()
	cmd := exec.Command(meshtest.Binary(), append([]string{"--config", c.Devices["a"].Config}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForLockWaiter(t, c, key, "the mover", nil)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
}

// statusMove is the "moving" field `status --json` shows for repo.
func statusMove(t *testing.T, c *meshtest.Cluster, repo string) map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal([]byte(c.MustAdmin("status", repo, "--json")), &rows); err != nil || len(rows) == 0 {
		t.Fatalf("status --json: %v", err)
	}
	m, _ := rows[0]["moving"].(map[string]any)
	return m
}

// A mover killed with SIGKILL in its catch-up step, then in its last
// step, leaves the move in the database (status shows it); running the
// move again finishes it, and nothing is lost.
func TestRepoMoveKilledIsResumed(t *testing.T) {
	c, work, acked := movedCluster(t)
	rid, did := ids(t, c, "team/app", "d")
	move := []string{"repo", "move", "team/app", "--from", "c", "--to", "d"}

	// Killed while it waits for d's read lock (catching up).
	held := takeLock(t, c, lock.Read(rid, did))
	killMoverAt(t, c, held.key, move...)
	held.release(t)
	st := c.MustAdmin("status", "team/app")
	if !strings.Contains(st, "team/app: moving from c to d since ") || !strings.Contains(st, "(catching-up)") {
		t.Fatalf("status after the mover was killed catching up:\n%s", st)
	}
	if m := statusMove(t, c, "team/app"); m == nil || m["from"] != "c" || m["to"] != "d" || m["step"] != "catching-up" {
		t.Fatalf("status --json moving = %v", m)
	}
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "a,b,c,d" {
		t.Fatalf("mid-move holders %s, want a,b,c,d", got)
	}
	// A push meanwhile needs a majority of the four holders: with b and c
	// down, a and d are not enough (they would be 2 of a, b, c).
	for _, dev := range []string{"b", "c"} {
		if err := os.Rename(c.Devices[dev].Root, c.Devices[dev].Root+".away"); err != nil {
			t.Fatal(err)
		}
	}
	refused := c.Commit(work, "README", "refused during the move\n")
	if r := c.Devices["a"].Git("alice", work, "push", "-q", meshtest.URL("team/app"), "main"); r.Code == 0 ||
		!strings.Contains(r.Stderr, "only 2 of 4 devices could store the push (3 needed)") {
		t.Fatalf("push with 2 of the 4 holders mid-move: exit %d, %s", r.Code, r.Stderr)
	}
	for _, dev := range []string{"b", "c"} {
		if err := os.Rename(c.Devices[dev].Root+".away", c.Devices[dev].Root); err != nil {
			t.Fatal(err)
		}
	}
	acked2 := c.Commit(work, "README", "during the move\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	if r := c.Devices["b"].Git("alice", "", "ls-remote", meshtest.URL("team/app")); strings.Contains(r.Stdout, refused) {
		t.Fatalf("the refused push is served: %s", r.Stdout)
	}

	// Killed while it waits for the write lock (its last step).
	held = takeLock(t, c, lock.Write(rid))
	killMoverAt(t, c, held.key, move...)
	held.release(t)
	if m := statusMove(t, c, "team/app"); m == nil || m["step"] != "removing c" {
		t.Fatalf("status --json moving after a kill in the last step = %v", m)
	}
	if !onDisk(c, "c", "team/app") {
		t.Fatalf("c's copy left its disk before the move was done")
	}

	r := c.Admin(move...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "resuming the move from c to d") || !strings.Contains(r.Stdout, "moved team/app from c to d") {
		t.Fatalf("the move run again: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "a,b,d" {
		t.Fatalf("after the resumed move team/app is on %s, want a,b,d", got)
	}
	if onDisk(c, "c", "team/app") || statusMove(t, c, "team/app") != nil {
		t.Fatalf("after the resumed move: c's copy on disk %v, status %s", onDisk(c, "c", "team/app"), c.MustAdmin("status", "team/app"))
	}
	for _, dev := range []string{"a", "b", "d"} {
		r := c.Devices[dev].Git("alice", "", "ls-remote", meshtest.URL("team/app"), "refs/heads/main")
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, acked2) {
			t.Errorf("ls-remote on %s: exit %d, %q; want %s (after %s)", dev, r.Code, r.Stdout+r.Stderr, acked2, acked)
		}
	}
}

// A move to a device that is down is undone: one sentence, exit 6, the
// repository stays where it was and reads and pushes go on.
func TestRepoMoveToADeviceThatIsDown(t *testing.T) {
	c, work, _ := movedCluster(t)
	d := c.Devices["d"]
	if err := os.Rename(d.Root, d.Root+".away"); err != nil { // d's disk is not mounted
		t.Fatal(err)
	}
	r := c.Admin("repo", "move", "team/app", "--from", "c", "--to", "d")
	if r.Code != 6 || !strings.Contains(r.Stderr, "device d could not catch up on team/app") || !strings.Contains(r.Stderr, "the move was undone") ||
		strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Fatalf("move to a device that is down: exit %d, stderr %q; want 6 and one sentence", r.Code, r.Stderr)
	}
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "a,b,c" {
		t.Fatalf("after the undone move team/app is on %s, want a,b,c", got)
	}
	if statusMove(t, c, "team/app") != nil || !onDisk(c, "c", "team/app") {
		t.Fatalf("the undone move left: %s", c.MustAdmin("status", "team/app"))
	}
	if log := c.MustAdmin("sync-log", "team/app"); !strings.Contains(log, "move to d undone: d could not catch up") {
		t.Fatalf("sync-log does not show the undone move:\n%s", log)
	}
	// A drain whose only possible target is down keeps the copy: exit 6.
	r = c.Admin("device", "drain", "c")
	if r.Code != 6 || !strings.Contains(r.Stderr, "device d could not catch up on team/app") || !strings.Contains(r.Stderr, "device c still holds 1 copy (team/app)") {
		t.Fatalf("drain to a device that is down: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "a,b,c" {
		t.Fatalf("after the failed drain team/app is on %s, want a,b,c", got)
	}
	acked := c.Commit(work, "README", "after the undone move\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	if got := c.Devices["c"].MustGit("alice", "", "ls-remote", meshtest.URL("team/app"), "refs/heads/main"); !strings.HasPrefix(got, acked) {
		t.Fatalf("ls-remote on c: %q, want %s", got, acked)
	}
	// d back: the copies command now places the fourth copy there.
	if err := os.Rename(d.Root+".away", d.Root); err != nil {
		t.Fatal(err)
	}
	c.MustAdmin("repo", "copies", "team/app", "4")
	if got := c.Rev("d", "team/app", "refs/heads/main"); got != acked {
		t.Fatalf("d's copy after copies 4: %q, want %s", got, acked)
	}
	c.MustAdmin("repo", "copies", "team/app", "2")
	if got := holdersOf(t, c, "team/app"); len(got) != 2 {
		t.Fatalf("after copies 2: holders %v", got)
	}
	for _, dev := range []string{"a", "b", "c", "d"} {
		held := strings.Contains(strings.Join(holdersOf(t, c, "team/app"), ","), dev)
		if held != onDisk(c, dev, "team/app") {
			t.Errorf("after copies 2: %s holds a copy %v, has one on disk %v", dev, held, onDisk(c, dev, "team/app"))
		}
	}
}

// A holder down during a move (b), and the device moved from down (c):
// the move goes on with the quorum of the others; c removes its copy on
// its return, when `gitmesh sync` runs there.
func TestRepoMoveWithDevicesDown(t *testing.T) {
	c, _, acked := movedCluster(t)
	for _, dev := range []string{"b", "c"} {
		if err := os.Rename(c.Devices[dev].Root, c.Devices[dev].Root+".away"); err != nil {
			t.Fatal(err)
		}
	}
	r := c.Admin("repo", "move", "team/app", "--from", "c", "--to", "d")
	if r.Code != 0 || !strings.Contains(r.Stdout, "c could not remove its copy now") {
		t.Fatalf("move with b and c down: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := c.Rev("d", "team/app", "refs/heads/main"); got != acked {
		t.Fatalf("d's copy: %q, want %s", got, acked)
	}
	for _, dev := range []string{"b", "c"} {
		if err := os.Rename(c.Devices[dev].Root+".away", c.Devices[dev].Root); err != nil {
			t.Fatal(err)
		}
	}
	if !onDisk(c, "c", "team/app") {
		t.Fatal("c's copy is gone although c was down")
	}
	if r := c.Devices["c"].Run(nil, "sync"); r.Code != 0 {
		t.Fatalf("sync on c: exit %d, %s", r.Code, r.Stderr)
	}
	if onDisk(c, "c", "team/app") {
		t.Fatal("c's copy is still on its disk after sync on its return")
	}
}

// drain moves every copy off a device (each repository keeps its number
// of copies); remove is refused before, naming drain, and works after.
func TestDeviceDrainThenRemove(t *testing.T) {
	c, _, acked := movedCluster(t)
	c.CreateRepo("a", "team/lib", "alice") // on d, a, b: the fewest copies first
	if got := strings.Join(holdersOf(t, c, "team/lib"), ","); got != "a,b,d" {
		t.Fatalf("team/lib placed on %s, want a,b,d", got)
	}
	r := c.Admin("device", "remove", "a")
	if r.Code != 2 || !strings.Contains(r.Stderr, "run 'gitmesh device drain a' first") {
		t.Fatalf("remove of a device holding copies: exit %d, %s", r.Code, r.Stderr)
	}
	out := c.MustAdmin("device", "drain", "a")
	if !strings.Contains(out, "moved team/app from a to d") || !strings.Contains(out, "moved team/lib from a to c") {
		t.Fatalf("drain said:\n%s", out)
	}
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "b,c,d" {
		t.Fatalf("after the drain team/app is on %s", got)
	}
	if got := strings.Join(holdersOf(t, c, "team/lib"), ","); got != "b,c,d" {
		t.Fatalf("after the drain team/lib is on %s", got)
	}
	if onDisk(c, "a", "team/app") || onDisk(c, "a", "team/lib") {
		t.Fatal("a's copies are still on its disk after the drain")
	}
	c.MustAdmin("device", "remove", "a")
	if got := c.Devices["b"].MustGit("alice", "", "ls-remote", meshtest.URL("team/app"), "refs/heads/main"); !strings.HasPrefix(got, acked) {
		t.Fatalf("ls-remote on b after a was removed: %q, want %s", got, acked)
	}
	// Three devices left, three copies each: nowhere to drain b to.
	r = c.Admin("device", "drain", "b")
	if r.Code != 2 || !strings.Contains(r.Stderr, "no device is left to take team/app's copy from b") ||
		!strings.Contains(r.Stderr, "device b still holds 2 copies") {
		t.Fatalf("drain with no room: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := strings.Join(holdersOf(t, c, "team/app"), ","); got != "b,c,d" {
		t.Fatalf("a refused drain changed team/app's holders: %s", got)
	}
}

// rebalance evens out the copies per device: 4 repositories with 3
// copies on 3 devices, then a fourth device: 3 copies each.
func TestRebalanceEvensFourDevices(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	repos := []string{"r/one", "r/two", "r/three", "r/four"}
	for _, r := range repos {
		c.CreateRepo("a", r, "alice")
	}
	work := c.Work("alice")
	acked := c.Commit(work, "README", "hello\n")
	for _, r := range repos {
		c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL(r), "main")
	}
	d := c.AddDevice("d", "")
	c.MustAdmin("device", "add", "d", "--url", d.Root)
	count := func() map[string]int {
		out := map[string]int{"a": 0, "b": 0, "c": 0, "d": 0}
		for _, r := range repos {
			for _, h := range holdersOf(t, c, r) {
				out[h]++
			}
		}
		return out
	}
	dry := c.MustAdmin("rebalance", "--dry-run")
	if n := strings.Count(dry, "would move "); n != 3 {
		t.Fatalf("rebalance --dry-run planned %d moves, want 3:\n%s", n, dry)
	}
	if got := count(); got["d"] != 0 {
		t.Fatalf("the dry run moved copies: %v", got)
	}
	out := c.MustAdmin("rebalance")
	if n := strings.Count("\n"+out, "\nmoved "); n != 3 {
		t.Fatalf("rebalance made %d moves, want 3:\n%s", n, out)
	}
	got := count()
	var ns []int
	for _, n := range got {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	if ns[len(ns)-1]-ns[0] > 1 || got["d"] != 3 {
		t.Fatalf("after rebalance the copies per device are %v (said:\n%s)", got, out)
	}
	for _, r := range repos {
		for _, h := range holdersOf(t, c, r) {
			if rev := c.Rev(h, r, "refs/heads/main"); rev != acked {
				t.Errorf("%s on %s shows %q, want %s", r, h, rev, acked)
			}
		}
	}
	if again := c.MustAdmin("rebalance", "--dry-run"); !strings.Contains(again, "nothing to move") {
		t.Fatalf("rebalance after rebalancing: %s", again)
	}
}

// Through real sshd: the new holder catches up and the old one removes
// its copy, each asked by a cluster request (gitmesh-sync) over ssh.
func TestRepoMoveOverSSH(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c", "d")
	c.CreateRepo("a", "team/app", "alice")
	if got := strings.Join(holdersOf(t, c.Cluster, "team/app"), ","); got != "a,b,c" {
		t.Fatalf("team/app placed on %s, want a,b,c", got)
	}
	work := c.Work("alice")
	acked := c.Commit(work, "README", "over ssh\n")
	c.Hosts["a"].MustGit("alice", work, "push", "-q", c.Hosts["a"].URL("team/app"), "main")
	if !onDisk(c.Cluster, "c", "team/app") {
		t.Fatal("c has no copy before the move")
	}
	out := c.MustAdmin("repo", "move", "team/app", "--from", "c", "--to", "d")
	if !strings.Contains(out, "moved team/app from c to d") {
		t.Fatalf("repo move said %q", out)
	}
	if got := c.Rev("d", "team/app", "refs/heads/main"); got != acked {
		t.Fatalf("d's copy shows %q, want %s", got, acked)
	}
	if onDisk(c.Cluster, "c", "team/app") {
		t.Fatal("c's copy is still on its disk after the move")
	}
	if got := c.Hosts["d"].MustGit("alice", "", "ls-remote", c.Hosts["d"].URL("team/app"), "refs/heads/main"); !strings.HasPrefix(got, acked) {
		t.Fatalf("ls-remote on d: %q", got)
	}
}

// When even the undo cannot be made (the write lock stays busy), the
// move is left in progress: exit 6, one sentence, status shows it, and
// running the move again once the new device is back finishes it.
func TestRepoMoveLeftInProgressWhenItCannotBeUndone(t *testing.T) {
	c, _, acked := movedCluster(t)
	d := c.Devices["d"]
	if err := os.Rename(d.Root, d.Root+".away"); err != nil {
		t.Fatal(err)
	}
	held := takeLock(t, c, lock.Write(repoID(t, c, "team/app")))
	r := c.Devices["a"].Run([]string{"GITMESH_LOCK_TIMEOUT=2s"}, "repo", "move", "team/app", "--from", "c", "--to", "d")
	held.release(t)
	if r.Code != 6 || !strings.Contains(r.Stderr, "device d could not catch up on team/app") ||
		!strings.Contains(r.Stderr, "the move is left in progress") || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Fatalf("move that cannot be undone: exit %d, stderr %q; want 6 and one sentence", r.Code, r.Stderr)
	}
	if st := c.MustAdmin("status", "team/app"); !strings.Contains(st, "team/app: moving from c to d since ") {
		t.Fatalf("status does not show the move left in progress:\n%s", st)
	}
	if err := os.Rename(d.Root+".away", d.Root); err != nil {
		t.Fatal(err)
	}
	out := c.MustAdmin("repo", "move", "team/app", "--from", "c", "--to", "d")
	if !strings.Contains(out, "moved team/app from c to d") {
		t.Fatalf("the move run again said %q", out)
	}
	if got := c.Rev("d", "team/app", "refs/heads/main"); got != acked || onDisk(c, "c", "team/app") {
		t.Fatalf("after the resumed move d shows %q (want %s), c's copy on disk: %v", got, acked, onDisk(c, "c", "team/app"))
	}
}

// A clone served from the old holder's copy as the move removes it still
// finishes: the copy is renamed aside at once and deleted only when the
// git serving from it is done.
func TestRepoMoveLetsAReadInFlightFinish(t *testing.T) {
	c, _, acked := movedCluster(t)
	up := exec.Command("git", "upload-pack", copyDir(c, "c", "team/app"))
	up.Env = meshtest.GitEnv(c.Dir)
	stdin, err := up.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer up.Process.Kill()
	r := bufio.NewReader(stdout)
	for { // the ref advertisement, up to its flush
		var n int
		if _, err := fmt.Fscanf(r, "%04x", &n); err != nil {
			t.Fatalf("read the advertisement: %v", err)
		}
		if n == 0 {
			break
		}
		if _, err := io.ReadFull(r, make([]byte, n-4)); err != nil {
			t.Fatal(err)
		}
	}
	moved := start(func() meshtest.Result { return c.Admin("repo", "move", "team/app", "--from", "c", "--to", "d") })
	waitFor(t, "c's copy to be renamed aside", func() bool { return !onDisk(c, "c", "team/app") })
	want := "want " + acked + "\n"
	fmt.Fprintf(stdin, "%04x%s00000009done\n", len(want)+4, want)
	stdin.Close()
	pack, err := io.ReadAll(r)
	if err != nil || up.Wait() != nil || !bytes.Contains(pack, []byte("PACK")) {
		t.Fatalf("the read in flight as c's copy was removed failed: %v, %d bytes", err, len(pack))
	}
	if res := outcome(t, "the move", moved); res.Code != 0 {
		t.Fatalf("move: exit %d, %s%s", res.Code, res.Stdout, res.Stderr)
	}
	if _, err := os.Stat(copyDir(c, "c", "team/app") + ".gitmesh-gone"); !os.IsNotExist(err) {
		t.Fatalf("c's copy set aside is still on its disk after the read ended: %v", err)
	}
}

// A push that reached the old holder and waited for the write lock while
// the move took it away is refused (nothing changed: the old copy may not
// count in the quorum), and the same push again is passed on to a holder.
func TestPushWaitingOnTheOldHolderDuringAMoveIsRefused(t *testing.T) {
	c, work, _ := movedCluster(t)
	rid, cid := ids(t, c, "team/app", "c")
	c.Devices["c"].MustGit("alice", "", "ls-remote", meshtest.URL("team/app")) // c shows what it holds
	held := takeLock(t, c, lock.Read(rid, cid))                                // the mover waits with the write lock held
	moved := start(func() meshtest.Result { return c.Admin("repo", "move", "team/app", "--from", "c", "--to", "d") })
	waitForLockWaiter(t, c, held.key, "the mover", moved)
	next := c.Commit(work, "README", "pushed to c during the move\n")
	pushed := start(func() meshtest.Result {
		return c.Devices["c"].Git("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	})
	waitForLockWaiter(t, c, lock.Write(rid), "the push on c", pushed)
	held.release(t)
	if r := outcome(t, "the move", moved); r.Code != 0 {
		t.Fatalf("move: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := outcome(t, "the push on c", pushed)
	if r.Code == 0 || !strings.Contains(r.Stderr, "no longer holds the repository (its copies moved meanwhile)") {
		t.Fatalf("push on c as it was moved away: exit %d, %s", r.Code, r.Stderr)
	}
	var rows int
	c.DB().QueryRow(`SELECT count(*) FROM working_copy_versions v JOIN devices d ON d.id = v.device_id WHERE d.name = 'c'`).Scan(&rows)
	if rows != 0 || onDisk(c, "c", "team/app") {
		t.Fatalf("after the refused push c has %d recorded copies, a copy on disk: %v", rows, onDisk(c, "c", "team/app"))
	}
	c.Devices["c"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main") // passed on
	for _, dev := range []string{"a", "b", "d"} {
		if got := c.Devices[dev].MustGit("alice", "", "ls-remote", meshtest.URL("team/app"), "refs/heads/main"); !strings.HasPrefix(got, next) {
			t.Errorf("ls-remote on %s: %q, want %s", dev, got, next)
		}
	}
}

// A read that reached the old holder and waited for its read lock while
// the move took the copy away is passed on to a holder: the user notices
// nothing.
func TestReadWaitingOnTheOldHolderDuringAMoveIsPassedOn(t *testing.T) {
	c, work, _ := movedCluster(t)
	c.WaitConverged("team/app")
	// c misses a push (its disk away): its next read catches up, under its
	// read lock.
	cdev := c.Devices["c"]
	if err := os.Rename(cdev.Root, cdev.Root+".away"); err != nil {
		t.Fatal(err)
	}
	acked := c.Commit(work, "README", "c missed this\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	meshtest.WaitDetached(t) // the push's converge gave up on c
	if err := os.Rename(cdev.Root+".away", cdev.Root); err != nil {
		t.Fatal(err)
	}
	rid, cid := ids(t, c, "team/app", "c")
	held := takeLock(t, c, lock.Read(rid, cid))
	db := c.DB()
	waiting := func(who string) func() bool {
		return func() bool {
			for _, app := range lockWaiters(t, db, held.key) {
				if strings.Contains(app, who) {
					return true
				}
			}
			return false
		}
	}
	moved := start(func() meshtest.Result { return c.Admin("repo", "move", "team/app", "--from", "c", "--to", "d") })
	waitFor(t, "the mover to wait for c's read lock", waiting("move"))
	read := start(func() meshtest.Result {
		return cdev.Git("alice", "", "ls-remote", meshtest.URL("team/app"), "refs/heads/main")
	})
	waitFor(t, "the read on c to wait for c's read lock", waiting("fetch"))
	held.release(t)
	if r := outcome(t, "the move", moved); r.Code != 0 {
		t.Fatalf("move: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := outcome(t, "the read on c", read); r.Code != 0 || !strings.HasPrefix(r.Stdout, acked) {
		t.Fatalf("read on c as it was moved away: exit %d, %q %s", r.Code, r.Stdout, r.Stderr)
	}
	var rows int
	db.QueryRow(`SELECT count(*) FROM working_copy_versions v JOIN devices d ON d.id = v.device_id WHERE d.name = 'c'`).Scan(&rows)
	if rows != 0 || onDisk(c, "c", "team/app") {
		t.Fatalf("after the read c has %d recorded copies, a copy on disk: %v", rows, onDisk(c, "c", "team/app"))
	}
}

// check warns of a move left in progress by a killed mover, and of copies
// a device that was away has still to remove, each with the command that
// ends it; once that ran, check is OK again.
func TestCheckNamesStuckMovesAndDiskTasks(t *testing.T) {
	c, _, _ := movedCluster(t)
	rid, did := ids(t, c, "team/app", "d")
	held := takeLock(t, c, lock.Read(rid, did))
	killMoverAt(t, c, held.key, "repo", "move", "team/app", "--from", "c", "--to", "d")
	held.release(t)
	// b's copies cannot be reached while team/app is deleted.
	db := c.DB()
	if _, err := db.Exec(`UPDATE devices SET url = '/nonexistent/b' WHERE name = 'b'`); err != nil {
		t.Fatal(err)
	}
	c.CreateRepo("a", "team/gone", "alice")
	c.MustAdmin("repo", "delete", "team/gone", "--yes")
	time.Sleep(1100 * time.Millisecond) // older than --lag-warn 1s
	r := c.Admin("check", "--no-probe", "--lag-warn", "1s")
	for _, want := range []string{
		"team/app: a move of a copy from c to d has been in progress since ",
		"run 'gitmesh repo move team/app --from c --to d' again to finish it",
		"device b has 1 copy to remove or rename since ",
		"it does them when 'gitmesh sync' or 'gitmesh replicate' runs there",
	} {
		if r.Code != 1 || !strings.Contains(r.Stdout, want) {
			t.Fatalf("check with a stuck move and a disk task left: exit %d, want %q in:\n%s%s", r.Code, want, r.Stdout, r.Stderr)
		}
	}
	if _, err := db.Exec(`UPDATE devices SET url = $1 WHERE name = 'b'`, c.Devices["b"].Root); err != nil {
		t.Fatal(err)
	}
	c.MustAdmin("repo", "move", "team/app", "--from", "c", "--to", "d")
	if out := c.Devices["b"].Run(nil, "sync"); out.Code != 0 {
		t.Fatalf("sync on b: exit %d %s", out.Code, out.Stderr)
	}
	if r := c.Admin("check", "--no-probe", "--lag-warn", "1s"); r.Code != 0 {
		t.Fatalf("check after the move and b's sync: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(c.Devices["b"].Root, "team/gone.git")); err == nil {
		t.Fatal("b kept the deleted repository's copy after its sync")
	}
}
