// Command gitmesh makes several plain git hosts behave as one multi-master
// cluster behind OpenSSH. See README.md.
package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"gitmesh/access"
	"gitmesh/admin"
	"gitmesh/config"
	"gitmesh/db"
	"gitmesh/gitexec"
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
)

// app carries what every action needs: settings, logger and output.
type app struct {
	settings config.Settings
	log      zerolog.Logger
	logFile  io.Closer
}

func main() {
	a := &app{}
	err := a.cli().Run(os.Args)
	code := exitCode(err)
	var gitExit *gitexec.ExitError
	if err != nil && !errors.As(err, &gitExit) {
		fmt.Fprintf(os.Stderr, "gitmesh: %s\n", message(err))
		a.log.Error().Err(err).Int("exit", code).Msg("failed")
	}
	if a.logFile != nil {
		a.logFile.Close()
	}
	os.Exit(code)
}

func (a *app) cli() *cli.App {
	return &cli.App{
		Name:           "gitmesh",
		Usage:          "make several git hosts one multi-master cluster behind OpenSSH",
		Flags:          settingFlags(),
		Before:         a.load,
		Writer:         os.Stdout,
		ErrWriter:      os.Stderr,
		Version:        buildVersion(),
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{fmt.Errorf("unknown command %q; run 'gitmesh help' for the list", c.Args().First())}
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

func settingFlags() []cli.Flag {
	def := config.Defaults() // shown in --help; applied by load, not by the flags
	return []cli.Flag{
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
		&cli.DurationFlag{Name: "record-timeout", EnvVars: []string{"GITMESH_RECORD_TIMEOUT"}, Value: def.RecordTimeout.D(), Usage: "how long a push retries recording its version"},
	}
}

// load reads the settings once: defaults, then the file, then environment
// and flags.
func (a *app) load(c *cli.Context) error {
	s := config.Defaults()
	if p := c.String("config"); p != "" {
		if err := config.LoadFile(&s, p); err != nil {
			return err
		}
	}
	for name, dst := range map[string]*string{"database-url": &s.DatabaseURL, "device": &s.Device,
		"repo-root": &s.RepoRoot, "log-file": &s.LogFile, "cluster-key": &s.ClusterKey, "known-hosts": &s.KnownHosts} {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	for name, dst := range map[string]*config.Duration{"lock-timeout": &s.LockTimeout, "fetch-timeout": &s.FetchTimeout,
		"connect-timeout": &s.ConnectTimeout, "record-timeout": &s.RecordTimeout} {
		if c.IsSet(name) {
			*dst = config.Duration(c.Duration(name))
		}
	}
	a.settings = s
	a.log = zerolog.Nop()
	if s.LogFile != "" {
		f, err := os.OpenFile(s.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		a.logFile = f
		a.log = zerolog.New(f).With().Timestamp().Int("pid", os.Getpid()).Str("device", s.Device).Logger()
	}
	return nil
}

// openDB opens the database for an admin command.
func (a *app) openDB(op string) (*sql.DB, error) {
	if err := a.settings.NeedDatabase(); err != nil {
		return nil, err
	}
	return db.Open(a.settings.DatabaseURL, fmt.Sprintf("gitmesh %s %d", op, os.Getpid()), a.settings.ConnectTimeout.D())
}

// withDB runs f with an open database and closes it after.
func (a *app) withDB(op string, f func(c *cli.Context, d *sql.DB) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		d, err := a.openDB(op)
		if err != nil {
			return err
		}
		defer d.Close()
		return f(c, d)
	}
}

// args checks the number of positional arguments.
func args(c *cli.Context, names ...string) ([]string, error) {
	if c.NArg() != len(names) {
		return nil, wrongArgs(c, names)
	}
	return c.Args().Slice(), nil
}

func (a *app) migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "create or update the database schema",
		Action: a.withDB("migrate", func(c *cli.Context, d *sql.DB) error {
			if _, err := args(c); err != nil {
				return err
			}
			applied, err := db.Migrate(c.Context, d, a.settings.LockTimeout.D())
			for _, n := range applied {
				fmt.Fprintf(c.App.Writer, "applied %s\n", n)
			}
			return err
		}),
	}
}

func (a *app) deviceCommand() *cli.Command {
	return &cli.Command{
		Name:  "device",
		Usage: "manage devices",
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "register a device", ArgsUsage: "NAME",
				Flags: []cli.Flag{&cli.StringFlag{Name: "url", Usage: "ssh://USER@HOST[:PORT] or a local path peers fetch from"}},
				Action: a.withDB("device-add", func(c *cli.Context, d *sql.DB) error {
					v, err := parseArgs(c, []string{"NAME"}, []string{"url"}, nil)
					if err != nil {
						return err
					}
					if v.vals["url"] == "" {
						return usageError{errors.New("device add needs --url URL: where peers fetch this device's copies from")}
					}
					return admin.AddDevice(c.Context, d, v.pos[0], v.vals["url"])
				}),
			},
			{
				Name: "remove", Usage: "forget a device and its recorded copies", ArgsUsage: "NAME [--force]",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Usage: "even if it holds the only newest copy of a repository"}},
				Action: a.withDB("device-remove", func(c *cli.Context, d *sql.DB) error {
					v, err := parseArgs(c, []string{"NAME"}, nil, []string{"force"})
					if err != nil {
						return err
					}
					return admin.RemoveDevice(c.Context, d, v.pos[0], v.bools["force"])
				}),
			},
			{
				Name: "list", Usage: "list devices",
				Action: a.withDB("device-list", func(c *cli.Context, d *sql.DB) error {
					if _, err := args(c); err != nil {
						return err
					}
					devs, err := admin.Devices(c.Context, d)
					for _, dev := range devs {
						fmt.Fprintf(c.App.Writer, "%s\t%s\n", dev.Name, dev.URL)
					}
					return err
				}),
			},
		},
	}
}

