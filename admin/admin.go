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

// AddDevice registers a device and the URL peers fetch from: an ssh:// URL
// or an absolute local path.
func AddDevice(ctx context.Context, d *sql.DB, name, url string) error {
	if err := access.ValidateName("device", name); err != nil {
		return err
	}
	if err := validateURL(url); err != nil {
		return err
	}
	_, err := d.ExecContext(ctx, `INSERT INTO devices (name, url) VALUES ($1, $2)`, name, url)
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

// CreateRepo registers a repository whose first copy lives on device:
// an empty bare repository, or the one already at that path, recorded as
// version 0 so that the copy's authority is never ambiguous.
func CreateRepo(ctx context.Context, d *sql.DB, g gitexec.Git, root, device, name string) (err error) {
	dir, err := gitexec.ConfinedRepoDir(root, name)
	if err != nil {
		return err
	}
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var devID, repoID int32
	if err := tx.QueryRowContext(ctx, `SELECT id FROM devices WHERE name = $1`, device).Scan(&devID); errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("device %s is not registered: run 'gitmesh device add %s --url URL' first", device, device)
	} else if err != nil {
		return err
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO repositories (name) VALUES ($1) RETURNING id`, name).Scan(&repoID)
	if access.IsUniqueViolation(err) {
		return fmt.Errorf("repository %s %w", name, access.ErrExists)
	} else if err != nil {
		return err
	}
	if !gitexec.Exists(dir) {
		if err := g.InitBare(ctx, dir); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				os.RemoveAll(dir)
			}
		}()
	}
	digest, err := g.RefsDigest(ctx, dir)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO working_copy_versions (repository_id, device_id, version, refs_digest)
		VALUES ($1, $2, 0, $3)`, repoID, devID, digest); err != nil {
		return err
	}
	return tx.Commit()
}

// Repos lists repository names.
func Repos(ctx context.Context, d *sql.DB) ([]string, error) {
	return db.Strings(ctx, d, `SELECT name FROM repositories ORDER BY name`)
}

// RemoveDevice forgets a device and its recorded copies. It refuses while
// the device holds the only copy of some repository's newest version, or a
// write mark, unless force: its peers could not catch up without it.
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
	res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE name = $1`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return &UnknownDeviceError{Device: name}
	}
	return tx.Commit()
}
