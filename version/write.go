package version

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/hook"
	"gitmesh/lock"
)

// FrozenError refuses a push to a repository whose last write never finished.
type FrozenError struct {
	Repo string
	Copy Copy
}

func (e *FrozenError) Error() string {
	w := e.Copy.Writer
	who := "an unknown writer"
	if w != nil {
		who = fmt.Sprintf("a push by %s started %s", w.User, w.Started.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	return fmt.Sprintf("%s is frozen for writes: %s on device %s did not finish; reads still work; "+
		"an administrator must run 'gitmesh thaw %s --promote %s' or '--demote %s'",
		e.Repo, who, e.Copy.Device, e.Repo, e.Copy.Device, e.Copy.Device)
}

// ErrLostWrite means the write could not be recorded: the client got no
// acknowledgement and the repository stays frozen until an administrator
// thaws it.
var ErrLostWrite = errors.New("the push could not be recorded")

// Receiver starts git-receive-pack with the extra environment and `git -c`
// settings that route its reference-transaction hook to this process.
type Receiver func(env, gitConfig []string) (*gitexec.Service, error)

// Push runs one write: take the write lock, refuse if frozen, catch up, mark
// the write pending, run receive-pack and record every committed ref
// transaction before git may acknowledge it.
func (n *Node) Push(ctx context.Context, st State, user string, start Receiver) error {
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	w := &write{n: n, conn: conn, st: st, user: user}
	defer func() { w.conn.Close() }()
	wkey := lock.Write(st.RepoID)
	if err := lock.Acquire(ctx, conn, wkey, n.LockTimeout, n.waiting(st.Repo, wkey)); err != nil {
		return err
	}
	defer func() { lock.Release(context.Background(), w.conn, wkey) }()
	if w.st, err = n.reload(ctx, conn, st.Repo); err != nil {
		return err
	}
	if c, frozen := w.st.Frozen(); frozen {
		return &FrozenError{Repo: st.Repo, Copy: c}
	}
	if err := n.catchUpLocked(ctx, conn, w.st); err != nil {
		return err
	}
	dir := gitexec.RepoDir(n.RepoRoot, st.Repo)
	if err := n.removeStaleLocks(dir); err != nil {
		return err
	}
	if w.digest, err = n.Git.RefsDigest(ctx, dir); err != nil {
		return fmt.Errorf("read refs of %s: %w", st.Repo, err)
	}
	w.version = w.st.Highest() // this copy's, after catching up under the write lock
	if w.token, err = n.markWriting(ctx, conn, w.st, user); err != nil {
		return err
	}
	return w.run(ctx, start)
}

// write is one push in progress; its hook handler runs while receive-pack
// does, and uses conn alone.
type write struct {
	n       *Node
	conn    *sql.Conn
	st      State
	user    string
	token   string
	digest  string // of the refs as last recorded (or as they were at the mark)
	version int64  // this device's version as last recorded
	svc     *gitexec.Service
	failed  error // set when a committed transaction could not be recorded
}

func (w *write) run(ctx context.Context, start Receiver) error {
	srv, err := hook.Listen(w.n.Bin)
	if err != nil {
		w.finish(ctx)
		return err
	}
	defer srv.Close()
	// No auto-gc after the report: its ref transactions would reach the hook
	// after the client was answered, and a gc racing the next writer of this
	// copy is unsafe. `gitmesh gc` runs it under the locks.
	if w.svc, err = start([]string{srv.Env()}, []string{srv.GitConfig(), "receive.autogc=false"}); err != nil {
		w.finish(ctx)
		return err
	}
	served := make(chan struct{})
	go func() {
		srv.Serve(func(r hook.Request) error { return w.handle(ctx, r) })
		close(served)
	}()
	runErr := w.svc.Wait()
	srv.Close()
	<-served // an answer in flight finishes before w is read here
	if w.failed != nil {
		return w.failed
	}
	w.finish(ctx)
	return gitexec.ExitStatus(runErr)
}

// handle answers one hook run: refs may move only while this process holds
// the write lock, and git may report success only once the new version is
// recorded.
func (w *write) handle(ctx context.Context, r hook.Request) error {
	switch r.State {
	case "prepared":
		if w.failed != nil {
			return w.failed
		}
		return w.checkLock(ctx)
	case "committed":
		if err := w.record(ctx, r.Updates); err != nil {
			w.failed = err
			w.svc.Kill() // the client must not see "ok"
			return err
		}
	}
	return nil
}

// checkLock confirms, on the write's own session, that it still holds the
// write lock and that its mark is still in place (not thawed meanwhile).
func (w *write) checkLock(ctx context.Context) error {
	k := lock.Write(w.st.RepoID)
	var held bool
	err := w.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted AND objsubid = 2
		  AND classid = $1::int4::oid AND objid = $2::int4::oid)
		AND EXISTS (SELECT 1 FROM working_copy_versions WHERE repository_id = $3 AND device_id = $4
		  AND is_writing AND write_properties->>'token' = $5)`,
		k.Class, k.Obj, w.st.RepoID, w.st.SelfID, w.token).Scan(&held)
	if err != nil || !held {
		w.n.Log.Error().AnErr("error", err).Str("repo", w.st.Repo).Msg("write lock lost before refs moved")
		return fmt.Errorf("lost the write lock of %s before the refs moved; nothing was changed, try again", w.st.Repo)
	}
	return nil
}

// catchUpLocked syncs under this device's read lock; the caller holds the
// write lock, so no version moves meanwhile.
func (n *Node) catchUpLocked(ctx context.Context, conn *sql.Conn, st State) error {
	if n.Current(st) {
		return nil
	}
	rkey := lock.Read(st.RepoID, st.SelfID)
	if err := lock.Acquire(ctx, conn, rkey, n.LockTimeout, n.waiting(st.Repo, rkey)); err != nil {
		return err
	}
	defer lock.Release(context.Background(), conn, rkey)
	// A reader may have fetched while this waited for the read lock.
	st, err := n.reload(ctx, conn, st.Repo)
	if err != nil {
		return err
	}
	return n.syncLocked(ctx, conn, st)
}

const markQuery = `
UPDATE working_copy_versions
SET is_writing = true, updated_at = now(),
    write_properties = jsonb_build_object('user', $3::text, 'device', $4::text, 'pid', $5::int,
        'backend_pid', pg_backend_pid(), 'started', now(), 'token', $6::text)
WHERE repository_id = $1 AND device_id = $2 AND NOT is_writing`

func (n *Node) markWriting(ctx context.Context, conn *sql.Conn, st State, user string) (string, error) {
	b := make([]byte, 16)
	rand.Read(b)
	token := hex.EncodeToString(b)
	res, err := conn.ExecContext(ctx, markQuery, st.RepoID, st.SelfID, user, n.Device, os.Getpid(), token)
	if err != nil {
		return "", fmt.Errorf("mark write pending on %s: %w", st.Repo, err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return "", fmt.Errorf("mark write pending on %s: no idle version row for device %s", st.Repo, n.Device)
	}
	return token, nil
}

// recordQuery stores a committed transaction as the newest version. It
// matches the writer's token, so a repository thawed meanwhile is never
// overwritten late; the mark stays until receive-pack is done.
const recordQuery = `
UPDATE working_copy_versions
SET version = (SELECT max(version) FROM working_copy_versions WHERE repository_id = $1) + 1,
    refs_digest = $4, updated_at = now()
WHERE repository_id = $1 AND device_id = $2 AND is_writing AND write_properties->>'token' = $3
RETURNING version`

// clearQuery ends the write.
const clearQuery = `
UPDATE working_copy_versions
SET is_writing = false, write_properties = NULL, updated_at = now()
WHERE repository_id = $1 AND device_id = $2 AND is_writing AND write_properties->>'token' = $3`

// errMarkGone means the write mark was cleared by someone else (a thaw).
var errMarkGone = errors.New("the write mark was cleared by someone else (thawed?)")

func (w *write) record(ctx context.Context, ups []hook.Update) error {
	dir := gitexec.RepoDir(w.n.RepoRoot, w.st.Repo)
	digest, err := w.n.Git.RefsDigest(ctx, dir)
	if err != nil {
		return fmt.Errorf("%w: read refs: %v", ErrLostWrite, err)
	}
	ups = slices.DeleteFunc(ups, func(u hook.Update) bool {
		return u.Ref == "HEAD" || u.Old == u.New // HEAD repeats its branch; equal values change nothing
	})
	if digest == w.digest && len(ups) == 0 {
		return nil
	}
	err = w.retry(ctx, "record the push", func(conn *sql.Conn) error {
		return w.recordOnce(ctx, conn, digest, ups)
	})
	if err == nil {
		w.digest = digest
	}
	return err
}

// recordOnce stores one committed transaction: a new version when the refs
// changed, and its ref updates in the push log. Deleting a packed ref
// takes two transactions: the first changes the refs, the second names the
// update; both belong to one version.
func (w *write) recordOnce(ctx context.Context, conn *sql.Conn, digest string, ups []hook.Update) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	v := w.version
	if digest != w.digest {
		err = tx.QueryRowContext(ctx, recordQuery, w.st.RepoID, w.st.SelfID, w.token, digest).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return errMarkGone
		}
		if err != nil {
			return err
		}
	}
	for _, u := range ups {
		if _, err := tx.ExecContext(ctx, `INSERT INTO push_log
			(repository_id, device_id, user_name, ref, old_value, new_value, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, w.st.RepoID, w.st.SelfID, w.user, u.Ref, u.Old, u.New, v); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	w.version = v
	w.n.Log.Info().Str("op", "push").Str("repo", w.st.Repo).Str("user", w.user).Int64("version", v).
		Int("refs", len(ups)).Msg("recorded push")
	return nil
}

// finish clears the write mark; if that fails the repository stays frozen
// although every acknowledged update is recorded: thaw --promote of this
// device keeps them.
func (w *write) finish(ctx context.Context) {
	err := w.retry(ctx, "clear the write mark", func(conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, clearQuery, w.st.RepoID, w.st.SelfID, w.token)
		return err
	})
	if err != nil {
		w.n.Tell("%s stays frozen for writes: %v", w.st.Repo, err)
	}
}

