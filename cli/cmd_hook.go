package cli

import (
	"os"

	"github.com/urfave/cli/v2"

	"gitmesh/hook"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:   "hook",
			Usage:  "run by git-receive-pack as its proc-receive hook (internal)",
			Hidden: true,
			Subcommands: []*cli.Command{{
				Name: "proc-receive",
				Action: func(c *cli.Context) error {
					if _, err := parseArgs(c, nil, nil, nil); err != nil {
						return err
					}
					return hook.Relay(os.Stdin, os.Stdout, os.Stderr)
				},
			}},
		}
	})
}
