package main

import (
	"database/sql"
	"fmt"

	"github.com/urfave/cli/v2"

	"gitmesh/serve"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "sync",
			Usage:     "bring this device's copies up to date now, as a read would (a new device, say)",
			ArgsUsage: "[REPO]",
			Action:    a.withDB("sync", a.sync),
		}
	})
}

func (a *app) sync(c *cli.Context, d *sql.DB) error {
	if err := a.settings.NeedDevice(); err != nil {
		return err
	}
	repos, err := repoArgs(c, d)
	if err != nil {
		return err
	}
	node := serve.NewNode(a.settings, d, a.log, tell)
	failed := 0
	for _, r := range repos {
		if err := node.Sync(c.Context, r); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "gitmesh: %s: %s\n", r, message(err))
			failed++
			continue
		}
		fmt.Fprintf(c.App.Writer, "%s: current on %s\n", r, a.settings.Device)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d repositories could not be brought up to date", failed, len(repos))
	}
	return nil
}
