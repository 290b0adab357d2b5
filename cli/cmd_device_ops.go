package cli

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/urfave/cli/v2"

	"gitmesh/serve"
	"gitmesh/version"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "sync",
			Usage:     "bring this device's copies up to date now, as a read would (a new device, say)",
			ArgsUsage: "[REPO]",
			Action: a.withDB("sync", a.onEachCopy("brought up to date", "current on",
				func(ctx context.Context, n *version.Node, repo string) error { return n.Sync(ctx, repo) })),
		}
	})
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "gc",
			Usage:     "run git gc --auto on this device's copies, under the locks (schedule it off-peak)",
			ArgsUsage: "[REPO]",
			Action: a.withDB("gc", a.onEachCopy("garbage collected", "",
				func(ctx context.Context, n *version.Node, repo string) error { return n.GC(ctx, repo) })),
		}
	})
}

// onEachCopy runs op on this device's copy of one repository (REPO) or of
// every one, reporting each failure and going on; done, when set, is
// printed for each success.
func (a *app) onEachCopy(what, done string, op func(context.Context, *version.Node, string) error) func(*cli.Context, *sql.DB) error {
	return func(c *cli.Context, d *sql.DB) error {
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
			if err := op(c.Context, node, r); err != nil {
				fmt.Fprintf(c.App.ErrWriter, "gitmesh: %s: %s\n", r, message(err))
				failed++
			} else if done != "" {
				fmt.Fprintf(c.App.Writer, "%s: %s %s\n", r, done, a.settings.Device)
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d repositories could not be %s", failed, len(repos), what)
		}
		return nil
	}
}
