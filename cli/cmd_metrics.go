package cli

import (
	"database/sql"

	"github.com/urfave/cli/v2"

	"gitmesh/health"
	"gitmesh/metrics"
)

// metrics: the cluster's figures in the Prometheus text format.
func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "metrics",
			Usage:     "print the cluster's versions, lags, fetches and pushes in the Prometheus text format",
			ArgsUsage: "[--probe]",
			Flags:     []cli.Flag{&cli.BoolFlag{Name: "probe", Usage: "also try to reach every device, as check does (gitmesh_device_up, gitmesh_repository_holders_up)"}},
			Action: a.withDB("metrics", func(c *cli.Context, d *sql.DB) error {
				v, err := parseArgs(c, nil, nil, []string{"probe"})
				if err != nil {
					return err
				}
				var probe metrics.Probe
				if v.bools["probe"] {
					probe = health.Prober{ClusterKey: a.settings.ClusterKey, KnownHosts: a.settings.KnownHosts,
						ConnectTimeout: a.settings.ConnectTimeout.D()}.Probe
				}
				return metrics.Write(c.Context, d, int(a.settings.WriteQuorum), probe, c.App.Writer)
			}),
		}
	})
}