// retry runs f on the write's connection; when the database is
// unreachable it tells the user, reconnects and tries again until
// RecordTimeout has passed.
func (w *write) retry(ctx context.Context, what string, f func(*sql.Conn) error) error {
	deadline := time.Now().Add(w.n.RecordTimeout)
	told := false
	for attempt := 0; ; attempt++ {
		err := f(w.conn)
		if err == nil {
			return nil
		}
		if !db.IsUnavailable(err) {
			return w.lost(what, err)
		}
		if time.Now().After(deadline) {
			return w.lost(what, fmt.Errorf("the database stayed unreachable for %s (%v)", w.n.RecordTimeout, err))
		}
		if !told {
			w.n.Tell("the database is unreachable; retrying to %s for up to %s", what, w.n.RecordTimeout)
			told = true
		}
		time.Sleep(min(100*time.Millisecond<<min(attempt, 4), max(time.Until(deadline), time.Millisecond)))
		w.reconnect(ctx)
	}
}

// lost gives up on what: the repository stays frozen.
func (w *write) lost(what string, err error) error {
	w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Str("user", w.user).Msg(what + " failed; repository stays frozen")
	return fmt.Errorf("%w: %s: %v", ErrLostWrite, what, err)
}

// reconnect replaces a broken connection and tries to take the write lock
// again; without it, later ref transactions of this push are refused.
func (w *write) reconnect(ctx context.Context) {
	c, err := w.n.DB.Conn(ctx)
	if err != nil {
		return
	}
	w.conn.Close()
	w.conn = c
	k := lock.Write(w.st.RepoID)
	c.ExecContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, k.Class, k.Obj)
}
