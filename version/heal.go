package version

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/lock"
	"gitmesh/proc"
)

// A write mark left behind belongs to a push that was never acknowledged:
// the mark is cleared in the transaction that records a push. Once its
// writer is certainly gone, the device that wrote repairs the repository
// itself, under the write lock, and records what it did (sync_log, kind
// 'heal'):
//   - its copy shows its recorded version: the mark is cleared;
//   - another device holds that version: this copy's record is dropped
//     with the mark and the copy caught up from that device;
//   - otherwise the repository stays frozen for an administrator's thaw.
//
// Certainly gone means: its PostgreSQL session is gone, its pid is gone
// on this device, and nobody else holds the write lock, without which a
// writer can never record (a late writer also needs its token, which the
// repair clears).

// Heal repairs repo if this device holds a write mark whose writer is
// gone; it never waits for the write lock (a live push holds it). It
// reports whether the repository is writable afterwards.
func (n *Node) Heal(ctx context.Context, repo string) (bool, error) {
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	st, err := n.reload(ctx, conn, repo)
	if err != nil {
		return false, err
	}
	if c, frozen := st.Frozen(); !frozen || c.DeviceID != st.SelfID {
		return !frozen, nil
	}
	wkey := lock.Write(st.RepoID)
	if ok, err := lock.Try(ctx, conn, wkey); !ok || err != nil {
		n.Log.Debug().Str("op", "heal").Str("repo", repo).AnErr("error", err).Msg("not repaired: the write lock is held (a push in progress?)")
		return false, err
	}
	defer n.unlock(conn, repo, wkey)
	if st, err = n.reload(ctx, conn, repo); err != nil {
		return false, err
	}
	_, err = n.healLocked(ctx, conn, st)
	return err == nil, err
}

// healLocked repairs a mark this device left, if it can be proven safe,
// and returns the state after. The caller holds the write lock. An error
// is a FrozenError saying why the repository stays frozen.
func (n *Node) healLocked(ctx context.Context, conn *sql.Conn, st State) (State, error) {
	c, frozen := st.Frozen()
	if !frozen {
		return st, nil
	}
	if c.DeviceID != st.SelfID {
		return st, &FrozenError{Repo: st.Repo, Copy: c, Why: lastRefusal(ctx, conn, st, c)}
	}
	if why := n.writerAlive(ctx, conn, c.Writer); why != "" {
		return st, &FrozenError{Repo: st.Repo, Copy: c, Why: why}
	}
	rkey := lock.Read(st.RepoID, st.SelfID)
	if err := lock.Acquire(ctx, conn, rkey, n.LockTimeout, n.waiting(st.Repo, rkey)); err != nil {
		return st, err
	}
	defer n.unlock(conn, st.Repo, rkey)
	if err := n.held(ctx, conn, lock.Write(st.RepoID)); err != nil {
		return st, err // the write lock went with a failover: a writer may run
	}
	start := time.Now()
	done, err := n.repair(ctx, conn, st, c, start)
	after, loadErr := n.reload(ctx, conn, st.Repo)
	n.logHeal(ctx, conn, st, c, done, time.Since(start), err)
	var stall *db.StallError
	if errors.As(err, &stall) {
		return st, err // not frozen for good: it heals once the database commits
	}
	if err != nil {
		return st, &FrozenError{Repo: st.Repo, Copy: c, Why: err.Error()}
	}
	n.Tell("%s: repaired after a push by %s that died unacknowledged: %s", st.Repo, writerName(c.Writer), done)
	return after, loadErr
}

// lastRefusal is why the writer's device last declined to repair c's
// mark, as it recorded it.
func lastRefusal(ctx context.Context, conn *sql.Conn, st State, c Copy) string {
	why, ok := lastHealRefusal(ctx, conn, st.RepoID, c)
	if !ok {
		return "device " + c.Device + " has not repaired it: it is unreachable or its writer still runs"
	}
	return "device " + c.Device + ": " + strings.TrimPrefix(why, "frozen: ")
}