func (a *app) repoCommand() *cli.Command {
	return &cli.Command{
		Name:  "repo",
		Usage: "manage repositories",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a repository on this device", ArgsUsage: "NAME",
				Action: a.withDB("repo-create", func(c *cli.Context, d *sql.DB) error {
					v, err := args(c, "NAME")
					if err != nil {
						return err
					}
					if err := a.settings.NeedDevice(); err != nil {
						return err
					}
					name, err := gitexec.NameFromPath(v[0])
					if err != nil {
						return err
					}
					return admin.CreateRepo(c.Context, d, serve.Git(a.settings), a.settings.RepoRoot, a.settings.Device, name)
				}),
			},
			{
				Name: "list", Usage: "list repositories",
				Action: a.withDB("repo-list", func(c *cli.Context, d *sql.DB) error {
					if _, err := args(c); err != nil {
						return err
					}
					names, err := admin.Repos(c.Context, d)
					for _, n := range names {
						fmt.Fprintln(c.App.Writer, n)
					}
					return err
				}),
			},
		},
	}
}

func (a *app) userCommand() *cli.Command {
	return &cli.Command{
		Name:  "user",
		Usage: "manage users",
		Subcommands: []*cli.Command{{
			Name: "add", Usage: "create a user (no access until granted)", ArgsUsage: "NAME",
			Action: a.withDB("user-add", func(c *cli.Context, d *sql.DB) error {
				v, err := args(c, "NAME")
				if err != nil {
					return err
				}
				return access.AddUser(c.Context, d, v[0])
			}),
		}, {
			Name: "list", Usage: "list users",
			Action: a.withDB("user-list", func(c *cli.Context, d *sql.DB) error {
				if _, err := args(c); err != nil {
					return err
				}
				names, err := access.Users(c.Context, d)
				for _, n := range names {
					fmt.Fprintln(c.App.Writer, n)
				}
				return err
			}),
		}, {
			Name: "remove", Usage: "delete a user with its keys, grants and group memberships", ArgsUsage: "NAME",
			Action: a.withDB("user-remove", func(c *cli.Context, d *sql.DB) error {
				v, err := args(c, "NAME")
				if err != nil {
					return err
				}
				return access.RemoveUser(c.Context, d, v[0])
			}),
		}},
	}
}

