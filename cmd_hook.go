package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"gitmesh/hook"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:   "hook",
			Usage:  "run by git-receive-pack as its reference-transaction hook (internal)",
			Hidden: true,
			Subcommands: []*cli.Command{{
				Name: "reference-transaction", ArgsUsage: "STATE",
				Action: func(c *cli.Context) error {
					v, err := parseArgs(c, []string{"STATE"}, nil, nil)
					if err != nil {
						return err
					}
					return hook.Run(v.pos[0], os.Stdin, os.Stderr)
				},
			}},
		}
	})
}
