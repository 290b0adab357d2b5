package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Defaults of the limits that keep one user from taking the cluster's
// database connections or holding a repository's write lock for long.
const (
	DefaultMaxUserSessions = 10
	DefaultMaxPushWaiters  = 8
	// MaxSlots bounds max_user_sessions and max_push_waiters: each place is
	// an advisory lock of its own (see lock.UserSession).
	MaxSlots = 1000
	// DefaultMaxPushBytes bounds one push's pack (git's
	// receive.maxInputSize): 2 GiB, GitHub's own push limit, far above
	// any ordinary push, and below what a device's temporary disk and
	// index-pack's memory (about twice the largest blob) take easily.
	DefaultMaxPushBytes = 2 << 30
	// DefaultMaxPushRefs bounds the ref updates of one push: a mirror
	// push of a large repository's tags fits, a push that would hold the
	// write lock for minutes of validation does not.
	DefaultMaxPushRefs = 10000
	// DefaultLogRetention is how long push_log, sync_log and
	// push_attempts keep a row (90 days); 0 keeps everything.
	DefaultLogRetention = 90 * 24 * time.Hour
	// DefaultCopies is how many devices hold a repository: three, as
	// GitHub's Spokes began, survives the loss of one with a majority
	// left.
	DefaultCopies = 3
	// MaxCopies bounds copies: a copy is a device's disk and a write.
	MaxCopies = 100
)

// CheckLimits refuses limits that would not bound anything, or would shut
// everyone out.
func (s Settings) CheckLimits() error {
	if s.MaxUserSessions < 1 || s.MaxUserSessions > MaxSlots {
		return fmt.Errorf("max_user_sessions must be a number from 1 to %d, not %d", MaxSlots, s.MaxUserSessions)
	}
	if s.MaxPushWaiters < 0 || s.MaxPushWaiters > MaxSlots {
		return fmt.Errorf("max_push_waiters must be a number from 0 to %d, not %d", MaxSlots, s.MaxPushWaiters)
	}
	if s.MaxPushBytes < 1<<20 {
		return fmt.Errorf("max_push_bytes must be at least 1048576 (1 MiB), not %d", s.MaxPushBytes)
	}
	if s.MaxPushRefs < 1 {
		return fmt.Errorf("max_push_refs must be a number from 1 up, not %d", s.MaxPushRefs)
	}
	if s.Copies < 1 || s.Copies > MaxCopies {
		return fmt.Errorf("copies must be a number from 1 to %d, not %d", MaxCopies, s.Copies)
	}
	if s.SSHControlDir != "" && !filepath.IsAbs(s.SSHControlDir) {
		return errors.New("ssh_control_dir must be an absolute path")
	}
	if s.LogRetention < 0 {
		return fmt.Errorf("log_retention must be 0 (keep everything) or a positive duration, not %s", s.LogRetention.D())
	}
	for name, d := range map[string]Duration{"push_timeout": s.PushTimeout, "push_idle_timeout": s.PushIdleTimeout} {
		if d.D() < time.Second {
			return fmt.Errorf("%s must be at least 1s, not %s", name, d.D())
		}
	}
	return nil
}

// KeysURL is the database keys-command connects to: keys_database_url
// when set (a role of its own, so logins work while users' sessions fill
// their role's connections), else database_url.
func (s Settings) KeysURL() string {
	if s.KeysDatabaseURL != "" {
		return s.KeysDatabaseURL
	}
	return s.DatabaseURL
}
