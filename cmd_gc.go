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
			Name:      "gc",
			Usage:     "run git gc --auto on this device's copies, under the locks (schedule it off-peak)",
			ArgsUsage: "[REPO]",
			Action:    a.withDB("gc", a.gc),
		}
	})
}

func (a *app) gc(c *cli.Context, d *sql.DB) error {
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
		if err := node.GC(c.Context, r); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "gitmesh: %s: %s\n", r, message(err))
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("gc failed for %d of %d repositories", failed, len(repos))
	}
	return nil
}
