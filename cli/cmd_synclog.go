package cli

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"gitmesh/access"
	"gitmesh/admin"
	"gitmesh/gitexec"
	"gitmesh/synclog"
	"gitmesh/termsafe"
)

// sync-log [REPO]: the replication history, newest first.
func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "sync-log",
			Usage:     "show which device fetched which version from which peer, and heals, newest first",
			ArgsUsage: "[REPO] [--device D] [--limit N] [--json]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "device", Usage: "only the fetches this device made"},
				&cli.StringFlag{Name: "limit", Usage: "show at most N entries (0: all)", Value: "50"},
				&cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
			},
			Action: a.withDB("sync-log", a.syncLogAction),
		}
	})
}

func (a *app) syncLogAction(c *cli.Context, d *sql.DB) error {
	want := []string{"[REPO]"}
	if c.NArg() == 0 || strings.HasPrefix(c.Args().First(), "-") {
		want = nil
	}
	v, err := parseArgs(c, want, []string{"device", "limit"}, []string{"json"})
	if err != nil {
		return err
	}
	f := synclog.Filter{Limit: 50, Device: v.vals["device"]}
	if s, ok := v.vals["limit"]; ok {
		if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit < 0 {
			return usageError{fmt.Errorf("--limit takes a number of entries (0 for all), not %q", s)}
		}
	}
	if len(v.pos) == 1 {
		if f.Repo, err = gitexec.NameFromPath(v.pos[0]); err != nil {
			return err
		}
	}
	if f.Device != "" {
		if err := access.ValidateName("device", f.Device); err != nil {
			return err
		}
	}
	if f.Repo != "" {
		if err := admin.CheckRepo(c.Context, d, f.Repo); err != nil {
			return err
		}
	}
	if f.Device != "" {
		if err := admin.CheckDevice(c.Context, d, f.Device); err != nil {
			return err
		}
	}
	entries, err := synclog.Read(c.Context, d, f)
	if err != nil {
		return err
	}
	if v.bools["json"] {
		return printJSON(c.App.Writer, entries)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tREPOSITORY\tDEVICE\tFROM\tVERSIONS\tDURATION\tKIND\tRESULT")
	for _, e := range entries {
		from := e.From
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s -> %s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339),
			termsafe.Escape(e.Repository), termsafe.Escape(e.Device), termsafe.Escape(from),
			versionText(e.FromVersion), versionText(e.ToVersion),
			(time.Duration(e.DurationMS) * time.Millisecond).String(), termsafe.Escape(e.Kind), termsafe.Escape(e.Result))
	}
	return tw.Flush()
}

func versionText(v *int64) string {
	if v == nil {
		return "none"
	}
	return strconv.FormatInt(*v, 10)
}
