package admin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gitmesh/access"
	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/lock"
	"gitmesh/version"
)

// Repository lifecycle, cluster-wide: a rename or a delete changes the
// repositories row (every device answers by the new name, or "not found",
// from the next lookup on) and writes, in the same transaction, a disk
// task for each holder; each holder then renames or removes its own copy
// (asked at once by the caller, or on its return). Both hold the
// repository's write lock and every holder's read lock while the row
// changes: no push, catch-up or staging is half-way through it.

// BusyError says that a lifecycle command gave up waiting for a lock a
// push or catch-up held past lock_timeout, and that nothing changed. It
// is a lock.ErrTimeout: exit 5.
type BusyError struct {
	What   string // "rename team/app", "delete team/app"
	Waited time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("did not %s: a push or catch-up held the repository for more than %s (lock_timeout); nothing changed, try again when it is done",
		e.What, e.Waited.Round(time.Millisecond))
}

// Unwrap makes errors.Is(err, lock.ErrTimeout) hold.
func (e *BusyError) Unwrap() error { return lock.ErrTimeout }

// StaleCopyError refuses a name that some device still has an old copy
// under, waiting for its disk task (a deleted or renamed repository's):
// a new repository of that name would serve the old copy there.
type StaleCopyError struct {
	Repo    string
	Devices []string
}

func (e *StaleCopyError) Error() string {
	return fmt.Sprintf("device %s still holds an old copy named %s, to be removed or renamed on its return; run 'gitmesh sync' there, or remove the device if it is gone for good, then try again",
		strings.Join(e.Devices, ", "), e.Repo)
}

// lifecycleLocks takes repo's write lock, then every holder's read lock,
// on conn, each bounded by limit. It returns the state read under them
// and a release for every lock taken (also on error). A wait past a
// second is told (tell), with the lock's holder.
func lifecycleLocks(ctx context.Context, conn *sql.Conn, repo, what string, limit time.Duration, tell func(string, ...any)) (version.State, func(), error) {
	var held []lock.Key
	release := func() {
		for i := len(held) - 1; i >= 0; i-- {
			lock.Unlock(conn, held[i])
		}
	}
	bctx, cancel := db.Bound(ctx, limit)
	st, err := version.Load(bctx, conn, repo)
	cancel()
	if errors.Is(err, version.ErrNotFound) {
		return st, release, &UnknownRepoError{Repo: repo}
	} else if err != nil {
		return st, release, err
	}
	keys := []lock.Key{lock.Write(st.RepoID)}
	for _, h := range st.Holders {
		keys = append(keys, lock.Read(st.RepoID, h.ID))
	}
	start := time.Now()
	for _, k := range keys {
		// One bound for all of them: lock_timeout in total.
		left := limit - time.Since(start)
		notify := func(h *lock.Holder) {
			by := "a push or catch-up"
			if h != nil {
				by = fmt.Sprintf("%q", h.Application)
			}
			tell("waiting for the %s of %s, held by %s (at most lock_timeout, %s)", k.Describe(), repo, by, limit)
		}
		if err := lock.Acquire(ctx, conn, k, max(left, time.Millisecond), notify); err != nil {
			if errors.Is(err, lock.ErrTimeout) {
				err = &BusyError{What: what, Waited: time.Since(start)}
			}
			return st, release, err
		}
		held = append(held, k)
	}
	// A holder placed or a name changed while this waited: read again.
	bctx, cancel = db.Bound(ctx, limit)
	defer cancel()
	again, err := version.Load(bctx, conn, repo)
	if errors.Is(err, version.ErrNotFound) {
		return st, release, &UnknownRepoError{Repo: repo}
	} else if err != nil {
		return st, release, err
	}
	if again.RepoID != st.RepoID || !sameHolders(again.Holders, st.Holders) {
		return st, release, &BusyError{What: what, Waited: time.Since(start)}
	}
	return again, release, nil
}

func sameHolders(a, b []version.Device) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}

// staleCopies refuses name while some device has a disk task still to do
// on a copy under it: one it has yet to remove or rename away, which a new
// repository of that name would find. own, when set, is the repository
// being renamed onto name: a device whose copy under name is on its way
// to own (renames only: a rename back while the device was away) holds
// that repository's own copy, and its chain of renames ends right.
func staleCopies(ctx context.Context, q queryer, name, own string) error {
	rows, err := q.QueryContext(ctx, `SELECT d.name, t.action, t.name, COALESCE(t.new_name, '')
		FROM disk_tasks t JOIN devices d ON d.id = t.device_id
		WHERE t.device_id IN (SELECT device_id FROM disk_tasks WHERE name = $1)
		ORDER BY d.name, t.id`, name)
	if err != nil {
		return fmt.Errorf("read disk tasks: %w", err)
	}
	defer rows.Close()
	tasks := map[string][]version.DiskTask{}
	var order []string
	for rows.Next() {
		var dev string
		var t version.DiskTask
		if err := rows.Scan(&dev, &t.Action, &t.Name, &t.NewName); err != nil {
			return fmt.Errorf("read disk tasks: %w", err)
		}
		if _, ok := tasks[dev]; !ok {
			order = append(order, dev)
		}
		tasks[dev] = append(tasks[dev], t)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read disk tasks: %w", err)
	}
	var stale []string
	for _, dev := range order {
		if own == "" || !renamedInto(tasks[dev], name, own) {
			stale = append(stale, dev)
		}
	}
	if len(stale) > 0 {
		return &StaleCopyError{Repo: name, Devices: stale}
	}
	return nil
}

