package version

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gitmesh/db"
	"gitmesh/gitexec"
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

// ErrLostWrite means the write could not be recorded: the repository stays
// frozen until an administrator thaws it.
var ErrLostWrite = errors.New("the push could not be recorded")

// Push runs one write: take the write lock, refuse if frozen, catch up, mark
// the write pending, run receive, record the new version.
func (n *Node) Push(ctx context.Context, st State, user string, receive func() error) error {
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	wkey := lock.Write(st.RepoID)
	if err := lock.Acquire(ctx, conn, wkey, n.LockTimeout, n.waiting(st.Repo, wkey)); err != nil {
		return err
	}
	defer lock.Release(context.Background(), conn, wkey)
	if st, err = n.reload(ctx, conn, st.Repo); err != nil {
		return err
	}
	if c, frozen := st.Frozen(); frozen {
		return &FrozenError{Repo: st.Repo, Copy: c}
	}
	if err := n.catchUpLocked(ctx, conn, st); err != nil {
		return err
	}
	dir := gitexec.RepoDir(n.RepoRoot, st.Repo)
	before, err := n.snapshot(ctx, dir)
	if err != nil {
		return err
	}
	token, err := n.markWriting(ctx, conn, st, user)
	if err != nil {
		return err
	}
	runErr := receive()
	after, err := n.snapshot(ctx, dir)
	if err != nil {
		n.Log.Error().Err(err).Str("repo", st.Repo).Msg("read refs after push; repository stays frozen")
		return fmt.Errorf("%w: read refs after push: %v", ErrLostWrite, err)
	}
	if err := n.record(ctx, conn, st, user, token, before, after); err != nil {
		return err
	}
	return runErr
}

// catchUpLocked syncs under this device's read lock; the caller holds the
// write lock, so no version moves meanwhile.
func (n *Node) catchUpLocked(ctx context.Context, conn *sql.Conn, st State) error {
	if st.Current() {
		return nil
	}
	rkey := lock.Read(st.RepoID, st.SelfID)
	if err := lock.Acquire(ctx, conn, rkey, n.LockTimeout, n.waiting(st.Repo, rkey)); err != nil {
		return err
	}
	defer lock.Release(context.Background(), conn, rkey)
	return n.syncLocked(ctx, conn, st)
}

// refState is a copy's refs and HEAD at one moment.
type refState struct {
	refs string // "<object> <refname>" lines
	head string
}

func (r refState) digest() string { return gitexec.Digest(r.refs, r.head) }

func (n *Node) snapshot(ctx context.Context, dir string) (refState, error) {
	refs, err := n.Git.Refs(ctx, dir)
	if err != nil {
		return refState{}, err
	}
	head, err := gitexec.Head(dir)
	return refState{refs, head}, err
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

// recordQuery ends the write: a new version when refs changed, matched by
// the writer's token so a thawed repository is never overwritten late.
const recordQuery = `
UPDATE working_copy_versions
SET version = CASE WHEN $4 THEN (SELECT max(version) FROM working_copy_versions WHERE repository_id = $1) + 1
                   ELSE version END,
    refs_digest = $5, is_writing = false, write_properties = NULL, updated_at = now()
WHERE repository_id = $1 AND device_id = $2 AND is_writing AND write_properties->>'token' = $3
RETURNING version`

// record stores the outcome of the write, retrying on a lost database for
// up to RecordTimeout.
func (n *Node) record(ctx context.Context, conn *sql.Conn, st State, user, token string, before, after refState) error {
	changed := before.digest() != after.digest()
	deadline := time.Now().Add(n.RecordTimeout)
	told := false
	for attempt := 0; ; attempt++ {
		err := n.recordOnce(ctx, conn, st, user, token, changed, after, updates(before.refs, after.refs))
		if err == nil || !db.IsUnavailable(err) || time.Now().After(deadline) {
			if err != nil {
				n.Log.Error().Err(err).Str("repo", st.Repo).Str("user", user).Msg("record push failed; repository stays frozen")
				return fmt.Errorf("%w: %v", ErrLostWrite, err)
			}
			return nil
		}
		if !told {
			n.Tell("the database is unreachable; retrying to record the push for up to %s", n.RecordTimeout)
			told = true
		}
		conn.Close()
		time.Sleep(min(time.Second<<min(attempt, 3), time.Until(deadline)+time.Millisecond))
		if c, cerr := n.DB.Conn(ctx); cerr == nil {
			conn = c
			defer c.Close()
		}
	}
}

func (n *Node) recordOnce(ctx context.Context, conn *sql.Conn, st State, user, token string, changed bool, after refState, ups []refUpdate) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int64
	err = tx.QueryRowContext(ctx, recordQuery, st.RepoID, st.SelfID, token, changed, after.digest()).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("the write mark on %s was cleared by someone else (thawed?)", st.Repo)
	}
	if err != nil {
		return err
	}
	for _, u := range ups {
		if _, err := tx.ExecContext(ctx, `INSERT INTO push_log
			(repository_id, device_id, user_name, ref, old_value, new_value, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, st.RepoID, st.SelfID, user, u.ref, u.old, u.new, v); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	n.Log.Info().Str("op", "push").Str("repo", st.Repo).Str("user", user).Int64("version", v).
		Int("refs", len(ups)).Msg("recorded push")
	return nil
}

// refUpdate is one ref that a push changed; a zero id means absent.
type refUpdate struct{ ref, old, new string }

const zeroID = "0000000000000000000000000000000000000000"

// updates compares two for-each-ref listings.
func updates(before, after string) []refUpdate {
	b, a := parseRefs(before), parseRefs(after)
	var out []refUpdate
	for ref, nv := range a {
		if ov, ok := b[ref]; !ok {
			out = append(out, refUpdate{ref, zeroID, nv})
		} else if ov != nv {
			out = append(out, refUpdate{ref, ov, nv})
		}
	}
	for ref, ov := range b {
		if _, ok := a[ref]; !ok {
			out = append(out, refUpdate{ref, ov, zeroID})
		}
	}
	return out
}

func parseRefs(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if obj, ref, ok := strings.Cut(line, " "); ok {
			m[ref] = obj
		}
	}
	return m
}
