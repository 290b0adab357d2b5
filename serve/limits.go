package serve

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"gitmesh/config"
	"gitmesh/db"
	"gitmesh/lock"
	"gitmesh/version"
)

// SessionsError refuses a session beyond the user's max_user_sessions.
type SessionsError struct{ Max int }

func (e *SessionsError) Error() string {
	s := "s"
	if e.Max == 1 {
		s = ""
	}
	return fmt.Sprintf("you already have %d gitmesh session%s running that wait or push (max_user_sessions); wait for one to finish and try again", e.Max, s)
}

// Unwrap makes the refusal a busy answer (exit 5).
func (e *SessionsError) Unwrap() error { return lock.ErrFull }

// admitSession takes one of the user's max_user_sessions places: a push
// without one is refused at once, a read waits for one.
func admitSession(ctx context.Context, s config.Settings, dbh *sql.DB, user string, write bool, tell func(string, ...any)) error {
	// A read may wait lock_timeout for a place; one more connect and
	// query after that is the most any admission takes.
	ctx, cancel := db.Bound(ctx, s.LockTimeout.D()+s.ConnectTimeout.D()+db.DefaultStep)
	defer cancel()
	if write {
		return admit(ctx, dbh, user, s.MaxUserSessions)
	}
	return admitRead(ctx, dbh, user, s.MaxUserSessions, s.LockTimeout.D(), tell)
}

// admit takes one of user's max session places before this session
// holds a database connection for long (a lock wait, a catch-up, a push).
// The place is a session lock on the pool's one connection, which the
// rest of serve reuses (nothing here uses two at once), so it lasts as
// long as the connection and goes with it when the process dies.
func admit(ctx context.Context, dbh *sql.DB, user string, max int) error {
	conn, err := dbh.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close() // back to the pool, place and all
	var id int32
	if err := conn.QueryRowContext(ctx, `SELECT id FROM users WHERE name = $1`, user).Scan(&id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return version.ErrNotFound // removed since the access check
		}
		return fmt.Errorf("read user %s: %w", user, err)
	}
	if _, err := lock.TakeSlot(ctx, conn, lock.UserSession(id, 0), max); err != nil {
		if errors.Is(err, lock.ErrFull) {
			return &SessionsError{Max: max}
		}
		return err
	}
	return nil
}

// admitRead is admit for a read that must catch up: rather than failing,
// it waits for a place without holding a connection (many jobs of one
// user reading right after a push are normal; they cause one fetch), up
// to limit, telling the user once.
func admitRead(ctx context.Context, dbh *sql.DB, user string, max int, limit time.Duration, tell func(string, ...any)) error {
	deadline := time.Now().Add(limit)
	pause := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := admit(ctx, dbh, user, max)
		var full *SessionsError
		if !errors.As(err, &full) || time.Now().After(deadline) {
			return err
		}
		if attempt == 0 {
			tell("you have %d gitmesh sessions running that wait or push (max_user_sessions); waiting up to %s for one to finish", max, limit)
		}
		dbh.SetMaxIdleConns(0) // the connection goes while this waits
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause/2 + rand.N(pause)):
		}
		dbh.SetMaxIdleConns(2)
		pause = min(2*pause, 500*time.Millisecond)
	}
}
