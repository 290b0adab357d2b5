// Package cli is gitmesh's command line: flags, settings, the logger and
// one file per command family (cmd_*.go). Each action is short wiring that
// calls into a package; no algorithm lives here. It decides what a user sees
// (one sentence, a documented exit code) from the errors packages return.
// Nothing imports it but the root main.go.
package cli

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"gitmesh/access"
	"gitmesh/config"
	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/guard"
	"gitmesh/httpgit"
	"gitmesh/lock"
	"gitmesh/serve"
	"gitmesh/version"
)

// Exit codes, documented in the README; stable.
const (
	exitOK          = 0
	exitError       = 1 // anything unexpected, bad configuration
	exitUsage       = 2 // bad command line or SSH_ORIGINAL_COMMAND
	exitNotFound    = 3 // unknown repository, or no access to it
	exitFrozen      = 4 // repository frozen for writes
	exitBusy        = 5 // a lock wait reached its limit
	exitUnavailable = 6 // database or every up-to-date peer unreachable
	exitNotRecorded = 7 // push ran but its version could not be recorded
	exitNoQuorum    = 8 // push refused: fewer devices than the write quorum could store it
	exitPushStopped = 9 // push stopped at push_timeout or push_idle_timeout
)

// app carries what every action needs: settings, logger and output.
type app struct {
	settings config.Settings
	log      zerolog.Logger
	logFile  io.Closer
	// dsns are the database URLs seen so far, removed from every message.
	dsns []string
	// argv is the command line run was given.
	argv []string
	// servingUser: this is `serve USER`, whose stderr a key holder reads.
	servingUser bool
	loaded      bool
	// syslogPath is the socket toSyslog logs to; "": /dev/log (tests
	// give a socket of their own).
	syslogPath string
	// httpDoor: this is http-backend or http-auth, whose stdout is an
	// HTTP answer; httpAnswered: one was written.
	httpDoor, httpAnswered bool
}

// Umask is the file mode creation mask of every gitmesh process and the
// git it runs: copies, logs, sockets and stages are the git account's
// and its group's (read only), never other local accounts'.
const Umask = 0o027

// Main runs gitmesh with os.Args and exits with its documented code.
func Main() {
	growStack()
	syscall.Umask(Umask)
	closeInherited()
	a := &app{}
	os.Exit(a.run(os.Args))
}

// growStack grows the main goroutine's stack to 32 KiB at once, while it
// holds one frame: it starts at 8 KiB and the command line, the settings
// and the database driver would grow it step by step, each step copying
// every frame and reading their stack maps (6.7% of the CPU of a serve
// answering a read; 3.6% with this).
//
//go:noinline
func growStack() {
	var b [32 << 10]byte
	stackSink = b[len(b)-1-int(stackSink)]
}

// stackSink keeps growStack's array from being optimised away.
var stackSink byte

