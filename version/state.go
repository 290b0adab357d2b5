// Package version is the version protocol, the card's `version`: the
// working_copy_versions table, reading it, catching a copy up from a peer
// (the read protocol), the write path (push under the cluster-wide write
// lock, stage on the peers, then record the new version), self-healing of
// writes left behind, and the push statistics derived from the write's
// outcome. It composes lock, gitexec and hook; it knows nothing of the
// command line, of sshd or of how the user reached the device.
package version

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

	"gitmesh/access"
)

// Copy is one device's recorded version of a repository.
type Copy struct {
	DeviceID  int32
	Device    string
	URL       string
	Version   int64
	IsWriting bool
	Writer    *Writer
	Digest    string
	// Pending: the version is staged on disk but the visible refs lag.
	Pending bool
}

// Device is a registered device, as the write path addresses it.
type Device struct {
	ID   int32
	Name string
	URL  string
}

// Writer is the write_properties of a pending write.
type Writer struct {
	User       string `json:"user"`
	Device     string `json:"device"`
	PID        int    `json:"pid"`
	BackendPID int    `json:"backend_pid"`
	// App is the session's application_name: a pooler (PgBouncer) may
	// hand the same backend to someone else once the writer is gone.
	App     string    `json:"app,omitempty"`
	Started time.Time `json:"started"`
	Token   string    `json:"token"`
}

// State is what PostgreSQL knows of one repository, seen from this device.
type State struct {
	Repo   string
	RepoID int32
	SelfID int32        // this device's id; 0 when the device is not registered
	Level  access.Level // the user's access; None for admin reads
	Copies []Copy       // one per device that holds a recorded version
	// Holders are the devices placed to hold the repository (the holders
	// table): the quorum is a majority of them, staging and convergence go
	// to them only, and a request reaching another device is passed on.
	Holders []Device
}

// Quorum is how many of s's holders must hold a write before it is
// acknowledged (QuorumOf).
func (s State) Quorum(setting int) int { return QuorumOf(len(s.Holders), setting) }

// QuorumOf is how many of holders devices must hold a write before it is
// acknowledged, for the write_quorum setting: 0 means a majority; more
// than there are holders means all of them. The one definition: the write
// path, status, check and metrics all use it.
func QuorumOf(holders, setting int) int {
	if setting <= 0 {
		return holders/2 + 1
	}
	return max(1, min(setting, holders))
}

// Holds reports whether this device is one of the repository's holders.
func (s State) Holds() bool {
	for _, h := range s.Holders {
		if h.ID == s.SelfID {
			return true
		}
	}
	return false
}

// Highest is the newest recorded version, or -1 when none is recorded.
func (s State) Highest() int64 {
	h := int64(-1)
	for _, c := range s.Copies {
		h = max(h, c.Version)
	}
	return h
}

// Self returns this device's copy, if it has a recorded version.
func (s State) Self() (Copy, bool) {
	for _, c := range s.Copies {
		if c.DeviceID == s.SelfID {
			return c, true
		}
	}
	return Copy{}, false
}

// Current reports whether this device holds the newest version.
func (s State) Current() bool {
	c, ok := s.Self()
	return ok && c.Version == s.Highest() && !c.Pending
}

// Frozen returns the copy whose write never finished, if any.
func (s State) Frozen() (Copy, bool) {
	for _, c := range s.Copies {
		if c.IsWriting {
			return c, true
		}
	}
	return Copy{}, false
}

// Leaders are the copies at the newest version other than this device's.
func (s State) Leaders() []Copy {
	h := s.Highest()
	var out []Copy
	for _, c := range s.Copies {
		if c.Version == h && c.DeviceID != s.SelfID {
			out = append(out, c)
		}
	}
	return out
}

// ErrNotFound is returned for an unknown repository and, identically, for a
// repository the user may not use.
var ErrNotFound = errors.New("repository not found")

// ErrReadOnly refuses a push by a user who may read the repository (and
// so may know it exists) but not write to it.
var ErrReadOnly = errors.New("read access only")