// lastHealRefusal is the newest refusal recorded for c's mark.
func lastHealRefusal(ctx context.Context, conn *sql.Conn, repoID int32, c Copy) (string, bool) {
	var started time.Time
	if c.Writer != nil {
		started = c.Writer.Started
	}
	var why string
	err := conn.QueryRowContext(ctx, `SELECT result FROM sync_log
		WHERE repository_id = $1 AND device_id = $2 AND kind = 'heal' AND result LIKE 'frozen: %' AND created_at >= $3
		ORDER BY id DESC LIMIT 1`, repoID, c.DeviceID, started).Scan(&why)
	return why, err == nil
}

// writerAlive says why the writer may still be running, or "" when it is
// certainly gone.
func (n *Node) writerAlive(ctx context.Context, conn *sql.Conn, w *Writer) string {
	switch {
	case w == nil || w.PID <= 0:
		return "its writer is unknown"
	case w.Device != n.Device:
		return "its writer ran on device " + w.Device
	case proc.Alive(w.PID):
		return fmt.Sprintf("its writer (pid %d) is still running", w.PID)
	}
	if alive, err := SessionAlive(ctx, conn, w); err != nil || alive {
		return "its database session is still open"
	}
	return ""
}

// WriterSessionOpen is the one definition of "the writer of a write mark
// may still run", as a condition on the mark's write_properties (a column
// or value of that name in the query using it): the backend that set the
// mark is in pg_stat_activity under the application_name it had then. The
// pid alone is not enough: PgBouncer keeps a dead client's backend for the
// next one, and a new backend may reuse a pid. A mark without it (no
// backend pid) has a writer that is gone. status, check and metrics call
// a mark whose writer's session is not open frozen; heal repairs it once
// the writer's process is gone from its device too (writerAlive).
const WriterSessionOpen = `EXISTS (SELECT 1 FROM pg_stat_activity a
	WHERE a.pid = (write_properties->>'backend_pid')::int
	  AND a.application_name = COALESCE(NULLIF(write_properties->>'app', ''), a.application_name))`

// SessionAlive reports whether the database session that marked the
// write is still open (WriterSessionOpen): then a push is in progress,
// not dead.
func SessionAlive(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, w *Writer) (bool, error) {
	if w == nil || w.BackendPID <= 0 {
		return false, nil
	}
	props, err := json.Marshal(w)
	if err != nil {
		return false, err
	}
	var alive bool // text, not []byte: binary parameters would send jsonb's binary form
	err = q.QueryRowContext(ctx, `SELECT `+WriterSessionOpen+` FROM (SELECT $1::jsonb AS write_properties) w`, string(props)).Scan(&alive)
	return alive, err
}

// repair clears the mark when this copy shows its recorded version, else
// drops this copy's record with the mark and catches it up from a device
// that holds the version. It returns what was done and from which device.
func (n *Node) repair(ctx context.Context, conn *sql.Conn, st State, c Copy, start time.Time) (string, error) {
	dir := gitexec.RepoDir(n.RepoRoot, st.Repo)
	if n.shows(ctx, dir, c) {
		if err := n.removeStaleLocks(dir); err != nil {
			return "", err
		}
		// The dead push may have staged refs here: they go, so nothing
		// unrecorded stays reachable from a ref.
		if visible, staged, err := n.Git.ReadRefs(ctx, dir); err == nil {
			if err := n.Git.UpdateRefs(ctx, dir, gitexec.StageCommands(staged, visible), false); err != nil {
				return "", err
			}
		}
		done := fmt.Sprintf("this copy still shows version %d, so nothing was lost; writes are open again", c.Version)
		row := healRow{Result: "ok: " + done, To: sql.NullInt64{Int64: c.Version, Valid: true}, Took: time.Since(start)}
		_, err := clearMark(ctx, conn, st, c, healClearQuery, n.LockTimeout, row)
		return done, err
	}
	from, ok := otherHolder(st, c)
	if !ok {
		return "", fmt.Errorf("its copy does not show version %d and no other device holds it", c.Version)
	}
	done := fmt.Sprintf("this copy did not show version %d; it was set aside and catches up from %s on its next read; writes are open again", c.Version, from.Device)
	row := healRow{Result: "ok: " + done, From: sql.NullInt32{Int32: from.DeviceID, Valid: true}, Took: time.Since(start)}
	rowID, err := clearMark(ctx, conn, st, c, healForgetQuery, n.LockTimeout, row)
	if err != nil {
		return "", err
	}
	after, err := n.reload(ctx, conn, st.Repo)
	if err == nil {
		err = n.syncLocked(ctx, conn, after)
	}
	if err != nil {
		n.Log.Warn().Err(err).Str("repo", st.Repo).Msg("heal: catch up after dropping this copy's record")
		return done, nil
	}
	done = fmt.Sprintf("this copy did not show version %d and was rewound from %s; writes are open again", c.Version, from.Device)
	n.amendHealRow(ctx, conn, st.Repo, rowID, "ok: "+done, time.Since(start))
	return done, nil
}

