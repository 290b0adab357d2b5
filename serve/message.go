package serve

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"gitmesh/access"
	"gitmesh/config"
	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/guard"
	"gitmesh/lock"
	"gitmesh/public"
	"gitmesh/version"
)

// Message is the sentence a user of `serve USER` reads for err, or ""
// when err's ordinary message is already fit for users (their own bad
// input, not found, a lock wait, a frozen repository, no quorum). Nothing
// else reaches them as it is: paths, addresses and settings go to the log.
func Message(err error, device string) string {
	var (
		timeout *lock.TimeoutError
		frozen  *version.FrozenError
		quorum  *version.QuorumError
		noPeer  *version.NoPeerError
		gitExit *gitexec.ExitError
		// The limits and a reader's push: sentences made for users.
		sessions *SessionsError
		waiters  *version.WaitersError
		stopped  *guard.StoppedError
		readOnly *access.ReadOnlyError
		stall    *db.StallError
	)
	switch {
	case errors.As(err, &timeout):
		// Not the holder's application name: another user's session.
		return fmt.Sprintf("gave up waiting for the %s after %s; %s held it; try again later",
			timeout.Key.Describe(), timeout.Waited.Round(time.Second), version.HolderKind(timeout.Key))
	case errors.As(err, &frozen):
		// The writer's name and start stay with `status` and the log.
		u := *frozen
		u.Copy.Writer = nil
		return strings.Replace(u.Error(), "an unknown writer", "an earlier push", 1)
	case errors.Is(err, gitexec.ErrBadCommand), errors.Is(err, gitexec.ErrBadName), errors.Is(err, version.ErrNotFound), errors.As(err, &quorum), errors.Is(err, version.ErrNoVersions),
		errors.As(err, &gitExit), errors.As(err, &sessions), errors.As(err, &waiters), errors.As(err, &stopped),
		errors.As(err, &readOnly):
		return ""
	case errors.As(err, &noPeer):
		return noPeer.PublicMessage(name(device))
	case errors.Is(err, version.ErrLostWrite) && errors.As(err, &stall):
		return fmt.Sprintf("the coordination database did not confirm the push in time (it answers but does not commit), so it was not acknowledged; "+
			"it may still appear once the database recovers (fetch to see), and device %s repairs the repository by itself; try again later", name(device))
	case errors.Is(err, version.ErrLostWrite):
		why := ""
		if db.IsUnavailable(err) || strings.Contains(err.Error(), "stayed unreachable") {
			why = " (the coordination database was unreachable)"
		}
		return fmt.Sprintf("the push could not be recorded%s, so the repository stays frozen for writes on device %s; "+
			"reads still work; tell an administrator", why, name(device))
	}
	if m, ok := public.Message(err); ok {
		return m
	}
	var setting *db.SettingError
	switch {
	case errors.As(err, &setting) && setting.Unreachable:
		return fmt.Sprintf("the coordination database is unreachable from device %s; tell an administrator (its address may be set wrong, or PostgreSQL is down)", name(device))
	case misconfigured(err):
		return Misconfigured(device)
	case errors.As(err, &stall):
		return fmt.Sprintf("the coordination database answers device %s but does not commit at the moment; nothing was changed; try again later, and tell an administrator if it persists", name(device))
	case db.IsUnavailable(err):
		return fmt.Sprintf("the coordination database is unreachable from device %s; try again later, and tell an administrator if it persists", name(device))
	}
	return fmt.Sprintf("gitmesh failed on device %s; tell an administrator (gitmesh's log there has the detail)", name(device))
}

// Misconfigured is what a user hears about a bad or missing setting.
func Misconfigured(device string) string {
	return fmt.Sprintf("the server is misconfigured (device %s); tell an administrator", name(device))
}

func name(device string) string {
	if device == "" {
		return "unknown"
	}
	return device
}

// misconfigured: a setting is wrong, not the request or the network.
func misconfigured(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		// 28: bad credentials; 3D: no such database; 42501: no privilege.
		c := string(pqErr.Code)
		return strings.HasPrefix(c, "28") || strings.HasPrefix(c, "3D") || c == "42501" || db.IsNoSchema(err)
	}
	var (
		unset   config.UnsetError
		setting *db.SettingError
	)
	return errors.As(err, &setting) || db.IsNoSchema(err) || errors.Is(err, db.ErrMultiHostURL) || errors.Is(err, db.ErrBadURL) || errors.Is(err, version.ErrNoDevice) || errors.Is(err, gitexec.ErrNoRoot) ||
		errors.As(err, &unset)
}
