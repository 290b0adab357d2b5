// Package synclog reads the replication history: one sync_log row per
// push's staging on another device (kind "stage"), per fetch a device made
// from a peer to catch up (kind "fetch"), and per repair gitmesh made by
// itself after a writer died (kind "heal"), per copy moved, added,
// removed or whose move was undone (kind "move", logged on the device
// that received it, or the one that lost it), as
// the read and write protocols (package version) record them.
// It only reads; it knows nothing of locks or git.
package synclog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Entry is one sync_log row.
type Entry struct {
	Time       time.Time `json:"time"`
	Repository string    `json:"repository"`
	Device     string    `json:"device"` // the device whose copy was brought up to date
	From       string    `json:"from"`   // the peer fetched from; "" if none or deleted
	// FromVersion is the device's version before; nil when it held none.
	FromVersion *int64 `json:"from_version"`
	ToVersion   *int64 `json:"to_version"`
	DurationMS  int64  `json:"duration_ms"`
	Kind        string `json:"kind"`   // "stage", "fetch", "heal" or "move"
	Result      string `json:"result"` // "ok", or what went wrong
}

// Filter selects entries: Repo and Device "" mean any; Limit <= 0 all.
type Filter struct {
	Repo, Device string
	Limit        int
}

const readQuery = `
SELECT s.created_at, r.name, d.name, COALESCE(f.name, ''), s.from_version, s.to_version,
       s.duration_ms, s.kind, s.result
FROM sync_log s
JOIN repositories r ON r.id = s.repository_id
JOIN devices d ON d.id = s.device_id
LEFT JOIN devices f ON f.id = s.from_device
WHERE ($1 = '' OR r.name = $1) AND ($2 = '' OR d.name = $2)
ORDER BY s.created_at DESC, s.id DESC
LIMIT NULLIF($3, 0)`

// Read returns the entries f selects, newest first; a repository or
// device that is not registered selects none (the caller checks names).
func Read(ctx context.Context, d *sql.DB, f Filter) ([]Entry, error) {
	rows, err := d.QueryContext(ctx, readQuery, f.Repo, f.Device, max(f.Limit, 0))
	if err != nil {
		return nil, fmt.Errorf("read sync_log: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		var e Entry
		var from, to sql.NullInt64
		if err := rows.Scan(&e.Time, &e.Repository, &e.Device, &e.From, &from, &to, &e.DurationMS, &e.Kind, &e.Result); err != nil {
			return nil, fmt.Errorf("read sync_log: %w", err)
		}
		if from.Valid {
			e.FromVersion = &from.Int64
		}
		if to.Valid {
			e.ToVersion = &to.Int64
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
