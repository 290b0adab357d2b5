package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Slot classes: a limit of n places is n advisory locks (class+0 ..
// class+n-1, owner id), and holding any one of them is holding a place.
// Session locks free a place by themselves when a process dies.
const (
	userSessionClass int32 = 0x67550000 // "gU" + slot: (slot, user id)
	pushWaiterClass  int32 = 0x67510000 // "gQ" + slot: (slot, repository id)
	slotMask         int32 = 0x0000ffff
)

// UserSession is place slot of a user's concurrent sessions.
func UserSession(userID int32, slot int) Key { return Key{userSessionClass + int32(slot), userID} }

// PushWaiter is place slot in the queue for a repository's write lock.
func PushWaiter(repoID int32, slot int) Key { return Key{pushWaiterClass + int32(slot), repoID} }

// isSlot reports whether k is a place of a limit rather than a lock.
func (k Key) isSlot() (string, bool) {
	switch k.Class &^ slotMask {
	case userSessionClass:
		return "session place", true
	case pushWaiterClass:
		return "place in the write lock's queue", true
	}
	return "", false
}

// SlotClasses are the first classes of the limits' places, for queries
// that leave them out of lock listings (class &~ 0xffff).
var SlotClasses = []int32{userSessionClass, pushWaiterClass}

// ErrFull means every place of a limit is taken.
var ErrFull = errors.New("every place is taken")

// takeSlotQuery tries places 0.. in order and stops at the first it gets:
// a recursive CTE runs each step once, so no place beyond it is taken.
const takeSlotQuery = `
WITH RECURSIVE t(s, ok) AS (
	SELECT 0, pg_try_advisory_lock($1::int4, $2::int4)
	UNION ALL
	SELECT s + 1, pg_try_advisory_lock($1::int4 + s + 1, $2::int4) FROM t WHERE NOT ok AND s + 1 < $3
)
SELECT s FROM t WHERE ok`

// TakeSlot takes a free place of n on conn, one round trip: the key of
// place 0 names the limit and its owner. ErrFull when none is free.
func TakeSlot(ctx context.Context, conn *sql.Conn, first Key, n int) (Key, error) {
	if n < 1 {
		return Key{}, ErrFull
	}
	var s int32
	err := conn.QueryRowContext(ctx, takeSlotQuery, first.Class, first.Obj, n).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrFull
	}
	if err != nil {
		return Key{}, fmt.Errorf("take a place: %w", err)
	}
	return Key{first.Class + s, first.Obj}, nil
}

// A user's own places in a repository's queue are single-bigint advisory
// locks (pg_locks.objsubid 1: a key space apart from every two-int4 key
// above), made of the repository's and the user's ids and the place:
// repository << 32 | user << 1 | place, so places are 0 and 1.

// TakeUserWaiter takes one of user's n (at most 2) places in the queue
// for repoID's write lock, in one statement that also finds the user's
// id; ErrFull when the user's pushes hold them all (or the user is gone).
func TakeUserWaiter(ctx context.Context, conn *sql.Conn, repoID int32, user string, n int) (int64, error) {
	var key sql.NullInt64
	// Recursive, as takeSlotQuery: each place is tried once, in order,
	// and none after the first taken.
	err := conn.QueryRowContext(ctx, `
		WITH RECURSIVE u AS (SELECT ($1::bigint << 32) | (id::bigint << 1) AS base FROM users WHERE name = $2),
		t(s, ok, key) AS (
			SELECT 0, pg_try_advisory_lock(base), base FROM u
			UNION ALL
			SELECT s + 1, pg_try_advisory_lock(key + 1), key + 1 FROM t WHERE NOT ok AND s + 1 < $3
		)
		SELECT key FROM t WHERE ok`, repoID, user, min(n, 2)).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrFull
	}
	if err != nil {
		return 0, fmt.Errorf("take a place: %w", err)
	}
	return key.Int64, nil
}

// ReleaseUserWaiter gives a user's place back.
func ReleaseUserWaiter(ctx context.Context, conn *sql.Conn, key int64) error {
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1::bigint)`, key)
	return err
}
