// Package db opens gitmesh's PostgreSQL connections and applies migrations.
// It knows nothing of repositories, versions or git.
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"
	"golang.org/x/sys/unix"

	"gitmesh/lock"
	schema "gitmesh/sql"
)

// AppName is the application_name of every gitmesh connection, so that
// pg_stat_activity, `status` and the write mark (whose writer is alive
// while its backend has this name) can name it: "gitmesh <op> <pid>", then
// for a user's or a peer's request "<user>@<device> <repo>". The
// repository comes last: a long name is what PostgreSQL's 63-byte limit
// cuts.
func AppName(op, user, device, repo string) string {
	name := fmt.Sprintf("gitmesh %s %d", op, os.Getpid())
	if user != "" || device != "" {
		name += " " + user + "@" + device
	}
	if repo != "" {
		name += " " + repo
	}
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// Open returns a pool whose connections are named for pg_stat_activity
// (appName, from AppName) and bounded by connectTimeout. Single round-trip mode (binary_parameters) keeps the serve
// fast path to one round trip per query.
//
// Every connection asks for a primary (target_session_attrs=read-write,
// unless the URL says primary): gitmesh never reads versions from a standby,
// which may lag. With several hosts in key=value form (host=h1,h2
// port=p1,p2) the driver tries them in order and takes the first primary,
// so a failover needs no setting changed. On PostgreSQL 14 and later the
// check costs no round trip (the server reports in_hot_standby and
// default_transaction_read_only at startup).
func Open(url, appName string, connectTimeout time.Duration) (*sql.DB, error) {
	if multiHostURL(url) {
		return nil, ErrMultiHostURL
	}
	cfg, err := pq.NewConfig(url)
	if err != nil {
		return nil, badURL(url) // not err: lib/pq and net/url quote the URL, password and all
	}
	if cfg.TargetSessionAttrs != pq.TargetSessionAttrsPrimary {
		cfg.TargetSessionAttrs = pq.TargetSessionAttrsReadWrite
	}
	cfg.ApplicationName = appName
	if connectTimeout > 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	cfg.BinaryParameters = true
	c, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, badURL(url)
	}
	c.Dialer(deadPeerDialer())
	return sql.OpenDB(&connector{c: c}), nil
}

// multiHostURL reports a postgres:// URL whose host part lists several
// hosts, which lib/pq reads as one host named "h1:p1,h2".
func multiHostURL(url string) bool {
	rest, ok := strings.CutPrefix(url, "postgres://")
	if !ok {
		rest, ok = strings.CutPrefix(url, "postgresql://")
	}
	if !ok {
		return false
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	return strings.Contains(rest, ",")
}

// Listen starts a LISTEN connection on channel (lib/pq's Listener, which
// reconnects by itself, telling onErr why it lost the connection) with
// Open's settings: the dead-peer dialer, connect_timeout and appName. A
// database that does not answer at start is an error (IsUnavailable)
// after three connect timeouts.
func Listen(url, appName string, connectTimeout time.Duration, channel string, onErr func(error)) (*pq.Listener, error) {
	if _, err := pq.NewConfig(url); err != nil {
		return nil, ErrBadURL
	}
	dsn := url
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		var err error
		if dsn, err = pq.ParseURL(url); err != nil {
			return nil, ErrBadURL
		}
	}
	// Later keys win: these override any the URL sets, as Open's do.
	dsn += " application_name=" + dsnQuote(appName)
	if connectTimeout > 0 {
		dsn += fmt.Sprintf(" connect_timeout=%d", int(max(time.Second, connectTimeout.Round(time.Second)).Seconds()))
	}
	l := pq.NewDialListener(deadPeerDialer(), dsn, time.Second, 30*time.Second, func(_ pq.ListenerEventType, err error) {
		if err != nil && onErr != nil {
			onErr(err)
		}
	})
	// lib/pq's Listen waits for as long as the database stays away:
	// bound it like every connection (a few tries of connect_timeout).
	bound := 3 * max(connectTimeout, time.Second)
	done := make(chan error, 1)
	go func() { done <- l.Listen(channel) }()
	select {
	case err := <-done:
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("listen on %s: %w", channel, err)
		}
		return l, nil
	case <-time.After(bound):
		l.Close() // ends the pending Listen
		return nil, fmt.Errorf("listen on %s: %w", channel, &DialError{fmt.Errorf("the database did not answer within %s", bound)})
	}
}

// dsnQuote quotes a key=value DSN value.
func dsnQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// ErrBadURL is a database URL that lib/pq cannot read. It says which
// setting, never the value: the parsers' own errors quote it.
var ErrBadURL = errors.New(badURLPrefix + "in a URL, percent-encode the special characters of the password (% as %25, @ as %40, / as %2F, : as %3A); " +
	"in a key=value DSN, quote a password with spaces in single quotes")

const badURLPrefix = "the database URL (database_url, GITMESH_DATABASE_URL or --database-url) cannot be read: "

// BadURLError is ErrBadURL with what is wrong with the URL, when that can
// be told without quoting it: a scheme that is not PostgreSQL's, or a port
// that is not a number.
type BadURLError struct{ why string }

func (e *BadURLError) Error() string { return badURLPrefix + e.why }

// Is makes errors.Is(err, ErrBadURL) hold.
func (e *BadURLError) Is(target error) bool { return target == ErrBadURL }

