package lock

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AcquireTimed is Acquire that also reports how long it waited: zero when
// the lock was free at once, so that a count of waits means something.
func AcquireTimed(ctx context.Context, conn *sql.Conn, key Key, limit time.Duration, notify func(*Holder)) (time.Duration, error) {
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, key.Class, key.Obj).Scan(&ok); err != nil {
		return 0, fmt.Errorf("take %s: %w", key.Describe(), err)
	}
	if ok {
		return 0, nil
	}
	start := time.Now()
	err := Acquire(ctx, conn, key, limit, notify)
	return max(time.Since(start), time.Microsecond), err
}
