package cli

import (
	"database/sql"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"gitmesh/admin"
	"gitmesh/gitexec"
	"gitmesh/pushlog"
	"gitmesh/termsafe"
)

// log REPO: the push log, newest first.
func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "log",
			Usage:     "show who pushed which ref of a repository, newest first",
			ArgsUsage: "REPO [--limit N] [--json]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "limit", Usage: "show at most N entries (0: all)", Value: "100"},
				&cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
			},
			Action: a.withDB("log", a.logAction),
		}
	})
}

func (a *app) logAction(c *cli.Context, d *sql.DB) error {
	v, err := parseArgs(c, []string{"REPO"}, []string{"limit"}, []string{"json"})
	if err != nil {
		return err
	}
	limit := 100
	if s, ok := v.vals["limit"]; ok {
		if limit, err = strconv.Atoi(s); err != nil || limit < 0 {
			return usageError{fmt.Errorf("--limit takes a number of entries (0 for all), not %q", s)}
		}
	}
	repo, err := gitexec.NameFromPath(v.pos[0])
	if err != nil {
		return err
	}
	if err := admin.CheckRepo(c.Context, d, repo); err != nil {
		return err
	}
	entries, err := pushlog.Read(c.Context, d, repo, limit)
	if err != nil {
		return err
	}
	if v.bools["json"] {
		return printJSON(c.App.Writer, entries)
	}
	return printLog(c.App.Writer, entries)
}

// printLog is log's text form. Ref and user names come from users and are
// escaped for the terminal; --json gives them exactly.
func printLog(w io.Writer, entries []pushlog.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tVERSION\tDEVICE\tUSER\tACTION\tREF\tOLD\tNEW")
	for _, e := range entries {
		dev := e.Device
		if dev == "" {
			dev = "(deleted)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Version,
			termsafe.Escape(dev), termsafe.Escape(e.User), e.Action(), termsafe.Escape(e.Ref), termsafe.Escape(e.Old), termsafe.Escape(e.New))
	}
	return tw.Flush()
}
