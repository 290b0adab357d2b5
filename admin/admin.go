// Package admin holds the operator's commands on devices and repositories.
// It composes version, lock and access; it
// knows nothing of the command line or of how a user reached the device.
package admin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gitmesh/access"
	"gitmesh/db"
	"gitmesh/gitexec"
)

// Device is a row of the devices table.
type Device struct {
	ID   int32
	Name string
	URL  string
}

// AddDevice registers a device, the URL peers fetch from (an ssh:// URL
// or an absolute local path) and its zone ("" for none). It holds no
// copies until placement gives it some (new repositories, moves).
func AddDevice(ctx context.Context, d *sql.DB, name, url, zone string) error {
	if err := access.ValidateName("device", name); err != nil {
		return err
	}
	if err := validateURL(url); err != nil {
		return err
	}
	if zone != "" {
		if err := access.ValidateName("zone", zone); err != nil {
			return err
		}
	}
	_, err := d.ExecContext(ctx, `INSERT INTO devices (name, url, zone) VALUES ($1, $2, $3)`, name, url, zone)
	if access.IsUniqueViolation(err) {
		return fmt.Errorf("device %s %w", name, access.ErrExists)
	}
	return err
}

// validateURL accepts ssh://[USER@]HOST[:PORT] or an absolute path: what
// version.PeerURL appends "/<repo>.git" to.
func validateURL(raw string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w device URL %q: %s", access.ErrInvalid, raw, why)
	}
	if strings.ContainsAny(raw, " \t\r\n'\"\\") {
		return bad("no spaces, quotes or backslashes")
	}
	if filepath.IsAbs(raw) {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "ssh" || u.Hostname() == "" {
		return bad("use ssh://USER@HOST[:PORT] or an absolute path")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("the port must be a number from 1 to 65535")
		}
	}
	if strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return bad("give the device's address only; gitmesh appends /REPO.git")
	}
	return nil
}