func (a *app) serveCommand() *cli.Command {
	return &cli.Command{
		Name: "serve", Usage: "the authorized_keys forced command", ArgsUsage: "USER",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "cluster", Usage: "serve a peer device: git-upload-pack only, no checks"}},
		Action: func(c *cli.Context) error {
			conn := serve.Conn{Original: os.Getenv("SSH_ORIGINAL_COMMAND"), Environ: os.Environ(), Log: a.log, Tell: tell}
			if c.Bool("cluster") {
				if _, err := args(c); err != nil {
					return err
				}
				return serve.Cluster(a.settings, conn)
			}
			v, err := args(c, "USER")
			if err != nil {
				return err
			}
			conn.User = v[0]
			return serve.User(c.Context, a.settings, conn)
		},
	}
}

// tell writes one sentence for the user on stderr (never stdout in serve).
func tell(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gitmesh: "+format+"\n", args...)
}

func (a *app) statusCommand() *cli.Command {
	return &cli.Command{
		Name: "status", Usage: "show each device's version of each repository", ArgsUsage: "[REPO]",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array"}},
		Action: a.withDB("status", func(c *cli.Context, d *sql.DB) error {
			want := []string{"REPO"}
			if c.NArg() == 0 || c.NArg() == 1 && strings.HasPrefix(c.Args().First(), "-") {
				want = nil
			}
			v, err := parseArgs(c, want, nil, []string{"json"})
			if err != nil {
				return err
			}
			repo := ""
			if len(v.pos) == 1 {
				repo = strings.TrimSuffix(strings.TrimPrefix(v.pos[0], "/"), ".git")
			}
			rows, err := admin.Status(c.Context, d, repo)
			if err != nil {
				return err
			}
			if v.bools["json"] {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			locks, err := admin.Locks(c.Context, d)
			if err != nil {
				return err
			}
			printStatus(c.App.Writer, rows, locks)
			return nil
		}),
	}
}

func printStatus(w io.Writer, rows []admin.CopyStatus, locks []admin.LockHolder) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tDEVICE\tVERSION\tLAG\tWRITING")
	for _, r := range rows {
		writing := "no"
		if r.IsWriting {
			writing = "FROZEN"
			if r.Writer != nil {
				writing = fmt.Sprintf("FROZEN: push by %s since %s", r.Writer.User, r.Writer.Started.UTC().Format(time.RFC3339))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", r.Repository, r.Device, r.Version, r.Lag, writing)
	}
	tw.Flush()
	for _, l := range locks {
		state := "holds"
		if !l.Granted {
			state = "waits for"
		}
		fmt.Fprintf(w, "lock: %q (backend %d) %s a lock since %s\n", l.Application, l.PID, state, l.Since.UTC().Format(time.RFC3339))
	}
}

// buildVersion is the module version and VCS revision the binary was built from.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, kv := range info.Settings {
		if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
			v += " " + kv.Value[:12]
		}
	}
	return v
}

// usageError marks a bad command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var (
		frozen  *version.FrozenError
		noPeer  *version.NoPeerError
		usage   usageError
		exit    cli.ExitCoder
		gitExit *gitexec.ExitError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.Is(err, gitexec.ErrBadCommand), errors.Is(err, gitexec.ErrBadName),
		errors.Is(err, access.ErrInvalid):
		return exitUsage
	case errors.Is(err, version.ErrNotFound):
		return exitNotFound
	case errors.As(err, &frozen):
		return exitFrozen
	case errors.Is(err, lock.ErrTimeout):
		return exitBusy
	case errors.Is(err, version.ErrLostWrite):
		return exitNotRecorded
	case errors.As(err, &noPeer), db.IsUnavailable(err):
		return exitUnavailable
	case errors.As(err, &gitExit):
		return gitExit.Code
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	return exitError
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
			msg += fmt.Sprintf("; it is held by %q since %s", te.Holder.Application, te.Holder.Since.UTC().Format(time.RFC3339))
		}
		return msg + "; try again later"
	case errors.Is(err, version.ErrNoVersions):
		return "no device holds a recorded version of this repository (ambiguous leaders); an administrator must promote the right copy with 'gitmesh thaw REPO --promote DEVICE'"
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
