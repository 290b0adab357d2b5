package config

import (
	"fmt"
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