// Devices lists the registered devices by name.
func Devices(ctx context.Context, d *sql.DB) ([]Device, error) {
	rows, err := d.QueryContext(ctx, `SELECT id, name, url FROM devices ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var dev Device
		if err := rows.Scan(&dev.ID, &dev.Name, &dev.URL); err != nil {
			return nil, err
		}
		out = append(out, dev)
	}
	return out, rows.Err()
}

// queryer is *sql.DB, *sql.Tx or *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// CreateRepo registers a repository on copies devices chosen by Place
// (all of them when fewer are registered; explicit: copies was asked for
// on the command line, and more than there are devices is refused). A
// copy already at the path on device is adopted: device is then one of
// the holders and its copy, recorded as version 0, the one the others
// catch up from. Otherwise the repository is empty and every holder is
// recorded at version 0 with an empty copy's digest, so that its copy is
// made on its first use (or when asked to sync) and the copies' authority
// is never ambiguous. It returns the holders' names.
func CreateRepo(ctx context.Context, d *sql.DB, g gitexec.Git, root, device, name string, copies int, explicit bool) (holders []string, err error) {
	dir, err := gitexec.ConfinedRepoDir(root, name)
	if err != nil {
		return nil, err
	}
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var devID, repoID int32
	if err := tx.QueryRowContext(ctx, `SELECT id FROM devices WHERE name = $1`, device).Scan(&devID); errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("device %s is not registered: run 'gitmesh device add %s --url URL' first", device, device)
	} else if err != nil {
		return nil, err
	}
	cands, err := Candidates(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := CheckCopies(copies, len(cands), explicit); err != nil {
		return nil, err
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO repositories (name) VALUES ($1) RETURNING id`, name).Scan(&repoID)
	if access.IsUniqueViolation(err) {
		return nil, fmt.Errorf("repository %s %w", name, access.ErrExists)
	} else if err != nil {
		return nil, err
	}
	if err := staleCopies(ctx, tx, name, ""); err != nil {
		return nil, err // a deleted or renamed repository's copy, not yet gone
	}
	existed := gitexec.Exists(dir)
	chosen := placeNew(cands, devID, copies, existed)
	self := false
	for _, c := range chosen {
		self = self || c.ID == devID
		holders = append(holders, c.Name)
	}
	digest := gitexec.Digest("", "")
	if self {
		if digest, err = createLocal(ctx, g, dir); err != nil {
			return nil, err
		}
	}
	for _, c := range chosen {
		if _, err := tx.ExecContext(ctx, `INSERT INTO holders (repository_id, device_id) VALUES ($1, $2)`, repoID, c.ID); err != nil {
			return nil, err
		}
		// A non-empty adopted copy is the only version: the others catch up.
		if c.ID != devID && digest != gitexec.Digest("", "") {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO working_copy_versions (repository_id, device_id, version, refs_digest)
			VALUES ($1, $2, 0, $3)`, repoID, c.ID, digest); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		if self && !existed {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	sort.Strings(holders)
	return holders, nil
}

// placeNew chooses a new repository's holders: a copy already on this
// device (adopt) makes it the first.
func placeNew(cands []Candidate, self int32, copies int, adopt bool) []Candidate {
	copies = min(copies, len(cands))
	if !adopt {
		return Place(cands, nil, copies)
	}
	for _, c := range cands {
		if c.ID == self {
			return append([]Candidate{c}, Place(cands, []Candidate{c}, copies-1)...)
		}
	}
	return Place(cands, nil, copies)
}

// createLocal makes (or adopts) the copy at dir and returns its digest.
func createLocal(ctx context.Context, g gitexec.Git, dir string) (string, error) {
	if !gitexec.Exists(dir) {
		if err := g.InitBare(ctx, dir); err != nil {
			return "", err
		}
	}
	return g.RefsDigest(ctx, dir)
}

// Repos lists repository names.
func Repos(ctx context.Context, d *sql.DB) ([]string, error) {
	return db.Strings(ctx, d, `SELECT name FROM repositories ORDER BY name`)
}

// RemoveDevice forgets a device and its recorded copies. It refuses while
// the device is a holder of some repository (drain it first), or holds
// the only copy of some repository's newest version, or a write mark,
// unless force (a dead device whose copies are elsewhere): its peers
// could not catch up without it.
func RemoveDevice(ctx context.Context, d *sql.DB, name string, force bool) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// No version may move between the check and the delete.
	if _, err := tx.ExecContext(ctx, `LOCK TABLE working_copy_versions IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return err
	}
	sole, err := db.Strings(ctx, tx, `
		SELECT r.name FROM working_copy_versions v
		JOIN repositories r ON r.id = v.repository_id JOIN devices dv ON dv.id = v.device_id
		WHERE dv.name = $1 AND (v.is_writing OR NOT EXISTS (
			SELECT 1 FROM working_copy_versions o
			WHERE o.repository_id = v.repository_id AND o.device_id <> v.device_id AND o.version >= v.version))
		ORDER BY r.name`, name)
	if err != nil {
		return err
	}
	if len(sole) > 0 && !force {
		return fmt.Errorf("device %s holds the only newest copy (or a write mark) of %s; let another device catch up (a read there), thaw, or use --force to lose it",
			name, strings.Join(sole, ", "))
	}
	held, err := db.Strings(ctx, tx, `SELECT r.name FROM holders h JOIN repositories r ON r.id = h.repository_id
		JOIN devices dv ON dv.id = h.device_id WHERE dv.name = $1 ORDER BY r.name`, name)
	if err != nil {
		return err
	}
	if len(held) > 0 && !force {
		return &HoldsCopiesError{Device: name, Repos: held}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE name = $1`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return &UnknownDeviceError{Device: name}
	}
	return tx.Commit()
}

// HoldsCopiesError refuses to forget a device that still holds copies:
// `gitmesh device drain` moves them first. It is an access.ErrInvalid
// (exit 2): nothing was changed.
type HoldsCopiesError struct {
	Device string
	Repos  []string
}

func (e *HoldsCopiesError) Error() string {
	list := e.Repos
	more := ""
	if len(list) > 5 {
		list, more = list[:5], fmt.Sprintf(" and %d more", len(e.Repos)-5)
	}
	return fmt.Sprintf("device %s still holds copies of %d repositories (%s%s); run 'gitmesh device drain %s' first to move them, or --force for a dead device whose copies are elsewhere",
		e.Device, len(e.Repos), strings.Join(list, ", "), more, e.Device)
}

// Unwrap makes errors.Is(err, access.ErrInvalid) hold.
func (e *HoldsCopiesError) Unwrap() error { return access.ErrInvalid }