// renamedInto reports whether every copy under name in a device's tasks
// (oldest first) is renamed on, task after task, into own.
func renamedInto(tasks []version.DiskTask, name, own string) bool {
	for i, t := range tasks {
		if t.Name != name {
			continue
		}
		at := name
		for _, u := range tasks[i:] {
			if u.Name != at {
				continue
			}
			if u.Action != "rename" {
				return false
			}
			at = u.NewName
		}
		if at != own {
			return false
		}
	}
	return true
}

// RenameRepo renames repository old to new cluster-wide and returns its
// holders, each of which has a disk task to rename its copy (the caller
// asks them to do it now; one that is down does it on its return). The
// repository keeps its id, so its versions, logs and locks stay. Grants
// on exactly old follow it (a subject with grants on both keeps the
// higher level); glob grants stay as they are. It refuses new when it is
// a bad name (exit 2) or already a repository, old when unknown (exit
// 3), and waits for the locks at most limit (exit 5).
func RenameRepo(ctx context.Context, d *sql.DB, limit time.Duration, old, new string, tell func(string, ...any)) (*Renamed, error) {
	if err := gitexec.ValidateName(new); err != nil {
		return nil, err
	}
	if old == new {
		return nil, fmt.Errorf("%w rename: repository %s already has that name", access.ErrInvalid, old)
	}
	cctx, cancel := db.Bound(ctx, limit)
	defer cancel()
	if err := CheckRepo(cctx, d, old); err != nil {
		return nil, err
	}
	if err := CheckRepo(cctx, d, new); err == nil {
		return nil, fmt.Errorf("repository %s %w; choose another name, or delete it first", new, access.ErrExists)
	} else if !errors.Is(err, version.ErrNotFound) {
		return nil, err
	}
	regex, err := access.PatternRegex(new)
	if err != nil {
		return nil, err
	}
	var done *Renamed
	err = underLocks(ctx, d, old, "rename", limit, tell, func(bctx context.Context, tx *sql.Tx, st version.State) error {
		var err error
		done, err = renameLocked(bctx, tx, st, old, new, regex)
		return err
	})
	return done, err
}

// renameLocked is the rename's transaction: the row, the grants on the
// exact name and each holder's disk task.
func renameLocked(bctx context.Context, tx *sql.Tx, st version.State, old, new, regex string) (*Renamed, error) {
	var moving bool
	if err := tx.QueryRowContext(bctx, `SELECT EXISTS (SELECT 1 FROM moves WHERE repository_id = $1)`, st.RepoID).Scan(&moving); err != nil {
		return nil, err
	}
	if moving {
		return nil, fmt.Errorf("repository %s has a copy being moved ('gitmesh status' shows it); finish the move (run it again), then rename", old)
	}
	if err := staleCopies(bctx, tx, new, old); err != nil {
		return nil, err
	}
	_, err := tx.ExecContext(bctx, `UPDATE repositories SET name = $2 WHERE id = $1`, st.RepoID, new)
	if access.IsUniqueViolation(err) {
		return nil, fmt.Errorf("repository %s %w; choose another name, or delete it first", new, access.ErrExists)
	} else if err != nil {
		return nil, fmt.Errorf("rename %s: %w", old, err)
	}
	for _, q := range []string{
		// A subject with grants on both names keeps the higher level.
		`UPDATE grants n SET level = o.level FROM grants o
			WHERE o.pattern = $1 AND n.pattern = $2 AND o.level > n.level
			  AND o.user_id IS NOT DISTINCT FROM n.user_id AND o.group_id IS NOT DISTINCT FROM n.group_id`,
		`DELETE FROM grants o USING grants n WHERE o.pattern = $1 AND n.pattern = $2
			  AND o.user_id IS NOT DISTINCT FROM n.user_id AND o.group_id IS NOT DISTINCT FROM n.group_id`,
	} {
		if _, err := tx.ExecContext(bctx, q, old, new); err != nil {
			return nil, fmt.Errorf("move the grants on %s: %w", old, err)
		}
	}
	if _, err := tx.ExecContext(bctx, `UPDATE grants SET pattern = $2, regex = $3 WHERE pattern = $1`, old, new, regex); err != nil {
		return nil, fmt.Errorf("move the grants on %s: %w", old, err)
	}
	for _, h := range st.Holders {
		if err := version.AddDiskTask(bctx, tx, h.ID, old, new); err != nil {
			return nil, fmt.Errorf("ask %s to rename its copy: %w", h.Name, err)
		}
	}
	globs, err := db.Strings(bctx, tx, `SELECT DISTINCT pattern FROM grants
		WHERE strpos(pattern, '*') > 0 AND ($1 ~ regex) <> ($2 ~ regex) ORDER BY pattern`, old, new)
	if err != nil {
		return nil, fmt.Errorf("read the grants by pattern: %w", err)
	}
	return &Renamed{Holders: st.Holders, Globs: globs}, nil
}

