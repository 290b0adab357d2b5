package version

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lib/pq"

	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/lock"
	"gitmesh/proc"
)

// DiskTask is work only one device can do on its own disk: remove a copy
// it no longer holds, or rename one whose repository was renamed.
type DiskTask struct {
	ID      int64
	Action  string // "remove" or "rename"
	Name    string
	NewName string
}

// AddDiskTask asks device to remove (newName "") or rename its copy of
// name, in the caller's transaction: the task is written with the change
// that makes it due, so no kill between them loses it.
func AddDiskTask(ctx context.Context, q execer, deviceID int32, name, newName string) error {
	action, nn := "remove", sql.NullString{}
	if newName != "" {
		action, nn = "rename", sql.NullString{String: newName, Valid: true}
	}
	_, err := q.ExecContext(ctx, `INSERT INTO disk_tasks (device_id, action, name, new_name) VALUES ($1, $2, $3, $4)`,
		deviceID, action, name, nn)
	return err
}

// Tidy does this device's disk tasks, oldest first, each under this
// device's read lock on the repository when it still exists (a catch-up
// or a move back there waits for it). A task is deleted once done; one
// that fails stays for the next Tidy, and so does every later task on a
// name it touches (they depend on it), while the others go on: one copy
// that cannot be removed blocks no other. It returns how many were done,
// and a *StuckError when any was left.
func (n *Node) Tidy(ctx context.Context) (int, error) {
	tasks, err := n.diskTasks(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	var stuck *StuckError
	for len(tasks) > 0 {
		var chain []DiskTask
		chain, tasks = nextChain(tasks)
		if stuck != nil && (stuck.touches(chain) || ctx.Err() != nil) {
			stuck.add(chain)
			continue
		}
		if err := n.tidyOne(ctx, chain); err != nil {
			n.Log.Warn().Err(err).Str("repo", chain[0].Name).Str("action", chain[0].Action).Msg("disk task")
			if stuck == nil {
				stuck = &StuckError{Err: err, Names: map[string]bool{}}
			}
			stuck.add(chain)
			continue
		}
		done += len(chain)
	}
	if stuck != nil {
		return done, stuck
	}
	return done, nil
}

// TidyFor is Tidy for a request about repo: tasks left on other names
// are logged by Tidy and are no error here; repo's own, or a failure to
// read the tasks at all, are.
func (n *Node) TidyFor(ctx context.Context, repo string) error {
	_, err := n.Tidy(ctx)
	var stuck *StuckError
	if errors.As(err, &stuck) && !stuck.Names[repo] {
		return nil
	}
	return err
}

// StuckError is a Tidy that left tasks undone: the first failure, and
// every name the tasks left undone touch.
type StuckError struct {
	Err   error
	Names map[string]bool
}

func (e *StuckError) Error() string { return e.Err.Error() }
func (e *StuckError) Unwrap() error { return e.Err }

func (e *StuckError) add(chain []DiskTask) {
	for _, t := range chain {
		e.Names[t.Name] = true
		if t.NewName != "" {
			e.Names[t.NewName] = true
		}
	}
}

func (e *StuckError) touches(chain []DiskTask) bool {
	for _, t := range chain {
		if e.Names[t.Name] || t.NewName != "" && e.Names[t.NewName] {
			return true
		}
	}
	return false
}

// nextChain takes the oldest task and, when it is a rename, every later
// rename of the same copy (A -> B, then B -> C): one rename, A -> C, does
// them all, so the copy never passes through a name it no longer has, and
// a rename back (A -> B -> A) leaves it where it is.
func nextChain(tasks []DiskTask) (chain, rest []DiskTask) {
	chain = []DiskTask{tasks[0]}
	at, follow := tasks[0].NewName, tasks[0].Action == "rename"
	for _, u := range tasks[1:] {
		if follow && u.Name == at {
			if u.Action != "rename" {
				follow = false // removed where it is then: a task of its own
			} else {
				chain = append(chain, u)
				at = u.NewName
				continue
			}
		}
		rest = append(rest, u)
	}
	return chain, rest
}

func (n *Node) diskTasks(ctx context.Context) ([]DiskTask, error) {
	ctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	rows, err := n.DB.QueryContext(ctx, `SELECT t.id, t.action, t.name, COALESCE(t.new_name, '')
		FROM disk_tasks t JOIN devices d ON d.id = t.device_id WHERE d.name = $1 ORDER BY t.id`, n.Device)
	if err != nil {
		return nil, fmt.Errorf("read disk tasks: %w", err)
	}
	defer rows.Close()
	var out []DiskTask
	for rows.Next() {
		var t DiskTask
		if err := rows.Scan(&t.ID, &t.Action, &t.Name, &t.NewName); err != nil {
			return nil, fmt.Errorf("read disk tasks: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// tidyOne does one task (a chain of renames as one) under the read lock
// of the repository the task's copy belongs to (by its current name), if
// it still exists.
func (n *Node) tidyOne(ctx context.Context, chain []DiskTask) error {
	t := chain[0]
	t.NewName = chain[len(chain)-1].NewName
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	current := t.Name
	if t.Action == "rename" {
		current = t.NewName
	}
	lctx, cancel := db.Bound(ctx, n.LockTimeout)
	st, err := load(lctx, conn, current, "", n.Device)
	cancel()
	switch {
	case errors.Is(err, ErrNotFound): // deleted: nobody else uses the copy
	case err != nil:
		return err
	default:
		key := lock.Read(st.RepoID, st.SelfID)
		if err := lock.Acquire(ctx, conn, key, n.LockTimeout, n.waiting(current, key)); err != nil {
			return err
		}
		defer n.unlock(conn, current, key)
		if st, err = n.reload(ctx, conn, current); err != nil {
			return err
		}
	}
	if err := n.doTask(ctx, t, st); err != nil {
		return err
	}
	return n.doneTasks(ctx, conn, chain)
}

// doneTasks deletes tasks done.
func (n *Node) doneTasks(ctx context.Context, q execer, tasks []DiskTask) error {
	ids := make([]int64, len(tasks))
	for i, t := range tasks {
		ids[i] = t.ID
	}
	bctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	if _, err := q.ExecContext(bctx, `DELETE FROM disk_tasks WHERE id = ANY($1)`, pq.Array(ids)); err != nil {
		return fmt.Errorf("record disk tasks done: %w", err)
	}
	return nil
}

// doTask changes the disk. A copy the device holds again (moved back) is
// kept; a rename whose target exists already (a copy made meanwhile under
// the new name) leaves the old one to be removed.
func (n *Node) doTask(ctx context.Context, t DiskTask, st State) error {
	old, err := gitexec.ConfinedRepoDir(n.RepoRoot, t.Name)
	if err != nil {
		return err
	}
	switch {
	case t.Action == "remove" && st.RepoID != 0 && st.Holds() && st.Repo == t.Name:
		return nil // held again: the copy is in use
	case t.Action == "remove":
		return RemoveCopy(ctx, n.RepoRoot, old)
	}
	if t.NewName == t.Name {
		return nil // renamed away and back: the copy is where it was
	}
	dst, err := gitexec.ConfinedRepoDir(n.RepoRoot, t.NewName)
	if err != nil {
		return err
	}
	if !gitexec.Exists(old) {
		return nil
	}
	if gitexec.Exists(dst) {
		return RemoveCopy(ctx, n.RepoRoot, old)
	}
	if err := gitexec.MkdirUnder(n.RepoRoot, filepath.Dir(dst)); err != nil {
		return err
	}
	return os.Rename(old, dst)
}

// RemoveCopy deletes the copy at dir: first renamed aside (a git already
// serving from it keeps its working directory), then removed once no
// process of this device works in it any more (a clone served from the
// copy as it was moved away finishes), waiting at most GoneWait (less
// when ctx ends first: a tidy of many copies stays in its caller's bound). A copy
// still in use then stays aside and the error says so: the task stays,
// and the next Tidy removes it. A missing copy is no error; a missing
// root is (an unmounted disk).
func RemoveCopy(ctx context.Context, root, dir string) error {
	if err := gitexec.CheckRoot(root); err != nil {
		return err
	}
	gone := dir + ".gitmesh-gone"
	if _, err := os.Lstat(gone); err == nil {
		if err := removeUnused(ctx, gone, 0); err != nil {
			return err
		}
	}
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return removeUnused(ctx, gone, GoneWait)
}

// GoneWait bounds how long RemoveCopy waits for the gits still serving a
// copy it renamed aside.
var GoneWait = 30 * time.Second

// removeUnused removes dir once no process works in it, polling for at
// most wait, and no longer than ctx.
func removeUnused(ctx context.Context, dir string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		pids, err := proc.Using(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if len(pids) == 0 {
			return os.RemoveAll(dir)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the removed copy %s is still in use by process %d; it is removed at the next tidy", dir, pids[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TidyDevice asks device h to do its disk tasks now: a device whose
// copies are on a path here directly (as that device), an ssh:// device
// by a `gitmesh-sync` request for repo (any name: the device does its
// tasks before it looks the repository up). A device that cannot be
// reached does them on its return.
func (n *Node) TidyDevice(ctx context.Context, h Device, repo string) error {
	if strings.Contains(h.URL, "://") {
		return n.Git.RequestSync(ctx, PeerURL(h.URL, repo))
	}
	peer := *n
	peer.Device, peer.RepoRoot = h.Name, h.URL
	return peer.TidyFor(ctx, repo)
}

// RenamePending does the renames still due on this device (a repository
// renamed while it was away) that end in repo, oldest first, so that its
// copy is moved into place rather than built anew: a read, a catch-up or
// a stage that finds no copy under repo's name calls it first. The
// caller holds this device's read lock on repo; each rename done is
// crossed off.
func (n *Node) RenamePending(ctx context.Context, repo string) error {
	tasks, err := n.diskTasks(ctx)
	if err != nil {
		return err
	}
	// The chain that ends in repo: ... -> x, x -> repo.
	var chain []DiskTask
	target := repo
	for i := len(tasks) - 1; i >= 0; i-- {
		if t := tasks[i]; t.Action == "rename" && t.NewName == target {
			chain = append([]DiskTask{t}, chain...)
			target = t.Name
		}
	}
	if len(chain) == 0 {
		return nil
	}
	// One rename from where the copy is to repo does the whole chain.
	t := DiskTask{Action: "rename", Name: chain[0].Name, NewName: repo}
	if err := n.doTask(ctx, t, State{}); err != nil {
		return fmt.Errorf("rename the copy of %s to %s: %w", t.Name, repo, err)
	}
	n.Log.Info().Str("repo", repo).Str("from", t.Name).Msg("renamed this device's copy (a rename done while it was away)")
	return n.doneTasks(ctx, n.DB, chain)
}

// RenameIfDue does, for device dev (id devID, copies under root) whose
// copy of repo is missing, the renames due on it that end in repo, if
// its read lock on the repository is free now: a holder back from an
// outage may be fetched from before it has done them. Best effort, and
// never a wait: a fetch from it fails as before when this cannot be done.
func (n *Node) RenameIfDue(ctx context.Context, repoID, devID int32, dev, root, repo string) {
	if gitexec.Exists(PeerURL(root, repo)) {
		return
	}
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	key := lock.Read(repoID, devID)
	bctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	if ok, err := lock.Try(bctx, conn, key); !ok || err != nil {
		return
	}
	defer n.unlock(conn, repo, key)
	as := *n
	as.Device, as.RepoRoot = dev, root
	if err := as.RenamePending(bctx, repo); err != nil {
		n.Log.Warn().Err(err).Str("repo", repo).Str("device", dev).Msg("rename a copy left under its old name")
	}
}
