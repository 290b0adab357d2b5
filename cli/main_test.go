package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/urfave/cli/v2"

	"gitmesh/access"
	"gitmesh/gitexec"
	"gitmesh/guard"
	"gitmesh/lock"
	"gitmesh/serve"
	"gitmesh/version"
)

func TestExitCodeAndMessage(t *testing.T) {
	since := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	_, missing := os.Open(filepath.Join(t.TempDir(), "absent.toml"))
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 5432},
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	frozen := &version.FrozenError{Repo: "team/app", Copy: version.Copy{Device: "b", IsWriting: true,
		Writer: &version.Writer{User: "alice", Started: since}}}
	noPeer := &version.NoPeerError{Repo: "team/app", Version: 4, Tried: []string{"b: ssh: connect to host b: Connection refused"}}

	tests := []struct {
		name string
		err  error
		code int
		msg  string // the exact message; "" when only contains matters
		has  string // a piece the message must contain
	}{
		{name: "nil", err: nil, code: 0},
		{name: "usage", err: usageError{errors.New("device add takes 1 argument(s): NAME")}, code: 2,
			msg: "device add takes 1 argument(s): NAME"},
		{name: "wrapped usage", err: fmt.Errorf("parse: %w", usageError{errors.New("x")}), code: 2},
		{name: "bad command", err: fmt.Errorf("%w: unknown command", gitexec.ErrBadCommand), code: 2,
			msg: "bad command: unknown command"},
		{name: "bad name", err: fmt.Errorf("create: %w", gitexec.ErrBadName), code: 2},
		{name: "invalid access input", err: fmt.Errorf("grant: %w level %q", access.ErrInvalid, "root"), code: 2},
		{name: "not found, bare: the same answer as forbidden", err: version.ErrNotFound, code: 3,
			msg: "repository not found, or you do not have access to it"},
		{name: "not found, wrapped: admin commands say more", err: fmt.Errorf("%w: team/app", version.ErrNotFound), code: 3,
			msg: "repository not found: team/app"},
		{name: "frozen", err: frozen, code: 4, msg: frozen.Error()},
		{name: "frozen, wrapped", err: fmt.Errorf("push: %w", frozen), code: 4, has: "gitmesh thaw team/app --promote b"},
		{name: "lock timeout with holder", code: 5,
			err: &lock.TimeoutError{Key: lock.Write(1), Waited: 61400 * time.Millisecond,
				Holder: &lock.Holder{Application: "gitmesh push 42 alice@a team/app", PID: 7}},
			msg: `gave up waiting for the write lock after 1m1s; it is held by "gitmesh push 42 alice@a team/app"; try again later`},
		{name: "lock timeout, holder gone", code: 5,
			err: fmt.Errorf("fetch: %w", &lock.TimeoutError{Key: lock.Read(1, 2), Waited: 2 * time.Second}),
			msg: "gave up waiting for the read lock after 2s; try again later"},
		{name: "lost write", err: fmt.Errorf("%w: record version: deadline exceeded", version.ErrLostWrite), code: 7,
			msg: "the push could not be recorded: record version: deadline exceeded"},
		{name: "lost write over a dead database is still a lost write",
			err: fmt.Errorf("%w: %w", version.ErrLostWrite, dialErr), code: 7},
		{name: "no quorum", code: 8,
			err: &version.QuorumError{Repo: "team/app", Stored: 1, Need: 2, Holders: 3, Unreachable: []string{"b", "c"}},
			msg: "push to team/app refused: only 1 of 3 devices could store it and 2 must; unreachable: b, c; nothing was changed, try again when they are back"},
		{name: "no peer", err: noPeer, code: 6, msg: noPeer.Error()},
		{name: "no peer over a network error keeps its own message", err: fmt.Errorf("%w (%w)", noPeer, dialErr), code: 6,
			has: "no up-to-date copy of team/app (version 4) is reachable"},
		{name: "database dial", err: fmt.Errorf("connect: %w", dialErr), code: 6,
			has: "database is unreachable"},
		{name: "database went away", err: fmt.Errorf("read versions: %w", &pq.Error{Code: "57P01", Message: "terminating connection due to administrator command"}),
			code: 6, has: "database is unreachable"},
		{name: "statement rejected is not unavailability", err: fmt.Errorf("add: %w", &pq.Error{Code: "23505", Message: "duplicate key"}),
			code: 1, has: "add: pq: duplicate key"},
		{name: "missing file", err: fmt.Errorf("read config: %w", missing), code: 1},
		{name: "ambiguous leaders", err: version.ErrNoVersions, code: 1, has: "ambiguous leaders"},
		{name: "git's status", err: &gitexec.ExitError{Code: 128}, code: 128},
		{name: "user at max_user_sessions", err: &serve.SessionsError{Max: 10}, code: 5,
			msg: "you already have 10 gitmesh sessions running that wait or push (max_user_sessions); wait for one to finish and try again"},
		{name: "write lock queue full", err: &version.WaitersError{Repo: "team/app", Max: 8}, code: 5,
			msg: "push to team/app refused: 8 pushes are already waiting for its write lock (max_push_waiters); nothing was changed, try again later"},
		{name: "push stopped", code: 9,
			err: &guard.StoppedError{TimeoutError: &guard.TimeoutError{Idle: true, Limit: 5 * time.Minute}, Done: "nothing was changed; push again"},
			msg: "push stopped: the client sent nothing for 5m0s (push_idle_timeout); nothing was changed; push again"},
		{name: "a reader's push says who grants write", code: 3,
			err: &access.ReadOnlyError{Repo: "team/app", Admins: []string{"a", "b", "c", "d", "e", "f", "g"}},
			msg: "you may read team/app but not push to it; ask an administrator of team/app (users with admin on it: a, b, c, d, e and 2 more) for write access"},
		{name: "a reader's push with no administrator", code: 3, err: &access.ReadOnlyError{Repo: "solo"},
			msg: "you may read solo but not push to it; ask a gitmesh administrator for write access"},
		{name: "server without SSL", err: fmt.Errorf("read versions of team/app: %w", pq.ErrSSLNotSupported), code: 1,
			msg: "read versions of team/app: pq: SSL is not enabled on the server; add sslmode=disable to the database URL, or enable SSL on the PostgreSQL server"},
		{name: "git's status, wrapped", err: fmt.Errorf("receive-pack: %w", &gitexec.ExitError{Code: 3}), code: 3},
		{name: "cli exit coder", err: cli.Exit("bye", 9), code: 9, msg: "bye"},
		{name: "anything else", err: errors.New("something\nbroke   badly"), code: 1, msg: "something broke badly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.code {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.code)
			}
			if tt.err == nil {
				return
			}
			msg := message(tt.err)
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("message(%v) = %q spans lines", tt.err, msg)
			}
			if tt.msg != "" && msg != tt.msg {
				t.Errorf("message(%v) =\n %q\nwant\n %q", tt.err, msg, tt.msg)
			}
			if tt.has != "" && !strings.Contains(msg, tt.has) {
				t.Errorf("message(%v) = %q, want it to contain %q", tt.err, msg, tt.has)
			}
			// (version wraps ErrLostWrite's cause with %v, so 7 never blames it either.)
			if tt.code != 6 && tt.code != 7 && strings.Contains(msg, "database is unreachable") {
				t.Errorf("message(%v) = %q blames the database", tt.err, msg)
			}
		})
	}
}