// closeInherited marks every descriptor gitmesh inherited beyond stdin,
// stdout and stderr close-on-exec: fcgiwrap hands its FastCGI connection
// to its CGI as fd 3, and a detached converge that kept it would hold the
// web server's socket (and its port) long after the request.
func closeInherited() {
	// One close_range(2) call (Linux 5.11 and later) where the kernel has
	// it: reading /proc/self/fd costs every serve a tenth of a millisecond.
	if unix.CloseRange(3, ^uint(0), closeRangeCloexec) == nil {
		return
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// closeRangeCloexec is close_range(2)'s CLOSE_RANGE_CLOEXEC flag: mark
// the descriptors close-on-exec instead of closing them.
const closeRangeCloexec = 1 << 2

// run runs gitmesh with args and returns its exit code, having told the
// user and the log why it failed.
func (a *app) run(args []string) int {
	a.argv = args
	err := a.cli().Run(args)
	code := exitCode(err)
	var gitExit *gitexec.ExitError
	if err != nil && a.httpDoor && !a.httpAnswered {
		// Failed before its action (settings): the web server still gets an answer.
		httpgit.NewResponse(os.Stdout).Fail(httpStatus(err), a.httpMessage(err))
	}
	if err != nil && !errors.As(err, &gitExit) && err.Error() != "" { // "": said on stdout already (check)
		inProtocol := a.servingUser && !a.httpDoor && serve.InProtocol(err)
		if inProtocol {
			err = errors.Unwrap(err) // the refusal itself, as message knows it
		}
		msg := a.userMessage(err)
		if a.httpDoor {
			msg = a.httpMessage(err) // stderr is the web server's log
		}
		msg = "gitmesh: " + db.Redact(msg, a.dsns...)
		if inProtocol {
			// A git client's request, stdout still untouched: say it in
			// the protocol too, for clients that drop ssh's stderr (JGit).
			gitexec.Refuse(os.Stdout, os.Stderr, msg)
		} else {
			fmt.Fprintln(os.Stderr, msg)
		}
		if a.logFile == nil && isServe(args) {
			a.toSyslog() // settings that failed to load opened no log
		}
		a.log.Error().Err(err).Int("exit", code).Msg("failed")
	}
	if a.logFile != nil {
		a.logFile.Close()
	}
	return code
}

// isServe: the command line runs serve (its first word after the global
// flags, which are followed by their values).
func isServe(args []string) bool {
	for i := 1; i < len(args); i++ {
		w := args[i]
		if !strings.HasPrefix(w, "-") {
			return w == "serve"
		}
		if _, ok := isGlobalFlag(w); ok && !strings.Contains(w, "=") {
			i++ // its value: every global flag takes one
		}
	}
	return false
}

// toSyslog makes serve's log, when no log_file is set, go to the system
// log (journald or syslogd, through /dev/log) from warnings up: sshd runs
// serve, so a bad setting must leave a trace an administrator can find.
// Without a system log nothing is logged, as before.
func (a *app) toSyslog() {
	if a.logFile != nil {
		return
	}
	path := a.syslogPath
	if path == "" {
		path = devLog
	}
	w, err := dialSysLog(path)
	if err != nil {
		return
	}
	a.logFile = w
	a.log = zerolog.New(db.RedactWriter(w, a.dsns...)).Level(zerolog.WarnLevel).
		With().Int("pid", os.Getpid()).Str("device", a.settings.Device).Logger()
}

func (a *app) cli() *cli.App {
	return &cli.App{
		Name:           "gitmesh",
		Usage:          "make several git hosts one multi-master cluster behind OpenSSH",
		Flags:          settingFlags(),
		Before:         a.checkBefore, // a.load; check makes a failure UNKNOWN
		Writer:         os.Stdout,
		ErrWriter:      os.Stderr,
		Version:        buildVersion(),
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			if strings.Contains(err.Error(), "from environment variable") {
				return err // a bad GITMESH_* value is configuration, as in the file: exit 1
			}
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return unknownCommand(c.App.Commands, c.Args().First())
			}
			return usageError{errors.New("no command given; run 'gitmesh help' for the list")}
		},
		Commands: a.commands(),
	}
}

// registry holds subcommands defined in other files of package main
// (cmd_*.go), each registered from an init function.
var registry []func(*app) *cli.Command

func register(f func(*app) *cli.Command) { registry = append(registry, f) }

func (a *app) commands() []*cli.Command {
	cmds := []*cli.Command{
		a.migrateCommand(), a.deviceCommand(), a.repoCommand(), a.userCommand(),
		a.serveCommand(), a.statusCommand(),
	}
	for _, f := range registry {
		cmds = append(cmds, f(a))
	}
	for _, c := range cmds {
		usageErrors(c)
	}
	return cmds
}

// unknownCommand says that word names no command, and which one it most
// likely misspells ("gitmesh stauts": did you mean 'gitmesh status'?).
func unknownCommand(cmds []*cli.Command, word string) error {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	if near := config.Closest(word, names); near != "" {
		return usageError{fmt.Errorf("unknown command %q; did you mean 'gitmesh %s'? 'gitmesh help' lists them all", word, near)}
	}
	return usageError{fmt.Errorf("unknown command %q; run 'gitmesh help' for the list", word)}
}

