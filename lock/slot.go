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