// parsed runs `gitmesh device add ARGS...` in a small application whose
// action calls parseArgs with the given rules.
func parsed(t *testing.T, args []string, want, valueFlags, boolFlags []string) (cmdArgs, error) {
	t.Helper()
	var (
		got  cmdArgs
		ran  bool
		perr error
	)
	add := &cli.Command{
		Name: "add",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url"},
			&cli.BoolFlag{Name: "force"},
		},
		Action: func(c *cli.Context) error {
			ran = true
			got, perr = parseArgs(c, want, valueFlags, boolFlags)
			return perr
		},
	}
	app := &cli.App{
		Name:           "gitmesh",
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands:       []*cli.Command{usageErrors(&cli.Command{Name: "device", Subcommands: []*cli.Command{add}})},
	}
	err := app.Run(append([]string{"gitmesh", "device", "add"}, args...))
	if ran && err != perr {
		t.Fatalf("app returned %v, action %v", err, perr)
	}
	return got, err
}

func TestParseArgs(t *testing.T) {
	name := []string{"NAME"}
	url, force := []string{"url"}, []string{"force"}
	tests := []struct {
		name       string
		args       []string
		want       []string
		valueFlags []string
		boolFlags  []string
		pos        []string
		vals       map[string]string
		bools      map[string]bool
		err        string // a piece of the usage error; "" for success
	}{
		{name: "flag after the name", args: []string{"a", "--url", "ssh://git@a"}, want: name, valueFlags: url,
			pos: []string{"a"}, vals: map[string]string{"url": "ssh://git@a"}},
		{name: "flag before the name", args: []string{"--url", "ssh://git@a", "a"}, want: name, valueFlags: url,
			pos: []string{"a"}, vals: map[string]string{"url": "ssh://git@a"}},
		{name: "--flag=value", args: []string{"a", "--url=ssh://git@a:2222/x=y"}, want: name, valueFlags: url,
			pos: []string{"a"}, vals: map[string]string{"url": "ssh://git@a:2222/x=y"}},
		{name: "single dash", args: []string{"a", "-url", "/srv/a"}, want: name, valueFlags: url,
			pos: []string{"a"}, vals: map[string]string{"url": "/srv/a"}},
		{name: "later value wins", args: []string{"--url", "x", "a", "--url", "y"}, want: name, valueFlags: url,
			pos: []string{"a"}, vals: map[string]string{"url": "y"}},
		{name: "value flag absent", args: []string{"a"}, want: name, valueFlags: url,
			pos: []string{"a"}, vals: map[string]string{}},
		{name: "bool after the name", args: []string{"a", "--force"}, want: name, boolFlags: force,
			pos: []string{"a"}, bools: map[string]bool{"force": true}},
		{name: "bool before the name", args: []string{"--force", "a"}, want: name, boolFlags: force,
			pos: []string{"a"}, bools: map[string]bool{"force": true}},
		{name: "bool absent", args: []string{"a"}, want: name, boolFlags: force,
			pos: []string{"a"}, bools: map[string]bool{"force": false}},
		{name: "both, mixed", args: []string{"a", "--force", "--url", "u"}, want: name, valueFlags: url, boolFlags: force,
			pos: []string{"a"}, vals: map[string]string{"url": "u"}, bools: map[string]bool{"force": true}},
		{name: "a lone dash is positional", args: []string{"-"}, want: name,
			pos: []string{"-"}},
		{name: "unknown flag after the name", args: []string{"a", "--bogus"}, want: name, valueFlags: url,
			err: "device add: unknown flag --bogus"},
		{name: "flag the command does not take", args: []string{"a", "--force"}, want: name, valueFlags: url,
			err: "unknown flag --force"},
		{name: "bool given a value", args: []string{"a", "--force=yes"}, want: name, boolFlags: force,
			err: "unknown flag --force=yes"},
		{name: "unknown flag before the name", args: []string{"--bogus", "a"}, want: name, valueFlags: url,
			err: "bogus"},
		{name: "value missing", args: []string{"a", "--url"}, want: name, valueFlags: url,
			err: "flag --url needs a value"},
		{name: "name missing", args: []string{"--url", "u"}, want: name, valueFlags: url,
			err: "device add takes 1 argument(s): NAME"},
		{name: "too many", args: []string{"a", "b"}, want: name,
			err: "device add takes 1 argument(s): NAME"},
		{name: "none wanted", args: []string{"a"},
			err: "device add takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsed(t, tt.args, tt.want, tt.valueFlags, tt.boolFlags)
			if tt.err != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseArgs(%q) = %v, want a usage error containing %q", tt.args, err, tt.err)
				}
				if code := exitCode(err); code != exitUsage {
					t.Errorf("exitCode = %d, want %d", code, exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.args, err)
			}
			if !reflect.DeepEqual(got.pos, tt.pos) {
				t.Errorf("pos = %q, want %q", got.pos, tt.pos)
			}
			if tt.vals == nil {
				tt.vals = map[string]string{}
			}
			if tt.bools == nil {
				tt.bools = map[string]bool{}
			}
			if !reflect.DeepEqual(got.vals, tt.vals) {
				t.Errorf("vals = %v, want %v", got.vals, tt.vals)
			}
			if !reflect.DeepEqual(got.bools, tt.bools) {
				t.Errorf("bools = %v, want %v", got.bools, tt.bools)
			}
		})
	}
}

