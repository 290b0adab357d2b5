package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"gitmesh/db"
	"gitmesh/replicate"
	"gitmesh/serve"
	"gitmesh/version"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:  "replicate",
			Usage: "keep this device's copies at the newest version (long-running; optional)",
			Description: "Follows new versions as pushes announce them (PostgreSQL LISTEN) and sweeps every\n" +
				"repository at start, after a lost connection and every --sweep.",
			Flags: []cli.Flag{&cli.DurationFlag{Name: "sweep", Value: 2 * time.Minute, Usage: "how often to check every repository"}},
			Action: a.withDB("replicate", func(c *cli.Context, d *sql.DB) error {
				if _, err := args(c); err != nil {
					return err
				}
				if err := a.settings.NeedDevice(); err != nil {
					return err
				}
				ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
				defer stop()
				n := serve.NewNode(a.settings, d, a.log, func(string, ...any) {})
				l, err := db.Listen(a.settings.DatabaseURL, db.AppName("replicate", "", "", ""), a.settings.ConnectTimeout.D(),
					version.Notify, func(err error) { a.log.Warn().Err(err).Msg("replicate: listener") })
				if err != nil {
					return fmt.Errorf("listen for new versions: %w", err)
				}
				defer l.Close()
				return replicate.Follow(ctx, n, l, c.Duration("sweep"), a.settings.LogRetention.D())
			}),
		}
	})
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name: "converge", ArgsUsage: "REPO", Hidden: true,
			Usage: "bring the other devices up to date on REPO now (run by serve after a push)",
			Action: a.withDB("converge", func(c *cli.Context, d *sql.DB) error {
				v, err := args(c, "REPO")
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(c.Context, a.settings.FetchTimeout.D()+a.settings.LockTimeout.D())
				defer cancel()
				// serve hands over what is left of its push (it exits as
				// soon as git has reported): recorded first.
				if rec := os.Getenv(version.AfterwardEnv); rec != "" {
					after, err := version.ParseAfterward(rec, v[0])
					if err != nil {
						return err
					}
					after.Record(ctx, d, a.log)
					if !after.Converge {
						return nil
					}
				}
				n := serve.NewNode(a.settings, d, a.log, func(string, ...any) {})
				err = replicate.Converge(ctx, n, v[0])
				var lag *replicate.LagError
				if errors.As(err, &lag) { // a device down: expected, and it catches up later
					a.log.Warn().Str("op", "converge").Str("repo", lag.Repo).Strs("devices", lag.Devices).Msg(lag.Error())
					return nil
				}
				return err
			}),
		}
	})
}
