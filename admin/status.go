package admin

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/lib/pq"

	"gitmesh/lock"
	"gitmesh/version"
)

// CopyStatus is one holder's copy of one repository, as `status` shows it.
type CopyStatus struct {
	Repository string `json:"repository"`
	Device     string `json:"device"`
	// Version is -1 for a holder with no version recorded yet (just
	// placed, or its record forgotten by heal): it lags every version,
	// version 0 included, until it catches up.
	Version   int64 `json:"version"`
	Lag       int64 `json:"lag"`
	IsWriting bool  `json:"is_writing"`
	// Frozen: a write mark whose writer's database session is gone
	// (version.WriterSessionOpen; a push in progress is writing, not
	// frozen).
	Frozen bool `json:"frozen"`
	// Pending: this device holds the version staged; its next read shows it.
	Pending bool    `json:"pending"`
	Writer  *Writer `json:"writer"` // null when no write is marked
	// UpdatedAt is when the version was recorded; for a holder with none,
	// when it was placed.
	UpdatedAt time.Time `json:"updated_at"`
	// Per repository: how many of its holders (placed devices) hold the
	// newest version, against the write quorum.
	Holders     int  `json:"holders"`
	HoldNewest  int  `json:"hold_newest"`
	Quorum      int  `json:"quorum"`
	BelowQuorum bool `json:"below_quorum"`
	// Moving is the repository's move in progress (gitmesh repo move,
	// copies, device drain, rebalance); null when none.
	Moving *MoveStatus `json:"moving"`
}

// Writer is who set is_writing, and when.
type Writer struct {
	User    string    `json:"user"`
	Device  string    `json:"device"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

// statusQuery lists every holder's copy (the holders table LEFT JOIN its
// recorded version): a holder just placed, with no version recorded yet,
// is listed at version -1 and lagging by newest+1; a recorded version of
// a device that is no holder is not a copy of the repository and is left
// out. One join and one sort by (repository, device) serve everything:
// the per-repository figures (the newest version among the holders, how
// many holders, how many at the newest) are windows over each
// repository's rows, so there is no statement, subquery or second pass
// per repository. With a repository named, only its rows are read.
const statusQuery = `
SELECT c.name, c.device, c.version, c.newest - c.version, c.is_writing, c.frozen, c.pending, c.props, c.updated_at,
       count(*) FILTER (WHERE c.recorded = c.newest) OVER w, c.holders
FROM (
  SELECT r.name, d.name AS device, v.version AS recorded, COALESCE(v.version, -1) AS version,
         COALESCE(max(v.version) OVER w, -1) AS newest, count(*) OVER w AS holders,
         COALESCE(v.is_writing, false) AS is_writing,
         COALESCE(v.is_writing AND NOT ` + version.WriterSessionOpen + `, false) AS frozen,
         COALESCE(v.refs_pending, false) AS pending, v.write_properties AS props,
         COALESCE(v.updated_at, h.created_at) AS updated_at
  FROM holders h
  JOIN repositories r ON r.id = h.repository_id
  JOIN devices d ON d.id = h.device_id
  LEFT JOIN working_copy_versions v ON v.repository_id = h.repository_id AND v.device_id = h.device_id
  WHERE $1 = '' OR r.name = $1
  WINDOW w AS (PARTITION BY r.name ORDER BY d.name ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) c
WINDOW w AS (PARTITION BY c.name ORDER BY c.device ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
ORDER BY c.name, c.device`

// ReadTx begins a read-only transaction with JIT compilation off, for the
// admin reads over every copy (status, check, metrics). Their plans are
// priced by row counts the planner overestimates (statusQuery's writer
// check is costed for every copy, though only a write mark runs it): at
// 10,000 repositories x 3 copies statusQuery is priced at about 90,000,
// just under jit_above_cost, and a little more crosses it and pays
// 0.07-0.5 s of compiling for a query that runs in less (see
// docs/DESIGN.md). The caller rolls it back when done.
func ReadTx(ctx context.Context, d *sql.DB) (*sql.Tx, error) {
	tx, err := d.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL jit = off`); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// Status lists every holder's copy, of one repository or of all; quorum
// is the write_quorum setting (0: a majority).
func Status(ctx context.Context, d *sql.DB, repo string, quorum int) ([]CopyStatus, error) {
	if repo != "" {
		if err := CheckRepo(ctx, d, repo); err != nil {
			return nil, err
		}
	}
	tx, err := ReadTx(ctx, d)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, statusQuery, repo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []CopyStatus{}
	for rows.Next() {
		var c CopyStatus
		var props []byte
		if err := rows.Scan(&c.Repository, &c.Device, &c.Version, &c.Lag, &c.IsWriting, &c.Frozen,
			&c.Pending, &props, &c.UpdatedAt, &c.HoldNewest, &c.Holders); err != nil {
			return nil, err
		}
		c.Quorum = version.QuorumOf(c.Holders, quorum)
		// Version 0 is a repository nobody has pushed to: no acknowledged
		// push can be lost, and the first push puts it on a quorum.
		c.BelowQuorum = c.HoldNewest < c.Quorum && c.Version+c.Lag > 0
		if len(props) > 0 && string(props) != "null" {
			c.Writer = new(Writer)
			if err := json.Unmarshal(props, c.Writer); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, addMoves(ctx, d, repo, out)
}

// LockHolder is a gitmesh session holding or awaiting an advisory lock.
type LockHolder struct {
	Application string `json:"application"`
	PID         int    `json:"pid"`
	Granted     bool   `json:"granted"`
	// WaitingSince is when a waiter began to wait (pg_locks.waitstart);
	// nil for a holder: PostgreSQL records no time for a granted lock.
	WaitingSince *time.Time `json:"waiting_since"`
}

// Locks lists the advisory locks gitmesh sessions hold or wait for now.
func Locks(ctx context.Context, d *sql.DB) ([]LockHolder, error) {
	rows, err := d.QueryContext(ctx, `
		SELECT a.application_name, a.pid, l.granted, l.waitstart
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND a.application_name LIKE 'gitmesh %'
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND NOT (l.objsubid = 2 AND (l.classid::bigint & x'ffff0000'::bigint) = ANY($1::bigint[])) -- limits' places
		  AND l.objsubid <> 1 -- a user's own places in a queue (lock.TakeUserWaiter)
		ORDER BY l.granted DESC, l.waitstart, a.pid`, pq.Array(slotClasses()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LockHolder
	for rows.Next() {
		var h LockHolder
		var since sql.NullTime
		if err := rows.Scan(&h.Application, &h.PID, &h.Granted, &since); err != nil {
			return nil, err
		}
		if since.Valid {
			h.WaitingSince = &since.Time
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// slotClasses are the classes of the limits' places (lock.SlotClasses),
// which are not locks anyone waits for.
func slotClasses() []int64 {
	out := make([]int64, len(lock.SlotClasses))
	for i, c := range lock.SlotClasses {
		out[i] = int64(c)
	}
	return out
}