func settingFlags() []cli.Flag {
	def := config.Defaults() // shown in --help; applied by load, not by the flags
	return namedOnce([]cli.Flag{
		&cli.StringFlag{Name: "config", EnvVars: []string{"GITMESH_CONFIG"}, Usage: "TOML settings file"},
		&cli.StringFlag{Name: "database-url", EnvVars: []string{"GITMESH_DATABASE_URL"}, Usage: "PostgreSQL URL or DSN"},
		&cli.StringFlag{Name: "device", EnvVars: []string{"GITMESH_DEVICE"}, Usage: "this device's name"},
		&cli.StringFlag{Name: "repo-root", EnvVars: []string{"GITMESH_REPO_ROOT"}, Usage: "where this device keeps bare copies"},
		&cli.StringFlag{Name: "log-file", EnvVars: []string{"GITMESH_LOG_FILE"}, Usage: "JSON log file"},
		&cli.StringFlag{Name: "cluster-key", EnvVars: []string{"GITMESH_CLUSTER_KEY"}, Usage: "private key for fetches from peers"},
		&cli.StringFlag{Name: "known-hosts", EnvVars: []string{"GITMESH_KNOWN_HOSTS"}, Usage: "known_hosts file of the peers"},
		&cli.DurationFlag{Name: "lock-timeout", EnvVars: []string{"GITMESH_LOCK_TIMEOUT"}, Value: def.LockTimeout.D(), Usage: "longest wait for a lock"},
		&cli.DurationFlag{Name: "fetch-timeout", EnvVars: []string{"GITMESH_FETCH_TIMEOUT"}, Value: def.FetchTimeout.D(), Usage: "longest fetch from a peer"},
		&cli.DurationFlag{Name: "connect-timeout", EnvVars: []string{"GITMESH_CONNECT_TIMEOUT"}, Value: def.ConnectTimeout.D(), Usage: "longest connect to PostgreSQL or a peer"},
		&cli.DurationFlag{Name: "ssh-control-persist", EnvVars: []string{"GITMESH_SSH_CONTROL_PERSIST"}, Value: def.SSHControlPersist.D(), Usage: "how long a shared ssh connection to a peer stays open after its last use (0: no sharing)"},
		&cli.StringFlag{Name: "ssh-control-dir", EnvVars: []string{"GITMESH_SSH_CONTROL_DIR"}, Usage: "directory of this account's (mode 0700) for the shared ssh connections' sockets (default: $TMPDIR/gitmesh-ssh-UID)"},
		&cli.StringFlag{Name: "write-quorum", EnvVars: []string{"GITMESH_WRITE_QUORUM"}, Value: "majority", Usage: "devices that must hold a push before it is acknowledged: majority, or a number"},
		&cli.IntFlag{Name: "copies", EnvVars: []string{"GITMESH_COPIES"}, Value: def.Copies, Usage: "devices that hold a new repository (all of them when fewer are registered)"},
		&cli.DurationFlag{Name: "record-timeout", EnvVars: []string{"GITMESH_RECORD_TIMEOUT"}, Value: def.RecordTimeout.D(), Usage: "how long a push retries recording its version"},
		&cli.StringFlag{Name: "keys-database-url", EnvVars: []string{"GITMESH_KEYS_DATABASE_URL"}, Usage: "PostgreSQL URL for keys-command (default: --database-url)"},
		&cli.IntFlag{Name: "max-user-sessions", EnvVars: []string{"GITMESH_MAX_USER_SESSIONS"}, Value: def.MaxUserSessions, Usage: "pushes and waiting reads one user may have at once, cluster-wide"},
		&cli.IntFlag{Name: "max-push-waiters", EnvVars: []string{"GITMESH_MAX_PUSH_WAITERS"}, Value: def.MaxPushWaiters, Usage: "pushes that may wait for one repository's write lock"},
		&cli.DurationFlag{Name: "push-timeout", EnvVars: []string{"GITMESH_PUSH_TIMEOUT"}, Value: def.PushTimeout.D(), Usage: "longest push, from receive-pack's start"},
		&cli.DurationFlag{Name: "push-idle-timeout", EnvVars: []string{"GITMESH_PUSH_IDLE_TIMEOUT"}, Value: def.PushIdleTimeout.D(), Usage: "longest silence of a pushing client"},
		&cli.Int64Flag{Name: "max-push-bytes", EnvVars: []string{"GITMESH_MAX_PUSH_BYTES"}, Value: def.MaxPushBytes, Usage: "largest pack one push may send, in bytes (git's receive.maxInputSize)"},
		&cli.IntFlag{Name: "max-push-refs", EnvVars: []string{"GITMESH_MAX_PUSH_REFS"}, Value: def.MaxPushRefs, Usage: "most ref updates one push may hold"},
		&cli.DurationFlag{Name: "log-retention", EnvVars: []string{"GITMESH_LOG_RETENTION"}, Value: def.LogRetention.D(), Usage: "how long push_log, sync_log and push_attempts keep a row (0: forever)"},
		&cli.StringFlag{Name: "cluster-from", EnvVars: []string{"GITMESH_CLUSTER_FROM"}, Usage: "addresses the cluster key may log in from (sshd from= patterns, comma-separated)"},
		&cli.StringFlag{Name: "http-anonymous-user", EnvVars: []string{"GITMESH_HTTP_ANONYMOUS_USER"}, Usage: "the user an HTTP request without REMOTE_USER reads as (default: none, such requests get 401)"},
	})
}