// shows reports whether dir's visible refs are c's recorded version.
func (n *Node) shows(ctx context.Context, dir string, c Copy) bool {
	if c.Pending || !gitexec.Exists(dir) {
		return false
	}
	digest, err := n.Git.RefsDigest(ctx, dir)
	if err != nil {
		n.Log.Warn().Err(err).Str("op", "heal").Msg("read the copy's refs: not taken for its recorded version")
		return false
	}
	return digest == c.Digest
}

// otherHolder is another device that holds at least c's version and has
// no write of its own pending.
func otherHolder(st State, c Copy) (Copy, bool) {
	for _, o := range st.Copies {
		if o.DeviceID != c.DeviceID && !o.IsWriting && o.Version >= c.Version {
			return o, true
		}
	}
	return Copy{}, false
}

// healClearQuery clears a dead writer's mark; healForgetQuery drops the
// copy's record with it. Both match the writer's token, so a mark set or
// cleared meanwhile is never touched.
const (
	healClearQuery = `UPDATE working_copy_versions SET is_writing = false, write_properties = NULL, updated_at = now()
WHERE repository_id = $1 AND device_id = $2 AND is_writing AND COALESCE(write_properties->>'token', '') = $3`
	healForgetQuery = `DELETE FROM working_copy_versions
WHERE repository_id = $1 AND device_id = $2 AND is_writing AND COALESCE(write_properties->>'token', '') = $3`
	healRowQuery = `INSERT INTO sync_log
		(repository_id, device_id, from_device, from_version, to_version, duration_ms, result, kind)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 'heal') RETURNING id`
)

// healRow is the sync_log row (kind 'heal') of a repair.
type healRow struct {
	Result string
	From   sql.NullInt32
	To     sql.NullInt64
	Took   time.Duration
}

// clearMark runs query (healClearQuery or healForgetQuery) and writes
// row in the same transaction, so that no failover keeps the one without
// the other: a repaired freeze always has its heal row. It returns the
// row's id.
func clearMark(ctx context.Context, conn *sql.Conn, st State, c Copy, query string, bound time.Duration, row healRow) (int64, error) {
	token := ""
	if c.Writer != nil {
		token = c.Writer.Token
	}
	bctx, cancel := db.Bound(ctx, bound)
	defer cancel()
	id, err := clearMarkTx(bctx, conn, st, c, query, token, row)
	if stall := db.Stalled(bctx, "clear the write mark", bound); stall != nil {
		return 0, stall
	}
	return id, err
}

