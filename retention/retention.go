// Package retention bounds the history tables: push_log, sync_log and
// push_attempts lose their rows older than log_retention, in short
// batches so that no statement holds its locks for long.
// It knows those three tables, not git, locks or versions.
package retention

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Tables are the history tables pruned, each with its created_at.
var Tables = []string{"push_log", "sync_log", "push_attempts"}

// batch is the most rows one DELETE removes.
const batch = 5000

// pruneQueries delete one batch of rows older than $1 seconds; one
// constant statement per table (no SQL built from names).
var pruneQueries = map[string]string{
	"push_log":      `DELETE FROM push_log WHERE id IN (SELECT id FROM push_log WHERE created_at < now() - make_interval(secs => $1) LIMIT 5000)`,
	"sync_log":      `DELETE FROM sync_log WHERE id IN (SELECT id FROM sync_log WHERE created_at < now() - make_interval(secs => $1) LIMIT 5000)`,
	"push_attempts": `DELETE FROM push_attempts WHERE id IN (SELECT id FROM push_attempts WHERE created_at < now() - make_interval(secs => $1) LIMIT 5000)`,
}

// Prune removes the rows older than keep (0: none) from every history
// table, on the database's clock, and returns how many went per table.
func Prune(ctx context.Context, db *sql.DB, keep time.Duration) (map[string]int64, error) {
	out := map[string]int64{}
	if keep <= 0 {
		return out, nil
	}
	for _, t := range Tables {
		for {
			res, err := db.ExecContext(ctx, pruneQueries[t], keep.Seconds())
			if err != nil {
				return out, fmt.Errorf("prune %s: %w", t, err)
			}
			n, _ := res.RowsAffected()
			out[t] += n
			if n < batch {
				break
			}
		}
	}
	return out, nil
}
