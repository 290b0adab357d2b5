// Package admin holds the operator's commands on devices and repositories.
package admin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gitmesh/access"
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
	if !strings.HasPrefix(url, "ssh://") && !filepath.IsAbs(url) {
		return fmt.Errorf("bad device URL %q: use ssh://USER@HOST[:PORT] or an absolute path", url)
	}
	if strings.ContainsAny(url, " \t\r\n'\"\\") {
		return fmt.Errorf("bad device URL %q: no spaces, quotes or backslashes", url)
	}
	_, err := d.ExecContext(ctx, `INSERT INTO devices (name, url) VALUES ($1, $2)`, name, url)
	if access.IsUniqueViolation(err) {
		return fmt.Errorf("device %s %w", name, access.ErrExists)
	}
	return err
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
	rows, err := d.QueryContext(ctx, `SELECT name FROM repositories ORDER BY name`)
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
