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
// that fails stays for the next Tidy. It returns how many were done.
func (n *Node) Tidy(ctx context.Context) (int, error) {
	tasks, err := n.diskTasks(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, t := range tasks {
		if err := n.tidyOne(ctx, t); err != nil {
			n.Log.Warn().Err(err).Str("repo", t.Name).Str("action", t.Action).Msg("disk task")
			return done, err
		}
		done++
	}
	return done, nil
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

// tidyOne does one task under the read lock of the repository the task's
// copy belongs to (by its current name), if it still exists.
func (n *Node) tidyOne(ctx context.Context, t DiskTask) error {
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	current := t.Name
	if t.Action == "rename" {
		current = t.NewName
	}
	st, err := load(ctx, conn, current, "", n.Device)
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
	if err := n.doTask(t, st); err != nil {
		return err
	}
	bctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	_, err = conn.ExecContext(bctx, `DELETE FROM disk_tasks WHERE id = $1`, t.ID)
	return err
}

// doTask changes the disk. A copy the device holds again (moved back) is
// kept; a rename whose target exists already (a copy made meanwhile under
// the new name) leaves the old one to be removed.
func (n *Node) doTask(t DiskTask, st State) error {
	old, err := gitexec.ConfinedRepoDir(n.RepoRoot, t.Name)
	if err != nil {
		return err
	}
	switch {
	case t.Action == "remove" && st.RepoID != 0 && st.Holds() && st.Repo == t.Name:
		return nil // held again: the copy is in use
	case t.Action == "remove":
		return RemoveCopy(n.RepoRoot, old)
	}
	dst, err := gitexec.ConfinedRepoDir(n.RepoRoot, t.NewName)
	if err != nil {
		return err
	}
	if !gitexec.Exists(old) {
		return nil
	}
	if gitexec.Exists(dst) {
		return RemoveCopy(n.RepoRoot, old)
	}
	if err := gitexec.MkdirUnder(n.RepoRoot, filepath.Dir(dst)); err != nil {
		return err
	}
	return os.Rename(old, dst)
}

// RemoveCopy deletes the copy at dir: first renamed aside (a git already
// serving from it keeps its working directory), then removed once no
// process of this device works in it any more (a clone served from the
// copy as it was moved away finishes), waiting at most GoneWait. A copy
// still in use then stays aside and the error says so: the task stays,
// and the next Tidy removes it. A missing copy is no error; a missing
// root is (an unmounted disk).
func RemoveCopy(root, dir string) error {
	if err := gitexec.CheckRoot(root); err != nil {
		return err
	}
	gone := dir + ".gitmesh-gone"
	if _, err := os.Lstat(gone); err == nil {
		if err := removeUnused(gone, 0); err != nil {
			return err
		}
	}
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return removeUnused(gone, GoneWait)
}

// GoneWait bounds how long RemoveCopy waits for the gits still serving a
// copy it renamed aside.
var GoneWait = 30 * time.Second

// removeUnused removes dir once no process works in it, polling for at
// most wait.
func removeUnused(dir string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		pids, err := proc.Using(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if len(pids) == 0 {
			return os.RemoveAll(dir)
		}
		if time.Now().After(deadline) {
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
	_, err := peer.Tidy(ctx)
	return err
}