// load reads the settings once: defaults, then the file, then environment
// and flags.
func (a *app) load(c *cli.Context) error {
	// A user's request passed on by another device (gitmesh-as, or
	// gitmesh-as-http) is answered as `serve USER` (or the HTTP door)
	// answers: the user reads it.
	cluster := c.Args().First() == "serve" && slices.Contains(c.Args().Slice(), "--cluster")
	passedOnHTTP := cluster && gitexec.IsPassedOnHTTP(os.Getenv("SSH_ORIGINAL_COMMAND"))
	a.servingUser = c.Args().First() == "serve" && (!cluster || gitexec.IsPassedOn(os.Getenv("SSH_ORIGINAL_COMMAND"))) ||
		c.Args().First() == "http-backend" || c.Args().First() == "http-auth" || passedOnHTTP
	a.httpDoor = c.Args().First() == "http-backend" || c.Args().First() == "http-auth" || passedOnHTTP
	a.dsns = []string{c.String("database-url"), os.Getenv("GITMESH_DATABASE_URL")}
	s := config.Defaults()
	if p := c.String("config"); p != "" {
		if err := config.LoadFile(&s, p); err != nil {
			return err
		}
	}
	// The environment is configuration, like the file: a bad value there
	// exits 1. A flag on the command line is the command line: exit 2.
	// Flags win over the environment, so they are applied second.
	onCmdline := a.commandLineFlags(c)
	isSet := setFlags(c)
	for _, cmdline := range []bool{false, true} {
		set := func(name string) bool { return isSet[name] && onCmdline[name] == cmdline }
		if err := applyFlags(c, &s, set); err != nil {
			if cmdline {
				return usageError{err}
			}
			return err
		}
	}
	if err := access.CheckFrom(s.ClusterFrom); err != nil {
		return err
	}
	a.settings = s
	a.dsns = append(a.dsns, s.DatabaseURL, s.KeysDatabaseURL)
	a.loaded = true
	a.log = zerolog.Nop()
	if s.LogFile != "" {
		f, err := os.OpenFile(s.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		a.logFile = f
		a.log = zerolog.New(db.RedactWriter(f, a.dsns...)).With().Timestamp().Int("pid", os.Getpid()).Str("device", s.Device).Logger()
	} else if c.Args().First() == "serve" {
		a.toSyslog()
	}
	return nil
}

// setFlags names the global flags set on the command line or through
// their environment variables: what c.IsSet says, worked out in one pass.
// c.IsSet of a flag that is not set walks every flag's names through a
// regular expression (urfave/cli), and load asks for every flag twice:
// that was a tenth of the CPU time of a `serve` that answers a read.
func setFlags(c *cli.Context) map[string]bool {
	set := map[string]bool{}
	for _, name := range c.FlagNames() { // the command line's
		set[name] = true
	}
	for _, f := range c.App.Flags {
		if f.IsSet() { // from its environment variable
			for _, name := range f.Names() {
				set[name] = true
			}
		}
	}
	return set
}

// applyFlags sets s from the flags and environment variables set
// selects, then checks the limits.
func applyFlags(c *cli.Context, s *config.Settings, set func(string) bool) error {
	for name, dst := range map[string]*string{"database-url": &s.DatabaseURL, "device": &s.Device,
		"repo-root": &s.RepoRoot, "log-file": &s.LogFile, "cluster-key": &s.ClusterKey, "known-hosts": &s.KnownHosts,
		"keys-database-url": &s.KeysDatabaseURL, "cluster-from": &s.ClusterFrom, "http-anonymous-user": &s.HTTPAnonymousUser,
		"ssh-control-dir": &s.SSHControlDir} {
		if set(name) {
			*dst = c.String(name)
		}
	}
	for name, dst := range map[string]*config.Duration{"lock-timeout": &s.LockTimeout, "fetch-timeout": &s.FetchTimeout,
		"connect-timeout": &s.ConnectTimeout, "record-timeout": &s.RecordTimeout,
		"push-timeout": &s.PushTimeout, "push-idle-timeout": &s.PushIdleTimeout, "ssh-control-persist": &s.SSHControlPersist,
		"log-retention": &s.LogRetention} {
		if set(name) {
			*dst = config.Duration(c.Duration(name))
		}
	}
	if set("write-quorum") {
		q, err := config.ParseQuorum(c.String("write-quorum"))
		if err != nil {
			return err
		}
		s.WriteQuorum = q
	}
	for name, dst := range map[string]*int{"max-user-sessions": &s.MaxUserSessions, "max-push-waiters": &s.MaxPushWaiters,
		"max-push-refs": &s.MaxPushRefs, "copies": &s.Copies} {
		if set(name) {
			*dst = c.Int(name)
		}
	}
	if set("max-push-bytes") {
		s.MaxPushBytes = c.Int64("max-push-bytes")
	}
	return s.CheckLimits()
}

// commandLineFlags names the global flags given on the command line
// (before the subcommand), as opposed to through the environment.
func (a *app) commandLineFlags(c *cli.Context) map[string]bool {
	m := map[string]bool{}
	if len(a.argv) == 0 || c.NArg() > len(a.argv)-1 {
		return m
	}
	for _, arg := range a.argv[1 : len(a.argv)-c.NArg()] {
		if name, ok := strings.CutPrefix(arg, "-"); ok {
			name, _, _ = strings.Cut(strings.TrimPrefix(name, "-"), "=")
			m[name] = true
		}
	}
	return m
}

// openDB opens the database for an admin command.
func (a *app) openDB(op string) (*sql.DB, error) {
	if err := a.settings.NeedDatabase(); err != nil {
		return nil, err
	}
	return db.Open(a.settings.DatabaseURL, db.AppName(op, "", "", ""), a.settings.ConnectTimeout.D())
}

// withDB runs f with an open database and closes it after.
func (a *app) withDB(op string, f func(c *cli.Context, d *sql.DB) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := misplacedGlobalFlag(c); err != nil {
			return err
		}
		d, err := a.openDB(op)
		if err != nil {
			return err
		}
		defer d.Close()
		if !unbounded[op] {
			// Only database statements: the whole command is bounded like
			// one lock step, so a database that stops answering or
			// committing never holds it.
			bound := a.settings.LockTimeout.D() + a.settings.ConnectTimeout.D()
			ctx, cancel := db.Bound(c.Context, bound)
			defer cancel()
			c.Context = ctx
			err := f(c, d)
			if stall := db.Stalled(ctx, op, bound); stall != nil {
				// Whatever it printed: a commit cancelled at the bound may
				// have been applied, or not.
				return fmt.Errorf("%w; what it changed may or may not have been applied", stall)
			}
			return err
		}
		return f(c, d)
	}
}