func clearMarkTx(ctx context.Context, conn *sql.Conn, st State, c Copy, query, token string, row healRow) (int64, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("clear the write mark: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, query, st.RepoID, st.SelfID, token)
	if err != nil {
		return 0, fmt.Errorf("clear the write mark: %w", err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return 0, errors.New("the write mark changed meanwhile")
	}
	var id int64
	if err := tx.QueryRowContext(ctx, healRowQuery, st.RepoID, st.SelfID, row.From, c.Version, row.To,
		row.Took.Milliseconds(), row.Result).Scan(&id); err != nil {
		return 0, fmt.Errorf("clear the write mark: sync log: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("clear the write mark: %w", err)
	}
	return id, nil
}

// amendHealRow tells a repair's row that the copy was rewound at once. A
// failure leaves the row saying it catches up on its next read, which
// is what happens then.
func (n *Node) amendHealRow(ctx context.Context, conn *sql.Conn, repo string, id int64, result string, took time.Duration) {
	ctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	_, err := conn.ExecContext(ctx, `UPDATE sync_log SET result = $2, duration_ms = $3,
		to_version = (SELECT version FROM working_copy_versions w WHERE w.repository_id = sync_log.repository_id AND w.device_id = sync_log.device_id)
		WHERE id = $1`, id, result, took.Milliseconds())
	if err != nil {
		n.Log.Warn().Err(err).Str("repo", repo).Msg("sync log")
	}
}

// logHeal logs a repair, or why there was none; a refusal also goes to
// sync_log (kind 'heal'), once per mark and reason. A repair's row was
// written with the mark's clearing.
func (n *Node) logHeal(ctx context.Context, conn *sql.Conn, st State, c Copy, done string, d time.Duration, err error) {
	result := "ok: " + done
	if err != nil {
		result = "frozen: " + err.Error()
	}
	n.Log.Info().Str("op", "heal").Str("repo", st.Repo).Str("writer", writerName(c.Writer)).
		Int64("version", c.Version).Dur("duration", d).AnErr("error", err).Msg(result)
	if err == nil {
		return
	}
	if last, ok := lastHealRefusal(ctx, conn, st.RepoID, c); ok && last == result {
		return // replicate retries every few seconds: record a refusal once
	}
	ctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	var id int64
	dbErr := conn.QueryRowContext(ctx, healRowQuery, st.RepoID, st.SelfID, nil, c.Version, nil, d.Milliseconds(), result).Scan(&id)
	if dbErr != nil {
		n.Log.Warn().Err(dbErr).Str("repo", st.Repo).Msg("sync log")
	}
}

func writerName(w *Writer) string {
	if w == nil || w.User == "" {
		return "an unknown user"
	}
	return w.User
}

// HealFrozen is what a read or push does on meeting a write mark whose
// database session is gone: the writer's device repairs it (this one
// directly; another by being asked to sync, bounded like a fetch). A live
// push's mark costs one query. It reports whether a repair was tried.
func (n *Node) HealFrozen(ctx context.Context, st State) bool {
	c, frozen := st.Frozen()
	if !frozen {
		return false
	}
	actx, cancel := db.Bound(ctx, n.LockTimeout)
	alive, err := SessionAlive(actx, n.DB, c.Writer)
	cancel()
	if err != nil || alive {
		n.Log.Debug().Str("repo", st.Repo).AnErr("error", err).Msg("a write is in progress")
		return false
	}
	if c.DeviceID == st.SelfID {
		_, err = n.Heal(ctx, st.Repo)
	} else {
		n.Tell("%s is frozen by a push on %s that did not finish; asking %s to repair it", st.Repo, c.Device, c.Device)
		err = n.SyncDevice(ctx, Device{ID: c.DeviceID, Name: c.Device, URL: c.URL}, st.Repo)
	}
	if err != nil {
		n.Log.Warn().Err(err).Str("repo", st.Repo).Str("writer_device", c.Device).Msg("heal")
	}
	return true
}

// SyncDevice brings device h's copy of repo up to date and lets it repair
// its own write mark: a device whose copies are on a path here directly
// (as that device), an ssh:// device by asking it to sync.
func (n *Node) SyncDevice(ctx context.Context, h Device, repo string) error {
	if strings.Contains(h.URL, "://") {
		return n.Git.RequestSync(ctx, PeerURL(h.URL, repo))
	}
	peer := *n
	peer.Device, peer.RepoRoot = h.Name, h.URL
	peer.Tell = func(string, ...any) {}
	return peer.Sync(ctx, repo)
}