// ErrNoDevice means this device is not registered.
var ErrNoDevice = errors.New("device not registered")

// queryer is *sql.DB or *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// lookupQuery reads, for user $1, repository $2 and device $3, the
// repository, this device, the user's access level and every device's
// version in one round trip: the whole fast path.
const lookupQuery = `
WITH repo AS (SELECT id FROM repositories WHERE name = $2)
SELECT repo.id,
       COALESCE((SELECT id FROM devices WHERE name = $3), 0),
       COALESCE((SELECT max(r.level) FROM ` + access.GrantsOf + `), 0),
       d.id, d.name, d.url, v.version, v.is_writing, v.write_properties, v.refs_digest, v.refs_pending
FROM repo LEFT JOIN (holders h JOIN devices d ON d.id = h.device_id) ON h.repository_id = repo.id
       LEFT JOIN working_copy_versions v ON v.repository_id = repo.id AND v.device_id = d.id
ORDER BY d.name`

// Lookup loads repo's state as seen by user on device. It returns
// ErrNotFound when the repository is unknown or the user below need, and
// ErrReadOnly when the user needs write but may only read.
func Lookup(ctx context.Context, q queryer, repo, user, device string, need access.Level) (State, error) {
	st, err := load(ctx, q, repo, user, device)
	if err != nil {
		return State{}, err
	}
	if st.Level < need {
		if st.Level >= access.Read {
			return State{}, ErrReadOnly
		}
		return State{}, ErrNotFound
	}
	if st.SelfID == 0 {
		return State{}, fmt.Errorf("%w: %s", ErrNoDevice, device)
	}
	return st, nil
}

// Registered reports whether repo is a registered repository.
func Registered(ctx context.Context, q queryer, repo string) (bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT 1 FROM repositories WHERE name = $1`, repo)
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", repo, err)
	}
	defer rows.Close()
	found := rows.Next()
	return found, rows.Err()
}

// RegisteredAmong returns which of names are registered repositories, in
// one statement.
func RegisteredAmong(ctx context.Context, q queryer, names []string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM repositories WHERE name = ANY($1::text[])`, pq.Array(names))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Load reads repo's state for an administrator: no user, no device.
func Load(ctx context.Context, q queryer, repo string) (State, error) {
	return load(ctx, q, repo, "", "")
}

func load(ctx context.Context, q queryer, repo, user, device string) (State, error) {
	rows, err := q.QueryContext(ctx, lookupQuery, user, repo, device)
	if err != nil {
		return State{}, fmt.Errorf("read versions of %s: %w", repo, err)
	}
	defer rows.Close()
	st := State{Repo: repo}
	found := false
	for rows.Next() {
		found = true
		var (
			devID         sql.NullInt32
			name, url, dg sql.NullString
			ver           sql.NullInt64
			writing       sql.NullBool
			props         []byte
			pending       sql.NullBool
		)
		if err := rows.Scan(&st.RepoID, &st.SelfID, &st.Level, &devID, &name, &url, &ver, &writing, &props, &dg, &pending); err != nil {
			return State{}, fmt.Errorf("read versions of %s: %w", repo, err)
		}
		if !devID.Valid {
			continue // no holder placed
		}
		st.Holders = append(st.Holders, Device{ID: devID.Int32, Name: name.String, URL: url.String})
		if !ver.Valid {
			continue // this device holds no recorded version
		}
		c := Copy{DeviceID: devID.Int32, Device: name.String, URL: url.String,
			Version: ver.Int64, IsWriting: writing.Bool, Digest: dg.String, Pending: pending.Bool}
		if len(props) > 0 && string(props) != "null" {
			c.Writer = new(Writer)
			if err := json.Unmarshal(props, c.Writer); err != nil {
				return State{}, fmt.Errorf("write_properties of %s on %s: %w", repo, c.Device, err)
			}
		}
		st.Copies = append(st.Copies, c)
	}
	if err := rows.Err(); err != nil {
		return State{}, fmt.Errorf("read versions of %s: %w", repo, err)
	}
	if !found {
		return State{}, ErrNotFound
	}
	return st, nil
}