// unbounded are the commands whose work is more than database steps
// (git, a follow loop, migrations that take what they take); each of
// their steps is bounded on its own.
var unbounded = map[string]bool{"migrate": true, "sync": true, "gc": true, "replicate": true, "converge": true,
	"thaw": true, "verify": true}

// args checks the number of positional arguments.
func args(c *cli.Context, names ...string) ([]string, error) {
	if c.NArg() != len(names) {
		return nil, wrongArgs(c, names)
	}
	return c.Args().Slice(), nil
}

// usageError marks a bad command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var (
		frozen  *version.FrozenError
		quorum  *version.QuorumError
		noPeer  *version.NoPeerError
		usage   usageError
		exit    cli.ExitCoder
		gitExit *gitexec.ExitError
		// A reader's push: the same code as no access, with its own sentence.
		readOnly *access.ReadOnlyError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.Is(err, gitexec.ErrBadCommand), errors.Is(err, gitexec.ErrBadName),
		errors.Is(err, access.ErrInvalid):
		return exitUsage
	case errors.Is(err, version.ErrNotFound), errors.As(err, &readOnly):
		return exitNotFound
	case errors.As(err, &frozen):
		return exitFrozen
	case errors.Is(err, lock.ErrTimeout), errors.Is(err, lock.ErrFull):
		return exitBusy
	case errors.Is(err, guard.ErrTimeout):
		return exitPushStopped
	case errors.Is(err, version.ErrLostWrite):
		return exitNotRecorded
	case errors.As(err, &quorum):
		return exitNoQuorum
	case errors.As(err, &noPeer), db.IsUnavailable(err):
		return exitUnavailable
	case errors.As(err, &gitExit):
		return gitExit.Code
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	return exitError
}

