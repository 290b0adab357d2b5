package cli

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
	repos, err := repoArgs(c, d)
	if err != nil {
		return err
	}
	problems := 0
	for _, r := range repos {
		n, err := admin.Verify(c.Context, d, serve.Git(a.settings, a.log), r, c.App.Writer)
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
