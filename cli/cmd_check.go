package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"gitmesh/health"
)

// check: a health check with Nagios's exit codes (0 ok, 1 warning,
// 2 critical, 3 unknown), its own contract apart from serve's codes.
// Flags are parsed here (SkipFlagParsing), so that a bad one is UNKNOWN
// too rather than cli's usage error (2, which would read as critical).
func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:            "check",
			Usage:           "report problems (a database that is only a standby or does not commit, frozen, below quorum, lagging, unreachable devices, pending migrations); exit 0 ok, 1 warning, 2 critical, 3 unknown",
			ArgsUsage:       "[--lag-warn DURATION] [--no-probe] [--json]",
			SkipFlagParsing: true,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "lag-warn", Usage: "warn about a copy behind the newest version for longer than this", Value: "10m"},
				&cli.BoolFlag{Name: "no-probe", Usage: "do not try to reach the devices"},
				&cli.BoolFlag{Name: "json", Usage: "print a JSON object: status and problems"},
			},
			Action: a.checkAction,
		}
	})
}

func (a *app) checkAction(c *cli.Context) error {
	for _, s := range c.Args().Slice() {
		if s == "-h" || s == "--help" {
			cli.HelpPrinter(c.App.Writer, cli.CommandHelpTemplate, c.Command)
			return nil
		}
	}
	v, err := parseArgs(c, nil, []string{"lag-warn"}, []string{"no-probe", "json"})
	if err != nil {
		return unknown(c, false, err)
	}
	asJSON := v.bools["json"]
	lag := 10 * time.Minute
	if s, ok := v.vals["lag-warn"]; ok {
		if lag, err = time.ParseDuration(s); err != nil || lag < 0 {
			return unknown(c, asJSON, usageError{fmt.Errorf("--lag-warn takes a duration such as 10m or 1h30m, not %q", s)})
		}
	}
	opts := health.Options{Quorum: int(a.settings.WriteQuorum), LagWarn: lag, WriteProbe: a.settings.ConnectTimeout.D()}
	if !v.bools["no-probe"] {
		opts.Probe = health.Prober{ClusterKey: a.settings.ClusterKey, KnownHosts: a.settings.KnownHosts,
			ConnectTimeout: a.settings.ConnectTimeout.D()}.Probe
	}
	d, err := a.openDB("check")
	if err != nil {
		return unknown(c, asJSON, err)
	}
	defer d.Close()
	r, err := health.Check(c.Context, d, opts)
	if err != nil {
		return unknown(c, asJSON, err)
	}
	if asJSON {
		err = printJSON(c.App.Writer, r)
	} else {
		err = printCheck(c.App.Writer, r, lag)
	}
	if err != nil {
		// The report did not reach monitoring: that is not knowing, not
		// a warning (exit 1 would be read as one).
		return checkExit{code: int(health.Unknown), msg: "check could not write its report: " + message(err)}
	}
	if r.Status == health.OK {
		return nil
	}
	return checkExit{code: int(r.Status)} // the problems are on stdout already
}

func printCheck(w io.Writer, r health.Report, lag time.Duration) error {
	if len(r.Problems) == 0 {
		_, err := fmt.Fprintf(w, "OK: %s, %s: nothing frozen, below quorum or behind for more than %s\n",
			count(r.Devices, "device"), count(r.Repositories, "repository"), lag)
		return err
	}
	for _, p := range r.Problems {
		if _, err := fmt.Fprintf(w, "%s: %s\n", strings.ToUpper(p.Severity.String()), oneLine(p.Message)); err != nil {
			return err
		}
	}
	return nil
}

// unknown reports a check that could not be made: UNKNOWN on stdout
// (what monitoring reads), the sentence on stderr, exit 3.
func unknown(c *cli.Context, asJSON bool, err error) error {
	msg := message(err)
	if asJSON {
		printJSON(c.App.Writer, health.Report{Status: health.Unknown,
			Problems: []health.Problem{{Severity: health.Unknown, Kind: "unknown", Message: msg}}})
	} else {
		fmt.Fprintf(c.App.Writer, "UNKNOWN: %s\n", msg)
	}
	return checkExit{code: int(health.Unknown), msg: msg}
}

// checkExit ends check with a Nagios code. It wraps nothing on purpose:
// main must not map it to one of serve's exit codes.
type checkExit struct {
	code int
	msg  string // "" prints nothing on stderr
}

func (e checkExit) Error() string { return e.msg }
func (e checkExit) ExitCode() int { return e.code }

// checkBefore loads the settings; a bad setting makes check UNKNOWN, not
// serve's exit code for it.
func (a *app) checkBefore(c *cli.Context) error {
	err := a.load(c)
	if err != nil && c.Args().First() == "check" {
		return unknown(c, contains(c.Args().Slice(), "--json"), err)
	}
	return err
}

// count is "1 device" or "3 devices".
func count(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "y"):
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
