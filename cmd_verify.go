package main

import (
	"database/sql"
	"fmt"

	"github.com/urfave/cli/v2"

	"gitmesh/admin"
	"gitmesh/serve"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "verify",
			Usage:     "read every copy from its device and compare it with what was recorded",
			ArgsUsage: "[REPO]",
			Action:    a.withDB("verify", a.verify),
		}
	})
}

func (a *app) verify(c *cli.Context, d *sql.DB) error {
	if c.NArg() > 1 {
		return wrongArgs(c, []string{"[REPO]"})
	}
	repos := c.Args().Slice()
	if len(repos) == 0 {
		var err error
		if repos, err = admin.Repos(c.Context, d); err != nil {
			return err
		}
	}
	problems := 0
	for _, r := range repos {
		n, err := admin.Verify(c.Context, d, serve.Git(a.settings), repoArg(r), c.App.Writer)
		if err != nil {
			return err
		}
		problems += n
	}
	if problems > 0 {
		return fmt.Errorf("verify found %d problem(s), listed above", problems)
	}
	return nil
}
