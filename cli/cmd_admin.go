package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"gitmesh/access"
	"gitmesh/admin"
	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/serve"
	"gitmesh/version"
)

func (a *app) migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "create or update the database schema",
		Action: a.withDB("migrate", func(c *cli.Context, d *sql.DB) error {
			if _, err := args(c); err != nil {
				return err
			}
			applied, err := db.Migrate(c.Context, d, a.settings.LockTimeout.D())
			for _, n := range applied {
				fmt.Fprintf(c.App.Writer, "applied %s\n", n)
			}
			return err
		}),
	}
}

func (a *app) deviceCommand() *cli.Command {
	return &cli.Command{
		Name:  "device",
		Usage: "manage devices",
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "register a device", ArgsUsage: "NAME",
				Flags: []cli.Flag{&cli.StringFlag{Name: "url", Usage: "ssh://USER@HOST[:PORT] or a local path peers fetch from"},
					&cli.StringFlag{Name: "zone", Usage: "the device's zone (rack, data centre): placement spreads copies over zones"}},
				Action: a.withDB("device-add", func(c *cli.Context, d *sql.DB) error {
					v, err := parseArgs(c, []string{"NAME"}, []string{"url", "zone"}, nil)
					if err != nil {
						return err
					}
					if v.vals["url"] == "" {
						return usageError{errors.New("device add needs --url URL: where peers fetch this device's copies from")}
					}
					if err := admin.AddDevice(c.Context, d, v.pos[0], v.vals["url"], v.vals["zone"]); err != nil {
						return err
					}
					return done(c, "added device %s, reached at %s", v.pos[0], v.vals["url"])
				}),
			},
			{
				Name: "remove", Usage: "forget a device (drained first: refused while it holds copies)", ArgsUsage: "NAME [--force]",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Usage: "even if it holds copies (a dead device), or the only newest copy of a repository"}},
				Action: a.withDB("device-remove", func(c *cli.Context, d *sql.DB) error {
					v, err := parseArgs(c, []string{"NAME"}, nil, []string{"force"})
					if err != nil {
						return err
					}
					if err := admin.RemoveDevice(c.Context, d, v.pos[0], v.bools["force"]); err != nil {
						return err
					}
					return done(c, "removed device %s and its recorded copies", v.pos[0])
				}),
			},
			{
				Name: "list", Usage: "list devices",
				Action: a.withDB("device-list", func(c *cli.Context, d *sql.DB) error {
					if _, err := args(c); err != nil {
						return err
					}
					devs, err := admin.Devices(c.Context, d)
					for _, dev := range devs {
						fmt.Fprintf(c.App.Writer, "%s\t%s\n", dev.Name, dev.URL)
					}
					return err
				}),
			},
			a.drainCommand(),
			a.deviceSetURLCommand(),
		},
	}
}

func (a *app) repoCommand() *cli.Command {
	return &cli.Command{
		Name:  "repo",
		Usage: "manage repositories",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a repository on --copies devices placement chooses", ArgsUsage: "NAME [--copies N]",
				Flags: []cli.Flag{&cli.StringFlag{Name: "copies", Usage: "how many devices hold it (default: the copies setting)"}},
				Action: a.withDB("repo-create", func(c *cli.Context, d *sql.DB) error {
					pv, err := parseArgs(c, []string{"NAME"}, []string{"copies"}, nil)
					if err != nil {
						return err
					}
					v := pv.pos
					copies, explicit := a.settings.Copies, pv.vals["copies"] != ""
					if explicit {
						if copies, err = copiesArg(pv.vals["copies"]); err != nil {
							return err
						}
					}
					if err := a.settings.NeedDevice(); err != nil {
						return err
					}
					name, err := gitexec.NameFromPath(v[0])
					if err != nil {
						return err
					}
					holders, err := admin.CreateRepo(c.Context, d, serve.Git(a.settings, a.log), a.settings.RepoRoot, a.settings.Device, name, copies, explicit)
					if err != nil {
						return err
					}
					a.makeCopies(c, d, name)
					return done(c, "created repository %s on %s; give access with 'gitmesh grant USER %s read|write'", name, strings.Join(holders, ", "), name)
				}),
			},
			{
				Name: "list", Usage: "list repositories",
				Action: a.withDB("repo-list", func(c *cli.Context, d *sql.DB) error {
					if _, err := args(c); err != nil {
						return err
					}
					names, err := admin.Repos(c.Context, d)
					for _, n := range names {
						fmt.Fprintln(c.App.Writer, n)
					}
					return err
				}),
			},
			a.moveCommand(),
			a.copiesCommand(),
			a.repoRenameCommand(),
			a.repoDeleteCommand(),
		},
	}
}

func (a *app) userCommand() *cli.Command {
	return &cli.Command{
		Name:  "user",
		Usage: "manage users",
		Subcommands: []*cli.Command{{
			Name: "add", Usage: "create a user (no access until granted)", ArgsUsage: "NAME",
			Action: a.withDB("user-add", func(c *cli.Context, d *sql.DB) error {
				v, err := args(c, "NAME")
				if err != nil {
					return err
				}
				if err := access.AddUser(c.Context, d, v[0]); err != nil {
					return err
				}
				return done(c, "added user %s (no access yet); next: 'gitmesh key add %s KEY.pub' and 'gitmesh grant %s REPO read|write'", v[0], v[0], v[0])
			}),
		}, {
			Name: "list", Usage: "list users",
			Action: a.withDB("user-list", func(c *cli.Context, d *sql.DB) error {
				if _, err := args(c); err != nil {
					return err
				}
				names, err := access.Users(c.Context, d)
				for _, n := range names {
					fmt.Fprintln(c.App.Writer, n)
				}
				return err
			}),
		}, {
			Name: "remove", Usage: "delete a user with its keys, grants and group memberships", ArgsUsage: "NAME",
			Action: a.withDB("user-remove", func(c *cli.Context, d *sql.DB) error {
				v, err := args(c, "NAME")
				if err != nil {
					return err
				}
				if err := access.RemoveUser(c.Context, d, v[0]); err != nil {
					return err
				}
				return done(c, "removed user %s with its keys, grants and group memberships", v[0])
			}),
		}},
	}
}

// copiesArg reads --copies: a whole number (its range is placement's to
// check, against the devices registered).
func copiesArg(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, usageError{fmt.Errorf("--copies must be a whole number, not %q", v)}
	}
	return n, nil
}

// makeCopies asks each holder of a new repository to make its copy now
// (as its first read would), all at once and each within three connect
// timeouts, so that the copies exist before anyone uses them; a holder
// that cannot be reached in time makes its copy on first use.
func (a *app) makeCopies(c *cli.Context, d *sql.DB, repo string) {
	st, err := version.Load(c.Context, d, repo)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.Context, 3*a.settings.ConnectTimeout.D())
	defer cancel()
	node := serve.NewNode(a.settings, d, a.log, func(string, ...any) {})
	var wg sync.WaitGroup
	for _, h := range st.Holders {
		if h.Name == a.settings.Device {
			continue // made by CreateRepo
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := node.SyncDevice(ctx, h, repo); err != nil {
				a.log.Warn().Err(err).Str("repo", repo).Str("holder", h.Name).Msg("make copy")
			}
		}()
	}
	wg.Wait()
}
