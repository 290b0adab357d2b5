// Package lock takes PostgreSQL session advisory locks with a bounded wait,
// and names whoever holds a lock that is being waited for.
// It knows advisory locks, not git, repositories
// or versions.
package lock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// Key is an advisory lock in the two-int4 key space. Keys come from
// database ids, never from hashes of names, so they cannot collide.
type Key struct {
	Class int32
	Obj   int32
}

// writeClass marks the cluster-wide write lock of a repository ("gmW\0").
const writeClass int32 = 0x676d5700

// Write is the cluster-wide write lock of a repository.
func Write(repoID int32) Key { return Key{writeClass, repoID} }

// Read is the lock one device takes to refresh its copy of a repository.
// Device ids are positive, so negative classes never meet writeClass.
func Read(repoID, deviceID int32) Key { return Key{-deviceID, repoID} }

// Describe names the lock for people.
func (k Key) Describe() string {
	if k.Class == writeClass {
		return "write lock"
	}
	if what, ok := k.isSlot(); ok {
		return what
	}
	return "read lock"
}

// Holder is the session holding a lock. PostgreSQL records no time for a
// granted advisory lock (pg_locks.waitstart is the wait's start, and null
// once granted), so a holder carries none: the session's own start is not
// the lock's, least of all behind a pooler.
type Holder struct {
	Application string // application_name (db.AppName)
	PID         int    // PostgreSQL backend pid
}

// ErrTimeout means the lock was still held by another session at the limit.
var ErrTimeout = errors.New("lock wait timed out")

// TimeoutError says who held the lock when the wait gave up.
type TimeoutError struct {
	Key    Key
	Waited time.Duration
	Holder *Holder
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s not acquired after %s", e.Key.Describe(), e.Waited.Round(time.Millisecond))
}

// Unwrap lets errors.Is(err, ErrTimeout) work.
func (e *TimeoutError) Unwrap() error { return ErrTimeout }

// NotifyAfter is how long a wait goes on before the waiter is told who holds
// the lock.
const NotifyAfter = time.Second

// Acquire takes key on conn, waiting at most limit. If the wait goes past
// NotifyAfter, notify is called once with the holder (nil if it is gone).
func Acquire(ctx context.Context, conn *sql.Conn, key Key, limit time.Duration, notify func(*Holder)) (err error) {
	if ok, err := Try(ctx, conn, key); ok || err != nil {
		return err
	}
	start := time.Now()
	defer func() {
		// The wait's lock_timeout must not outlive it: a session left with
		// it would time out its later statements. Bounded like every
		// cleanup; if the reset fails, the session is discarded (and with it
		// a lock just taken), and the take fails.
		rctx, cancel := context.WithTimeout(context.Background(), ReleaseBound)
		defer cancel()
		if _, rerr := conn.ExecContext(rctx, `SELECT set_config('lock_timeout', '0', false)`); rerr != nil {
			Discard(conn)
			if err == nil {
				err = fmt.Errorf("take %s: reset lock_timeout: %w", key.Describe(), rerr)
			}
		}
	}()
	notified := false
	for {
		left := limit - time.Since(start)
		if left <= 0 {
			h, _ := HolderOf(ctx, conn, key)
			return &TimeoutError{Key: key, Waited: time.Since(start), Holder: h}
		}
		step := left
		if !notified && step > NotifyAfter {
			step = NotifyAfter
		}
		err := wait(ctx, conn, key, step)
		if err == nil {
			return nil
		}
		switch got, herr := grantedAnyway(conn, key); {
		case herr != nil:
			Discard(conn) // held or not, the session goes and the lock with it
			return fmt.Errorf("take %s: %w", key.Describe(), err)
		case got && isLockTimeout(err):
			return nil // granted as the timeout fired: taken once, as wanted
		case got:
			if Unlock(conn, key) == nil {
				return fmt.Errorf("take %s: %w", key.Describe(), err)
			}
			return fmt.Errorf("take %s: %w (and its connection is closed)", key.Describe(), err)
		case !isLockTimeout(err):
			return fmt.Errorf("take %s: %w", key.Describe(), err)
		}
		if !notified && notify != nil {
			h, _ := HolderOf(ctx, conn, key)
			notify(h)
		}
		notified = true
	}
}

