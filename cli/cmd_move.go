package cli

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"gitmesh/admin"
	"gitmesh/serve"
)

// Moving copies: repo move, repo copies, device drain, rebalance. Each
// step of a move is bounded on its own (lock_timeout, fetch_timeout), so
// the commands as a whole are not.
func init() {
	for _, op := range []string{"repo-move", "repo-copies", "device-drain", "rebalance"} {
		unbounded[op] = true
	}
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "rebalance",
			Usage:     "even out the copies per device (at most one apart where zones allow), printing each move",
			ArgsUsage: "[--dry-run]",
			Flags:     []cli.Flag{&cli.BoolFlag{Name: "dry-run", Usage: "print the moves without making them"}},
			Action: a.withDB("rebalance", func(c *cli.Context, d *sql.DB) error {
				v, err := parseArgs(c, nil, nil, []string{"dry-run"})
				if err != nil {
					return err
				}
				m := a.mover(c, d)
				failed := 0
				if !v.bools["dry-run"] {
					failed += m.ResumeAll(c.Context, a.reportTo(c))
				}
				plan, err := m.Plan(c.Context)
				if err != nil {
					return err
				}
				if len(plan) == 0 {
					return done(c, "the copies are balanced: nothing to move")
				}
				for _, p := range plan {
					verb := "move"
					if v.bools["dry-run"] {
						verb = "would move"
					}
					fmt.Fprintf(c.App.Writer, "%s %s from %s to %s\n", verb, p.Repo, p.From, p.To)
				}
				if v.bools["dry-run"] {
					return nil
				}
				failed += m.Rebalance(c.Context, plan, a.reportTo(c))
				if failed > 0 {
					return exitWith{fmt.Errorf("%d moves could not be made now (see above); run 'gitmesh rebalance' again", failed), exitUnavailable}
				}
				return nil
			}),
		}
	})
}

// moveCommand is `gitmesh repo move REPO --from D --to E`.
func (a *app) moveCommand() *cli.Command {
	return &cli.Command{
		Name: "move", Usage: "move a repository's copy from one device to another, online", ArgsUsage: "REPO --from DEVICE --to DEVICE",
		Flags: []cli.Flag{&cli.StringFlag{Name: "from", Usage: "the device that holds the copy now"},
			&cli.StringFlag{Name: "to", Usage: "the device to hold it instead"}},
		Action: a.withDB("repo-move", func(c *cli.Context, d *sql.DB) error {
			v, err := parseArgs(c, []string{"REPO"}, []string{"from", "to"}, nil)
			if err != nil {
				return err
			}
			if v.vals["from"] == "" || v.vals["to"] == "" {
				return usageError{errors.New("repo move needs --from DEVICE and --to DEVICE")}
			}
			return moveExit(a.mover(c, d).Move(c.Context, repoArg(v.pos[0]), v.vals["from"], v.vals["to"]))
		}),
	}
}

// copiesCommand is `gitmesh repo copies REPO N`.
func (a *app) copiesCommand() *cli.Command {
	return &cli.Command{
		Name: "copies", Usage: "raise or lower the number of devices holding a repository, online", ArgsUsage: "REPO N",
		Action: a.withDB("repo-copies", func(c *cli.Context, d *sql.DB) error {
			v, err := args(c, "REPO", "N")
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(v[1])
			if err != nil {
				return usageError{fmt.Errorf("the number of copies must be a whole number, not %q", v[1])}
			}
			return moveExit(a.mover(c, d).SetCopies(c.Context, repoArg(v[0]), n))
		}),
	}
}

// drainCommand is `gitmesh device drain D`.
func (a *app) drainCommand() *cli.Command {
	return &cli.Command{
		Name: "drain", Usage: "move every copy off a device, online (before 'device remove')", ArgsUsage: "NAME",
		Action: a.withDB("device-drain", func(c *cli.Context, d *sql.DB) error {
			v, err := args(c, "NAME")
			if err != nil {
				return err
			}
			err = a.mover(c, d).Drain(c.Context, v[0], a.reportTo(c))
			var de *admin.DrainError
			if errors.As(err, &de) {
				code := exitUsage
				if de.Failed {
					code = exitUnavailable
				}
				return exitWith{err, code}
			}
			return err
		}),
	}
}

// mover is this device's Mover: progress lines go to stdout.
func (a *app) mover(c *cli.Context, d *sql.DB) *admin.Mover {
	return &admin.Mover{DB: d, Node: serve.NewNode(a.settings, d, a.log, func(string, ...any) {}),
		Say: func(format string, args ...any) { fmt.Fprintf(c.App.Writer, format+"\n", args...) }}
}

// reportTo prints one repository's refusal or failure and goes on.
func (a *app) reportTo(c *cli.Context) func(string, error) {
	return func(repo string, err error) {
		if repo == "" {
			fmt.Fprintf(c.App.ErrWriter, "gitmesh: %s\n", message(err))
			return
		}
		fmt.Fprintf(c.App.ErrWriter, "gitmesh: %s: %s\n", repo, message(err))
	}
}

// moveExit gives a move's failures their documented codes: a device that
// could not catch up, or too few current holders to take a copy away,
// exit 6 (unavailable: nothing lost, run it again).
func moveExit(err error) error {
	var cu *admin.CatchUpError
	var short *admin.QuorumShortError
	if errors.As(err, &cu) || errors.As(err, &short) {
		return exitWith{err, exitUnavailable}
	}
	return err
}

// exitWith is err with its exit code.
type exitWith struct {
	err  error
	code int
}

func (e exitWith) Error() string  { return e.err.Error() }
func (e exitWith) ExitCode() int  { return e.code }
func (e exitWith) String() string { return e.err.Error() }
