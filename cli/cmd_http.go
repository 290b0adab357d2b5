package cli

import (
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"gitmesh/access"
	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/httpgit"
)

// The HTTP front door: the CGI program a web server runs per request,
// the Basic credentials check for nginx's auth_request, and the tokens
// that check reads.
func init() {
	register(func(a *app) *cli.Command { return a.httpBackendCommand() })
	register(func(a *app) *cli.Command { return a.httpAuthCommand() })
	register(func(a *app) *cli.Command { return a.tokenCommand() })
}

func (a *app) httpBackendCommand() *cli.Command {
	return &cli.Command{
		Name: "http-backend", Usage: "serve one smart HTTP request as a CGI program (the web server sets REMOTE_USER)",
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			return a.answerHTTP(c, httpgit.FromEnv(os.Environ()), false)
		},
	}
}

// answerHTTP answers one smart HTTP request on stdout: a web server's
// (CGI), or one a device holding no copy passed on (passedOn).
func (a *app) answerHTTP(c *cli.Context, cgi httpgit.CGI, passedOn bool) error {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	a.httpAnswered = true // from here on, by resp
	resp := httpgit.NewResponse(os.Stdout)
	err := httpgit.Serve(c.Context, a.settings, cgi, os.Stdin, resp,
		httpgit.Options{Log: a.log, Anonymous: a.settings.HTTPAnonymousUser, PassedOn: passedOn})
	if err != nil {
		httpgit.Refused(resp, httpStatus(err), a.httpMessage(err), err)
	}
	return err
}

// httpPassedOn answers a smart HTTP request that a device holding no copy
// passed on with the cluster key (gitmesh-as-http), as this device's HTTP
// door would: its whole answer goes back through the hop.
func (a *app) httpPassedOn(c *cli.Context, original string) error {
	cmd, err := gitexec.ParseClusterCommand(original)
	if err != nil {
		return err
	}
	return a.answerHTTP(c, httpgit.PassedOnCGI(cmd), true)
}

func (a *app) httpAuthCommand() *cli.Command {
	return &cli.Command{
		Name: "http-auth", Usage: "check HTTP Basic credentials against gitmesh's tokens (a CGI program for nginx's auth_request)",
		Action: func(c *cli.Context) error {
			if _, err := args(c); err != nil {
				return err
			}
			a.httpAnswered = true
			user, secret, ok := httpgit.Basic(os.Getenv("HTTP_AUTHORIZATION"))
			if ok {
				d, err := a.openDB("http-auth")
				if err == nil {
					defer d.Close()
					ok, err = access.CheckToken(c.Context, d, user, secret)
				}
				if err != nil {
					// nginx answers 500 to anything but 2xx, 401 and 403.
					httpgit.NewResponse(os.Stdout).Fail(httpStatus(err), a.httpMessage(err))
					return err
				}
			}
			if !ok {
				a.log.Info().Str("user", user).Msg("http-auth: refused")
				httpgit.Deny(os.Stdout)
				return nil
			}
			httpgit.Allow(os.Stdout, user)
			return nil
		},
	}
}

func (a *app) tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "manage users' HTTP tokens (for 'gitmesh http-auth')",
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "make a token for a user and print it (once: only its hash is kept)",
				ArgsUsage: "USER [--expires DURATION (30d, 12h; default: never)]",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "expires", Usage: "how long the token works (30d, 12h)"}},
				Action: a.withDB("token-add", func(c *cli.Context, d *sql.DB) error {
					v, err := parseArgs(c, []string{"USER"}, []string{"expires"}, nil)
					if err != nil {
						return err
					}
					var ttl time.Duration
					if e, ok := v.vals["expires"]; ok {
						if ttl, err = parseDays(e); err != nil {
							return usageError{err}
						}
					}
					id, secret, err := access.AddToken(c.Context, d, v.pos[0], ttl)
					if err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, secret)
					until := "until removed"
					if ttl > 0 {
						until = "until " + time.Now().Add(ttl).UTC().Format("2006-01-02 15:04 MST")
					}
					fmt.Fprintf(c.App.ErrWriter, "token %d for %s, valid %s; it is shown only now: use it as the password over HTTPS\n", id, v.pos[0], until)
					return nil
				}),
			},
			{
				Name: "list", Usage: "list tokens (never their secrets)",
				Action: a.withDB("token-list", func(c *cli.Context, d *sql.DB) error {
					if _, err := args(c); err != nil {
						return err
					}
					ts, err := access.Tokens(c.Context, d)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tUSER\tCREATED\tEXPIRES\tLAST USED")
					at := func(t *time.Time) string {
						if t == nil {
							return "-"
						}
						return t.UTC().Format("2006-01-02 15:04")
					}
					for _, t := range ts {
						exp := at(t.Expires)
						if t.Expires != nil && t.Expires.Before(time.Now()) {
							exp += " (expired)"
						}
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", t.ID, t.User, t.Created.UTC().Format("2006-01-02 15:04"), exp, at(t.LastUsed))
					}
					return tw.Flush()
				}),
			},
			{
				Name: "remove", Usage: "forget a token: it stops working at once", ArgsUsage: "ID (as 'token list' shows it)",
				Action: a.withDB("token-remove", func(c *cli.Context, d *sql.DB) error {
					v, err := args(c, "ID")
					if err != nil {
						return err
					}
					id, err := strconv.Atoi(v[0])
					if err != nil || id <= 0 {
						return usageError{fmt.Errorf("token id %q is not a number; 'gitmesh token list' shows the ids", v[0])}
					}
					if err := access.RemoveToken(c.Context, d, id); err != nil {
						if errors.Is(err, access.ErrNoToken) {
							return usageError{err}
						}
						return err
					}
					return done(c, "removed token %d", id)
				}),
			},
		},
	}
}

// parseDays reads a duration that may also be in days ("30d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := cutSuffixInt(s, "d"); ok {
		if n <= 0 || n > 36500 {
			return 0, fmt.Errorf("--expires %q: give 1d to 36500d, or hours such as 12h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q is not a duration; give days or hours, such as 30d or 12h", s)
	}
	return d, nil
}

func cutSuffixInt(s, suffix string) (int, bool) {
	if len(s) <= len(suffix) || s[len(s)-len(suffix):] != suffix {
		return 0, false
	}
	n, err := strconv.Atoi(s[:len(s)-len(suffix)])
	return n, err == nil
}

// httpMessage is the sentence an HTTP client reads for err: the front
// door's own refusals as they are, the rest as serve's users read them.
func (a *app) httpMessage(err error) string {
	if se, ok := httpgit.IsStatus(err); ok {
		return se.Msg
	}
	return a.userMessage(err)
}

// httpStatus is the HTTP answer to err, as exitCode is its exit code
// (both tables in the README).
func httpStatus(err error) int {
	if se, ok := httpgit.IsStatus(err); ok {
		return se.Code
	}
	var readOnly *access.ReadOnlyError
	if errors.As(err, &readOnly) {
		return http.StatusForbidden
	}
	// Nothing answered at the database's address: a wrong setting (exit 1)
	// or a stopped server; a client can only try again later.
	var setting *db.SettingError
	if errors.As(err, &setting) && setting.Unreachable {
		return http.StatusServiceUnavailable
	}
	switch exitCode(err) {
	case exitUsage:
		return http.StatusBadRequest
	case exitNotFound:
		return http.StatusNotFound
	case exitFrozen:
		return http.StatusConflict
	case exitBusy, exitUnavailable, exitNoQuorum:
		return http.StatusServiceUnavailable
	case exitPushStopped:
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}