// grantedAnyway reports whether conn's session holds key after a wait
// for it failed. PostgreSQL grants a lock released just as lock_timeout
// fires and still reports the timeout (168 of 3,000 waits ending at the
// holder's release did here); a session lock so taken stays until
// released, so a waiter that believed the error would wait on it again,
// holding it twice, or hand its connection back to the pool holding it.
func grantedAnyway(conn *sql.Conn, key Key) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ReleaseBound)
	defer cancel()
	return holds(ctx, conn, key)
}

func wait(ctx context.Context, conn *sql.Conn, key Key, d time.Duration) error {
	// The server's lock_timeout ends the wait; the context's deadline
	// (a little later) ends it too when the server stops answering.
	ctx, cancel := context.WithTimeout(ctx, d+waitSlack)
	defer cancel()
	ms := fmt.Sprint(max(d.Milliseconds(), 1))
	if _, err := conn.ExecContext(ctx, `SELECT set_config('lock_timeout', $1, false)`, ms); err != nil {
		return err
	}
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1, $2)`, key.Class, key.Obj)
	return err
}

// waitSlack is how much later than the server's lock_timeout the client
// gives up on a lock wait.
const waitSlack = 2 * time.Second

func isLockTimeout(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "55P03"
}

// Try takes key on conn if no other session holds it, without waiting.
func Try(ctx context.Context, conn *sql.Conn, key Key) (bool, error) {
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, key.Class, key.Obj).Scan(&ok); err != nil {
		return false, fmt.Errorf("take %s: %w", key.Describe(), err)
	}
	return ok, nil
}

// Release drops key. Closing the connection drops it too. It waits at
// most ReleaseBound: an unlock is one round trip that never waits.
func Release(ctx context.Context, conn *sql.Conn, key Key) error {
	ctx, cancel := context.WithTimeout(ctx, ReleaseBound)
	defer cancel()
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1, $2)`, key.Class, key.Obj)
	return err
}

// Unlock is Release for a defer, on a context of its own (the work's
// may be over), bounded by ReleaseBound. If the release fails, the connection is discarded instead of
// going back to its pool still holding key: its session ends, and
// PostgreSQL drops the lock with it. The error says so, for the log.
func Unlock(conn *sql.Conn, key Key) error {
	ctx, cancel := context.WithTimeout(context.Background(), ReleaseBound)
	defer cancel()
	if err := Release(ctx, conn, key); err != nil {
		Discard(conn)
		return fmt.Errorf("release the %s (its connection is closed instead, which drops it): %w", key.Describe(), err)
	}
	return nil
}

// ReleaseBound bounds an unlock; the session's end frees the lock anyway.
const ReleaseBound = 5 * time.Second

// ErrLost means a lock this process took is no longer held by its
// session: the database failed over (advisory locks are not replicated)
// or the session was terminated. Nothing may be done under it.
var ErrLost = errors.New("the lock was lost with its database session (a failover?)")

// Held checks, right before acting under key, that conn's session still
// holds it: after a failover the connection is broken (an error) or, had
// a pooler handed over another backend, the lock is simply not there.
func Held(ctx context.Context, conn *sql.Conn, key Key) error {
	ok, err := holds(ctx, conn, key)
	if err != nil {
		return fmt.Errorf("%s: %w (%v)", key.Describe(), ErrLost, err)
	}
	if !ok {
		return fmt.Errorf("%s: %w", key.Describe(), ErrLost)
	}
	return nil
}

// holds reports whether conn's session holds key.
func holds(ctx context.Context, conn *sql.Conn, key Key) (bool, error) {
	var ok bool
	err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted AND objsubid = 2
		  AND classid = $1::int4::oid AND objid = $2::int4::oid)`, key.Class, key.Obj).Scan(&ok)
	return ok, err
}

// Discard makes conn's pool close it rather than reuse it (database/sql
// closes a connection that reports driver.ErrBadConn): a session whose
// state is unknown must not serve anyone else.
func Discard(conn *sql.Conn) {
	conn.Raw(func(any) error { return driver.ErrBadConn })
}

// HolderOf names the session holding key, or returns nil when none does.
func HolderOf(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, key Key) (*Holder, error) {
	var h Holder
	err := q.QueryRowContext(ctx, `
		SELECT a.application_name, a.pid
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid = $1::int4::oid AND l.objid = $2::int4::oid`, key.Class, key.Obj).
		Scan(&h.Application, &h.PID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &h, nil
}