// Renamed is what a rename did: the holders asked to rename their copies,
// and the glob grants that match the old name or the new one but not both
// (left as they are: the operator decides).
type Renamed struct {
	Holders []version.Device
	Globs   []string
}

// DeleteRepo deletes repository name cluster-wide and returns the devices
// with a copy (its holders), each of which has a disk task to remove its copy (the caller
// asks them to do it now; one that is down does it on its return). Its
// versions, holders, moves and logs go with the row, and so do the
// grants on exactly its name; glob grants stay. It waits for the locks
// (a push in flight) at most limit, and then changes nothing (exit 5).
func DeleteRepo(ctx context.Context, d *sql.DB, limit time.Duration, name string, tell func(string, ...any)) ([]version.Device, error) {
	cctx, cancel := db.Bound(ctx, limit)
	defer cancel()
	if err := CheckRepo(cctx, d, name); err != nil {
		return nil, err
	}
	var devs []version.Device
	err := underLocks(ctx, d, name, "delete", limit, tell, func(bctx context.Context, tx *sql.Tx, st version.State) error {
		var err error
		devs, err = deleteLocked(bctx, tx, st, name)
		return err
	})
	return devs, err
}

// deleteLocked is the delete's transaction: a remove task for every
// device with a copy, the grants on the exact name, the row.
func deleteLocked(bctx context.Context, tx *sql.Tx, st version.State, name string) ([]version.Device, error) {
	// The holders, and any other device with a copy: a recorded one (a
	// move's old holder whose removal is not yet written), or one a move
	// in progress is making.
	rows, err := tx.QueryContext(bctx, `SELECT id, name, url FROM devices WHERE id IN (
		SELECT device_id FROM holders WHERE repository_id = $1
		UNION SELECT device_id FROM working_copy_versions WHERE repository_id = $1
		UNION SELECT to_device FROM moves WHERE repository_id = $1) ORDER BY name`, st.RepoID)
	if err != nil {
		return nil, fmt.Errorf("read the copies of %s: %w", name, err)
	}
	var devs []version.Device
	for rows.Next() {
		var dev version.Device
		if err := rows.Scan(&dev.ID, &dev.Name, &dev.URL); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the copies of %s: %w", name, err)
		}
		devs = append(devs, dev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the copies of %s: %w", name, err)
	}
	for _, dev := range devs {
		if err := version.AddDiskTask(bctx, tx, dev.ID, name, ""); err != nil {
			return nil, fmt.Errorf("ask %s to remove its copy: %w", dev.Name, err)
		}
	}
	if _, err := tx.ExecContext(bctx, `DELETE FROM grants WHERE pattern = $1`, name); err != nil {
		return nil, fmt.Errorf("delete the grants on %s: %w", name, err)
	}
	if _, err := tx.ExecContext(bctx, `DELETE FROM repositories WHERE id = $1`, st.RepoID); err != nil {
		return nil, fmt.Errorf("delete %s: %w", name, err)
	}
	return devs, nil
}

// underLocks runs change in one transaction, committed, while this
// process holds repo's write lock and every holder's read lock
// (lifecycleLocks); each step is bounded by limit. what names the change
// (rename, delete) in the lock waits and errors.
func underLocks(ctx context.Context, d *sql.DB, repo, what string, limit time.Duration, tell func(string, ...any),
	change func(context.Context, *sql.Tx, version.State) error) error {
	cctx, cancel := db.Bound(ctx, limit)
	defer cancel()
	conn, err := d.Conn(cctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	st, release, err := lifecycleLocks(ctx, conn, repo, what+" "+repo, limit, tell)
	defer release()
	if err != nil {
		return err
	}
	bctx, cancel := db.Bound(ctx, limit)
	defer cancel()
	tx, err := conn.BeginTx(bctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := change(bctx, tx, st); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s %s: %w", what, repo, err)
	}
	return nil
}

// SetDeviceURL changes where peers reach device name (validated as by
// AddDevice): the next fetch, staging or sync request uses it.
func SetDeviceURL(ctx context.Context, d *sql.DB, name, url string) error {
	if err := validateURL(url); err != nil {
		return err
	}
	res, err := d.ExecContext(ctx, `UPDATE devices SET url = $2 WHERE name = $1`, name, url)
	if err != nil {
		return fmt.Errorf("set the URL of device %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return &UnknownDeviceError{Device: name}
	}
	return nil
}
