package cli

import (
	"database/sql"

	"github.com/urfave/cli/v2"

	"gitmesh/metrics"
)

// metrics: the cluster's figures in the Prometheus text format.
func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:  "metrics",
			Usage: "print the cluster's versions, lags, fetches and pushes in the Prometheus text format",
			Action: a.withDB("metrics", func(c *cli.Context, d *sql.DB) error {
				if _, err := parseArgs(c, nil, nil, nil); err != nil {
					return err
				}
				return metrics.Write(c.Context, d, int(a.settings.WriteQuorum), c.App.Writer)
			}),
		}
	})
}