// The real application, for what needs no database: the command line's
// mistakes are usage errors, a missing config file is not the database's
// fault, and a database that refuses connections is.
func TestAppExitCodes(t *testing.T) {
	for _, v := range []string{"GITMESH_CONFIG", "GITMESH_DATABASE_URL", "GITMESH_DEVICE", "GITMESH_REPO_ROOT",
		"GITMESH_LOG_FILE", "GITMESH_CLUSTER_KEY", "GITMESH_KNOWN_HOSTS", "GITMESH_LOCK_TIMEOUT",
		"GITMESH_FETCH_TIMEOUT", "GITMESH_CONNECT_TIMEOUT", "GITMESH_RECORD_TIMEOUT", "GITMESH_MAX_USER_SESSIONS",
		"GITMESH_MAX_PUSH_WAITERS", "GITMESH_PUSH_TIMEOUT", "GITMESH_PUSH_IDLE_TIMEOUT", "GITMESH_KEYS_DATABASE_URL",
		"GITMESH_MAX_PUSH_BYTES", "GITMESH_MAX_PUSH_REFS", "GITMESH_LOG_RETENTION"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	refused := closedPort(t)
	badTOML := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(badTOML, []byte("max_user_sessions = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		has  string
		env  []string
	}{
		{"no command", []string{}, 2, "no command given", nil},
		{"frobnicate", []string{"frobnicate"}, 2, `unknown command "frobnicate"`, nil},
		{"--bogus status", []string{"--bogus", "status"}, 2, "bogus", nil},
		{"device", []string{"device"}, 2, "device needs one of: add, remove, list", nil},
		{"device frob", []string{"device", "frob"}, 2, `unknown command "frob"`, nil},
		{"device add --bogus a", []string{"device", "add", "--bogus", "a"}, 2, "bogus", nil},
		{"--lock-timeout soon status", []string{"--lock-timeout", "soon", "status"}, 2, "soon", nil},
		{"--max-user-sessions 0 status", []string{"--max-user-sessions", "0", "status"}, 2, "max_user_sessions must be a number from 1", nil},
		{"--max-push-waiters -1 status", []string{"--max-push-waiters", "-1", "status"}, 2, "max_push_waiters must be a number from 0", nil},
		{"--push-idle-timeout 0s status", []string{"--push-idle-timeout", "0s", "status"}, 2, "push_idle_timeout must be at least 1s", nil},
		{"--max-push-bytes 10 status", []string{"--max-push-bytes", "10", "status"}, 2, "max_push_bytes must be at least 1048576", nil},
		{"--max-push-refs 0 status", []string{"--max-push-refs", "0", "status"}, 2, "max_push_refs must be a number from 1 up", nil},
		{"status", []string{"status"}, 1, "no database configured", nil},
		{"no database names the ways to give one", []string{"status"}, 1, "database_url in the settings file given with --config (or GITMESH_CONFIG), or give --database-url or GITMESH_DATABASE_URL", nil},
		{"status --config F", []string{"status", "--config", "F"}, 2,
			"flag --config is a global flag: put it before the subcommand: gitmesh --config F status", nil},
		{"repo create --config=F x", []string{"repo", "create", "--config=F", "x"}, 2,
			"flag --config is a global flag: put it before the subcommand: gitmesh --config F repo create x", nil},
		{"repo create x --device b", []string{"repo", "create", "x", "--device", "b"}, 2,
			"flag --device is a global flag: put it before the subcommand: gitmesh --device b repo create x", nil},
		{"status x --json --lock-timeout 3s", []string{"status", "x", "--json", "--lock-timeout", "3s"}, 2,
			"put it before the subcommand: gitmesh --lock-timeout 3s status x --json", nil},
		{"a database URL after the subcommand is not echoed", []string{"status", "--database-url", "postgres://u:secret@h/db"}, 2,
			"put it before the subcommand: gitmesh --database-url URL status", nil},
		{"an unknown flag is still unknown", []string{"status", "--bogus"}, 2, "flag provided but not defined: -bogus", nil},
		{"serve without a user", []string{"serve"}, 2, "serve needs the name of the user whose key runs it (gitmesh serve USER, as authorized_keys runs it), or --cluster", nil},
		{"serve with two words", []string{"serve", "alice", "--cluster"}, 2, "serve takes exactly one user name, not 2 words: gitmesh serve USER", nil},
		{"serve alice bob", []string{"serve", "alice", "bob"}, 2, "serve takes exactly one user name, not 2 words: gitmesh serve USER, as authorized_keys runs it for that user's key (or gitmesh serve --cluster)", nil},
		{"a misspelt command", []string{"stauts"}, 2, `unknown command "stauts"; did you mean 'gitmesh status'?`, nil},
		{"a URL whose port is not a number", []string{"--database-url", "postgres://gitmesh:pw@127.0.0.1:notaport/gitmesh", "device", "list"}, 1,
			"the port after the host is not a number from 1 to 65535", nil},
		{"a MySQL URL", []string{"--database-url", "mysql://gitmesh:pw@127.0.0.1/gitmesh", "device", "list"}, 1,
			"it is a mysql:// URL, and gitmesh needs PostgreSQL", nil},
		{"sync without a repo root", []string{"--database-url", "postgres://gitmesh@" + refused + "/gitmesh", "--device", "a", "sync"}, 1,
			"no repo root configured: set repo_root in the settings file given with --config (or GITMESH_CONFIG), or give --repo-root or GITMESH_REPO_ROOT", nil},
		{"config file missing", []string{"--config", filepath.Join(t.TempDir(), "absent.toml"), "status"}, 1, "absent.toml", nil},
		{"database refuses connections", []string{"--database-url", "postgres://gitmesh@" + refused + "/gitmesh?sslmode=disable", "--connect-timeout", "5s", "device", "list"},
			1, "database is unreachable: nothing accepts connections at its address", nil}, // a setting to check: never reached
		// A bad setting in the file or the environment is configuration
		// (exit 1); the same on the command line is a usage error (exit 2).
		{"max_user_sessions = 0 in the file", []string{"--config", badTOML, "status"}, 1, "max_user_sessions must be a number from 1", nil},
		{"GITMESH_MAX_USER_SESSIONS=0", []string{"status"}, 1, "max_user_sessions must be a number from 1", []string{"GITMESH_MAX_USER_SESSIONS=0"}},
		{"GITMESH_PUSH_IDLE_TIMEOUT=0s", []string{"status"}, 1, "push_idle_timeout must be at least 1s", []string{"GITMESH_PUSH_IDLE_TIMEOUT=0s"}},
		{"GITMESH_WRITE_QUORUM=most", []string{"status"}, 1, "write_quorum must be", []string{"GITMESH_WRITE_QUORUM=most"}},
		{"GITMESH_PUSH_TIMEOUT=soon", []string{"status"}, 1, "GITMESH_PUSH_TIMEOUT", []string{"GITMESH_PUSH_TIMEOUT=soon"}},
		{"GITMESH_MAX_PUSH_WAITERS=x", []string{"status"}, 1, "GITMESH_MAX_PUSH_WAITERS", []string{"GITMESH_MAX_PUSH_WAITERS=x"}},
		{"a flag wins over a bad environment", []string{"--max-user-sessions", "0", "status"}, 2, "max_user_sessions must be a number from 1", []string{"GITMESH_MAX_USER_SESSIONS=5"}},
		{"the environment under a good flag is not read", []string{"--max-user-sessions", "3", "status"}, 1, "no database configured", []string{"GITMESH_MAX_USER_SESSIONS=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kv := range tt.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			a := &app{}
			err := a.runQuiet(append([]string{"gitmesh"}, tt.args...))
			if code := exitCode(err); code != tt.code {
				t.Errorf("exit code %d (%v), want %d", code, err, tt.code)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if msg := message(err); !strings.Contains(msg, tt.has) {
				t.Errorf("message %q, want it to contain %q", msg, tt.has)
			}
		})
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// runQuiet is run with the output discarded.
func (a *app) runQuiet(args []string) error {
	a.argv = args
	c := a.cli()
	c.Writer, c.ErrWriter = io.Discard, io.Discard
	return c.Run(args)
}
