package cli

import (
	"database/sql"
	"fmt"

	"github.com/urfave/cli/v2"

	"gitmesh/retention"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:  "prune-logs",
			Usage: "delete push_log, sync_log and push_attempts rows older than log_retention",
			Description: "Keeps the history tables bounded (gitmesh replicate also does it every hour).\n" +
				"log_retention 0 keeps everything.",
			Action: a.withDB("prune-logs", func(c *cli.Context, d *sql.DB) error {
				if _, err := args(c); err != nil {
					return err
				}
				keep := a.settings.LogRetention.D()
				if keep <= 0 {
					fmt.Fprintln(c.App.Writer, "log_retention is 0: nothing is pruned")
					return nil
				}
				n, err := retention.Prune(c.Context, d, keep)
				if err != nil {
					return err
				}
				for _, t := range retention.Tables {
					fmt.Fprintf(c.App.Writer, "%s: %d rows older than %s deleted\n", t, n[t], keep)
				}
				return nil
			}),
		}
	})
}
