package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lib/pq"
)

// Setting names the database URL setting in every message about it.
const Setting = "database_url (GITMESH_DATABASE_URL or --database-url)"

// SettingError is a database that could not be used because a setting is
// wrong: nothing listens at its address, its host is unknown, its password
// or role is refused, its database does not exist. It is a configuration
// error (exit 1), never "try again later".
type SettingError struct {
	What string // what is wrong, for people: "refused the password"
	// Unreachable: nothing answered at all (refused, unknown host); a
	// stopped PostgreSQL looks the same as a wrong address.
	Unreachable bool
	Err         error
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("the coordination database %s (%s); check %s", e.What, oneLine(e.Err.Error()), Setting)
}

// Unwrap gives the driver's error.
func (e *SettingError) Unwrap() error { return e.Err }

// ErrNoPrimary: every host of the database URL that answered is a
// read-only standby (a failover under way, or no primary at all).
var ErrNoPrimary = errors.New("the coordination database answered only as a read-only standby (no primary among the hosts of " + Setting + "); a failover may be under way")

// ErrNoSchema: the database lacks gitmesh's tables (or columns).
var ErrNoSchema = errors.New("the database has no gitmesh schema, or an older one: run 'gitmesh migrate' (with the same " + Setting + ")")

// ErrMultiHostURL refuses the URL form with several hosts, which lib/pq
// misreads (it looks up "h1:p1" as a host name).
var ErrMultiHostURL = errors.New("a database URL with several hosts (postgres://u@h1:p1,h2:p2/db) is not understood by gitmesh's driver; " +
	"write " + Setting + " in key=value form: host=h1,h2 port=p1,p2 user=u dbname=db target_session_attrs=read-write")

// StallError is a database step that did not finish within its bound: the
// database answers but does not commit (a synchronous standby missing, a
// full disk), or a statement hung. The step's outcome is unknown: a commit
// cancelled while waiting for synchronous replication has committed
// locally, so nothing that waited on it may be acknowledged.
type StallError struct {
	Step  string        // "mark the write", "record the push"
	After time.Duration // the bound it reached
}

func (e *StallError) Error() string {
	return fmt.Sprintf("the coordination database did not complete %q within %s (it answers but does not commit: a synchronous standby missing or a full disk?)",
		e.Step, e.After.Round(time.Millisecond))
}

// Bound gives one database step its deadline d (from the setting that
// bounds it). Stalled reports, after the step, whether the deadline
// passed: then the step's outcome is unknown, whatever it returned.
func Bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = DefaultStep
	}
	return context.WithTimeout(ctx, d)
}

// DefaultStep bounds a step whose setting is zero.
const DefaultStep = 30 * time.Second

// Stalled reports whether a step run with ctx (from Bound) reached its
// deadline, and gives the error to return for it.
func Stalled(ctx context.Context, step string, d time.Duration) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil
	}
	if d <= 0 {
		d = DefaultStep
	}
	return &StallError{Step: step, After: d}
}

// IsNoSchema reports whether err is a statement that met a database
// without gitmesh's tables or columns.
func IsNoSchema(err error) bool {
	var pqErr *pq.Error
	return errors.Is(err, ErrNoSchema) || errors.As(err, &pqErr) && (pqErr.Code == "42P01" || pqErr.Code == "42703")
}

// IsReadOnly reports whether err comes from a read-only standby: every
// host answered as one, or a write met a read-only transaction.
func IsReadOnly(err error) bool {
	var pqErr *pq.Error
	if errors.Is(err, ErrNoPrimary) || errors.As(err, &pqErr) && pqErr.Code == "25006" {
		return true
	}
	return err != nil && (strings.Contains(err.Error(), "server is in hot standby mode") || strings.Contains(err.Error(), "session is read-only"))
}

// connector remembers whether it ever reached the database: a failure to
// connect before that is a setting to fix; after, the database went away.
type connector struct {
	c       driver.Connector
	reached atomic.Bool
}

func (c *connector) Driver() driver.Driver { return c.c.Driver() }

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.c.Connect(ctx)
	if err == nil {
		c.reached.Store(true)
		return conn, nil
	}
	return nil, classify(err, c.reached.Load())
}

// classify names the setting for a failure to connect: refused, unknown
// host, password, role or database, when gitmesh never reached the
// database in this process. A standby (or only standbys) is ErrNoPrimary
// whenever it happens; the rest stays as the driver said (unavailable).
func classify(err error, reached bool) error {
	if IsReadOnly(err) {
		return fmt.Errorf("%w: %v", ErrNoPrimary, oneLine(err.Error()))
	}
	if reached {
		return err
	}
	var (
		pqErr *pq.Error
		dns   *net.DNSError
	)
	switch {
	case errors.As(err, &pqErr) && pqErr.Code == "28P01":
		return &SettingError{What: "refused the password", Err: err}
	case errors.As(err, &pqErr) && pqErr.Code == "3D000":
		return &SettingError{What: "has no such database", Err: err}
	case errors.As(err, &pqErr) && strings.HasPrefix(string(pqErr.Code), "28"):
		return &SettingError{What: "refused the role (user), which does not exist or has no access rule", Err: err}
	case errors.As(err, &dns):
		return &SettingError{What: "is unreachable: its host name is unknown", Unreachable: true, Err: err}
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return &SettingError{What: "is unreachable: nothing accepts connections at its address (a wrong host or port, or PostgreSQL is not running there)",
			Unreachable: true, Err: err}
	}
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
