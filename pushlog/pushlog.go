// Package pushlog reads the push log: one row per ref a push changed,
// written by the write protocol (package version) when it records a push.
// It only reads; it knows nothing of locks or git.
package pushlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Entry is one accepted ref update.
type Entry struct {
	Time    time.Time `json:"time"`
	User    string    `json:"user"`
	Device  string    `json:"device"` // "" once the device is deleted
	Ref     string    `json:"ref"`
	Old     string    `json:"old"`
	New     string    `json:"new"`
	Version int64     `json:"version"` // the repository version the push made
}

// MarshalJSON adds the action to the stored fields, as the README
// documents log --json.
func (e Entry) MarshalJSON() ([]byte, error) {
	type stored Entry // without this method
	return json.Marshal(struct {
		stored
		Action string `json:"action"`
	}{stored(e), e.Action()})
}

// Action names what the update did to the ref: create, delete or update.
// Git writes "no ref" as an object id of zeros: an old value of zeros is a
// created ref, a new value of zeros a deleted one.
func (e Entry) Action() string {
	switch {
	case isZero(e.Old):
		return "create"
	case isZero(e.New):
		return "delete"
	}
	return "update"
}

func isZero(id string) bool {
	for i := 0; i < len(id); i++ {
		if id[i] != '0' {
			return false
		}
	}
	return id != ""
}

const readQuery = `
SELECT p.created_at, p.user_name, COALESCE(d.name, ''), p.ref, p.old_value, p.new_value, COALESCE(p.version, -1)
FROM push_log p LEFT JOIN devices d ON d.id = p.device_id
WHERE p.repository_id = (SELECT id FROM repositories WHERE name = $1)
ORDER BY p.created_at DESC, p.id DESC
LIMIT $2`

// Read returns repo's push log, newest first, at most limit entries (all
// when limit <= 0); a repository that is not registered has none (the
// caller checks names).
func Read(ctx context.Context, d *sql.DB, repo string, limit int) ([]Entry, error) {
	var lim sql.NullInt64
	if limit > 0 {
		lim = sql.NullInt64{Int64: int64(limit), Valid: true}
	}
	rows, err := d.QueryContext(ctx, readQuery, repo, lim)
	if err != nil {
		return nil, fmt.Errorf("read push log of %s: %w", repo, err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.Time, &e.User, &e.Device, &e.Ref, &e.Old, &e.New, &e.Version); err != nil {
			return nil, fmt.Errorf("read push log of %s: %w", repo, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read push log of %s: %w", repo, err)
	}
	return out, nil
}