// badURL says what is wrong with a URL lib/pq could not read. It quotes
// only what cannot hold the password: the scheme, and nothing of the rest.
func badURL(url string) error {
	const form = "postgres://USER:PASSWORD@HOST:5432/DATABASE, or a key=value DSN (host=... dbname=...)"
	scheme, rest, isURL := strings.Cut(url, "://")
	if !isURL {
		return ErrBadURL
	}
	if scheme != "postgres" && scheme != "postgresql" {
		if scheme != "" && strings.Trim(scheme, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") == "" && len(scheme) <= 20 {
			return &BadURLError{fmt.Sprintf("it is a %s:// URL, and gitmesh needs PostgreSQL: write %s", scheme, form)}
		}
		return &BadURLError{"a URL must start with postgres:// or postgresql://: write " + form}
	}
	authority, _, _ := strings.Cut(rest, "/")
	authority, _, _ = strings.Cut(authority, "?")
	at := strings.LastIndex(authority, "@")
	if at < 0 && strings.Contains(rest, "@") {
		return ErrBadURL // a / or ? in the password, not percent-encoded
	}
	hostport := authority[at+1:]
	port := ""
	if strings.HasPrefix(hostport, "[") { // [::1]:5432
		if _, p, ok := strings.Cut(hostport, "]:"); ok {
			port = p
		}
	} else if i := strings.LastIndex(hostport, ":"); i >= 0 {
		port = hostport[i+1:]
	}
	if n, err := strconv.Atoi(port); port != "" && (err != nil || n < 1 || n > 65535) {
		return &BadURLError{"the port after the host is not a number from 1 to 65535: write " + form}
	}
	return ErrBadURL
}

// deadPeerDialer notices a PostgreSQL that went silent (a cut network, a
// powered-off host): lib/pq would otherwise block on the socket forever,
// whatever the context says. Keepalives find an idle dead peer in about
// 11 s; TCP_USER_TIMEOUT fails a send left unacknowledged for 10 s. A
// server that is merely busy (a lock wait) still answers both.
func deadPeerDialer() pq.Dialer {
	return dialer{net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 2 * time.Second, Count: 3},
		Control: func(network, _ string, rc syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil
			}
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 10000)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}}
}

// dialer adapts net.Dialer to lib/pq's Dialer and DialerContext.
type dialer struct{ d net.Dialer }

func (d dialer) Dial(network, address string) (net.Conn, error) {
	return dialed(d.d.Dial(network, address))
}

func (d dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	nd := d.d
	nd.Timeout = timeout
	return dialed(nd.Dial(network, address))
}

func (d dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return dialed(d.d.DialContext(ctx, network, address))
}

func dialed(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, &DialError{err}
	}
	return c, nil
}

// IsUnavailable reports whether err means the database could not be reached
// or dropped the connection, as opposed to rejecting a statement.
func IsUnavailable(err error) bool {
	var (
		pqErr   *pq.Error
		setting *SettingError
		stall   *StallError
	)
	if errors.As(err, &setting) {
		return false // a setting to fix, not an outage
	}
	if errors.As(err, &stall) || IsReadOnly(err) || errors.Is(err, lock.ErrLost) {
		return true // answers but cannot commit; or no primary: try again later
	}
	if errors.As(err, &pqErr) {
		// Class 08: connection exception; 57P: operator intervention
		// (shutdown, crash), 53: insufficient resources.
		c := string(pqErr.Code)
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "57P") || strings.HasPrefix(c, "53")
	}
	// Errors of the connection itself only: a failed dial (marked by our
	// dialer) or a connection that broke. Anything else that looks like a
	// network error (a unix socket of gitmesh's own, say) is not the database.
	var de *DialError
	return errors.As(err, &de) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTDOWN) ||
		errors.Is(err, syscall.ENETDOWN) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, sql.ErrConnDone)
}

// DialError is a failure to reach PostgreSQL at all.
type DialError struct{ Err error }

func (e *DialError) Error() string { return e.Err.Error() }

// Unwrap gives the network error.
func (e *DialError) Unwrap() error { return e.Err }

// migrationLock is the advisory lock (two-int form) that serialises
// concurrent `gitmesh migrate` runs.
const migrationLockClass, migrationLockObj = 0x676d4d00, 0 // "gmM\0"

// Migrate applies every embedded sql/*.sql file not yet recorded in
// schema_migrations, each in its own transaction, in name order. It returns
// the names it applied. Concurrent runs wait for each other, at most limit.
func Migrate(ctx context.Context, d *sql.DB, limit time.Duration) ([]string, error) {
	conn, err := d.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	key := lock.Key{Class: migrationLockClass, Obj: migrationLockObj}
	if err := lock.Acquire(ctx, conn, key, limit, nil); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	defer lock.Unlock(conn, key) // a failure discards the connection, which drops the lock
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(schema.Files, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var applied []string
	for _, name := range names {
		did, err := applyOne(ctx, conn, name)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", name, err)
		}
		if did {
			applied = append(applied, name)
		}
	}
	return applied, nil
}

func applyOne(ctx context.Context, conn *sql.Conn, name string) (bool, error) {
	body, err := fs.ReadFile(schema.Files, name)
	if err != nil {
		return false, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var done bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)`, name).Scan(&done); err != nil {
		return false, err
	}
	if done {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// Queryer is *sql.DB, *sql.Conn or *sql.Tx.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Strings runs a query that returns one text column.
func Strings(ctx context.Context, q Queryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
