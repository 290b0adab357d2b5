package admin

import (
	"context"
	"database/sql"
	"fmt"

	"gitmesh/access"
	"gitmesh/version"
)

// UnknownRepoError says that a repository is not registered, in the same
// words in every admin command (log, sync-log, verify, status, thaw, sync,
// gc). It
// is a version.ErrNotFound: exit 3.
type UnknownRepoError struct{ Repo string }

func (e *UnknownRepoError) Error() string {
	return fmt.Sprintf("repository %q is not registered; 'gitmesh repo list' lists the registered ones", e.Repo)
}

// Is makes errors.Is(err, version.ErrNotFound) hold.
func (e *UnknownRepoError) Is(target error) bool { return target == version.ErrNotFound }

// UnknownDeviceError says that a device is not registered, in the same
// words in every admin command (thaw, sync-log, device remove). It is an
// access.ErrUnknown, like any other name an administrator got wrong: exit 1.
type UnknownDeviceError struct{ Device string }

func (e *UnknownDeviceError) Error() string {
	return fmt.Sprintf("device %q is not registered; 'gitmesh device list' lists the registered ones", e.Device)
}

// Unwrap makes errors.Is(err, access.ErrUnknown) hold.
func (e *UnknownDeviceError) Unwrap() error { return access.ErrUnknown }

// CheckRepo returns an *UnknownRepoError unless repo is registered: the
// one existence check of the admin commands.
func CheckRepo(ctx context.Context, d *sql.DB, repo string) error {
	var ok bool
	if err := d.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM repositories WHERE name = $1)`, repo).Scan(&ok); err != nil {
		return fmt.Errorf("look up repository %s: %w", repo, err)
	}
	if !ok {
		return &UnknownRepoError{Repo: repo}
	}
	return nil
}

// CheckDevice returns an *UnknownDeviceError unless the device is
// registered, before a command waits for locks or finds nothing to do
// with it.
func CheckDevice(ctx context.Context, d *sql.DB, name string) error {
	var ok bool
	if err := d.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE name = $1)`, name).Scan(&ok); err != nil {
		return fmt.Errorf("look up device %s: %w", name, err)
	}
	if !ok {
		return &UnknownDeviceError{Device: name}
	}
	return nil
}