// userMessage is message, but for `serve USER` only what a key holder
// may read: no server path, address or setting (the log has those).
func (a *app) userMessage(err error) string {
	var usage usageError
	switch {
	case !a.servingUser:
		return message(err)
	case !a.loaded:
		return serve.Misconfigured(a.settings.Device)
	case errors.As(err, &usage):
		return message(err) // serve's own command line, set by the administrator
	}
	if m := serve.Message(err, a.settings.Device); m != "" {
		return m
	}
	return message(err)
}

// message is the one sentence the user sees for err.
func message(err error) string {
	var te *lock.TimeoutError
	switch {
	case err == version.ErrNotFound: // serve's answer; admin commands say more
		return "repository not found, or you do not have access to it"
	case errors.As(err, &te):
		msg := fmt.Sprintf("gave up waiting for the %s after %s", te.Key.Describe(), te.Waited.Round(time.Second))
		if te.Holder != nil {
			msg += fmt.Sprintf("; it is held by %q", te.Holder.Application)
		}
		return msg + "; try again later"
	case errors.Is(err, version.ErrNoVersions):
		return "no device holds a recorded version of this repository (ambiguous leaders); an administrator must promote the right copy with 'gitmesh thaw REPO --promote DEVICE'"
	case errors.As(err, new(*db.SettingError)), errors.Is(err, db.ErrMultiHostURL):
		return oneLine(err.Error())
	case db.IsNoSchema(err):
		return db.ErrNoSchema.Error()
	case errors.Is(err, db.ErrNoPrimary):
		return oneLine(err.Error()) + "; try again later, and check that " + db.Setting + " lists the primary"
	case errors.As(err, new(*db.StallError)):
		return oneLine(err.Error()) + "; try again later"
	case errors.Is(err, pq.ErrSSLNotSupported):
		return oneLine(err.Error()) + "; add sslmode=disable to the database URL, or enable SSL on the PostgreSQL server"
	case db.IsUnavailable(err) && !isNoPeer(err):
		return "the coordination database is unreachable (" + oneLine(err.Error()) + "); try again later"
	}
	return oneLine(err.Error())
}

func isNoPeer(err error) bool {
	var noPeer *version.NoPeerError
	return errors.As(err, &noPeer)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
