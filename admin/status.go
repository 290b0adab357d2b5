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

// CopyStatus is one device's copy of one repository, as `status` shows it.
type CopyStatus struct {
	Repository string `json:"repository"`
	Device     string `json:"device"`
	Version    int64  `json:"version"`
	Lag        int64  `json:"lag"`
	IsWriting  bool   `json:"is_writing"`
	// Frozen: a write mark whose writer's database session is gone
	// (version.WriterSessionOpen; a push in progress is writing, not
	// frozen).
	Frozen bool `json:"frozen"`
	// Pending: this device holds the version staged; its next read shows it.
	Pending   bool      `json:"pending"`
	Writer    *Writer   `json:"writer"` // null when no write is marked
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

const statusQuery = `
WITH top AS (SELECT repository_id, max(version) AS version FROM working_copy_versions GROUP BY repository_id),
     held AS (SELECT repository_id, count(*) AS n FROM holders GROUP BY repository_id)
SELECT r.name, d.name, v.version, t.version - v.version,
       v.is_writing, v.is_writing AND NOT ` + version.WriterSessionOpen + `,
       v.refs_pending, v.write_properties, v.updated_at,
       count(*) FILTER (WHERE v.version = t.version) OVER (PARTITION BY r.id),
       COALESCE(held.n, 0)
FROM working_copy_versions v
JOIN repositories r ON r.id = v.repository_id
JOIN devices d ON d.id = v.device_id
JOIN top t ON t.repository_id = v.repository_id
LEFT JOIN held ON held.repository_id = v.repository_id
WHERE $1 = '' OR r.name = $1
ORDER BY r.name, d.name`

// Status lists every recorded copy, of one repository or of all; quorum
// is the write_quorum setting (0: a majority).
func Status(ctx context.Context, d *sql.DB, repo string, quorum int) ([]CopyStatus, error) {
	if repo != "" {
		if err := CheckRepo(ctx, d, repo); err != nil {
			return nil, err
		}
	}
	rows, err := d.QueryContext(ctx, statusQuery, repo)
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
