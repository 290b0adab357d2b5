package cli

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"gitmesh/access"
)

// Access control: grant, revoke, grants, group and access. Deny by default;
// a user's level on a repository is the strongest of the grants that match
// it, given to the user or to any group the user belongs to.
func init() {
	register((*app).grantCommand)
	register((*app).revokeCommand)
	register((*app).grantsCommand)
	register((*app).groupCommand)
	register((*app).accessCommand)
}

// usageErrors makes a bad flag exit 2 with one sentence on stderr, like
// every other bad command line, instead of urfave/cli's help on stdout.
// commands() applies it to every command and its subcommands.
func usageErrors(cmd *cli.Command) *cli.Command {
	cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error { return usageHint(c, err) }
	if len(cmd.Subcommands) > 0 && cmd.Action == nil {
		cmd.Action = needSubcommand
	}
	if len(cmd.Subcommands) == 0 && cmd.Action != nil {
		// urfave/cli gives every command a "help" subcommand, so
		// "user add help" printed help and exited 0 as if it had worked.
		cmd.HideHelpCommand = true
		cmd.Action = refuseHelpArg(cmd.Action)
	}
	for _, sub := range cmd.Subcommands {
		usageErrors(sub)
	}
	return cmd
}

// refuseHelpArg makes "help" as an argument an error: it is no name gitmesh
// accepts (access.ValidateName reserves it), and an operator who typed it
// wanted help, not an action on something called help.
func refuseHelpArg(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		if contains(c.Args().Slice(), "help") {
			return usageError{fmt.Errorf(`"help" is reserved and names no user, group, device or repository; for help on %s run 'gitmesh %s --help'`,
				commandName(c), commandName(c))}
		}
		return action(c)
	}
}

// done prints the one line an admin command that changed something says
// on success: what it did.
func done(c *cli.Context, format string, args ...any) error {
	_, err := fmt.Fprintf(c.App.Writer, format+"\n", args...)
	return err
}

// needSubcommand is the action of a command group run without a known
// subcommand ("gitmesh key", "gitmesh key frob").
func needSubcommand(c *cli.Context) error {
	var names []string
	for _, s := range c.Command.Subcommands {
		if !s.Hidden && s.Name != "help" {
			names = append(names, s.Name)
		}
	}
	list := strings.Join(names, ", ")
	if c.NArg() > 0 {
		return usageError{fmt.Errorf("unknown command %q after %q; it takes one of: %s", c.Args().First(), commandName(c), list)}
	}
	return usageError{fmt.Errorf("%s needs one of: %s", commandName(c), list)}
}

var groupFlag = &cli.StringFlag{Name: "group", Usage: "grant to (or revoke from) this group instead of a user"}

func (a *app) grantCommand() *cli.Command {
	return &cli.Command{
		Name:      "grant",
		Usage:     "give a user or group read, write or admin on a repository or pattern",
		ArgsUsage: "USER REPO|PATTERN read|write|admin, or --group GROUP REPO|PATTERN read|write|admin",
		Flags:     []cli.Flag{groupFlag},
		Action: a.withDB("grant", func(c *cli.Context, d *sql.DB) error {
			who, v, err := subjectArgs(c, "REPO|PATTERN", "LEVEL")
			if err != nil {
				return err
			}
			level, err := access.ParseLevel(v[1])
			if err != nil {
				return usageError{err}
			}
			if err := access.GrantTo(c.Context, d, who, repoArg(v[0]), level); err != nil {
				return err
			}
			return done(c, "granted %s on %s to %s", level, repoArg(v[0]), who)
		}),
	}
}

func (a *app) revokeCommand() *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "remove a user's or group's grant on a repository or pattern",
		ArgsUsage: "USER REPO|PATTERN, or --group GROUP REPO|PATTERN",
		Flags:     []cli.Flag{groupFlag},
		Action: a.withDB("revoke", func(c *cli.Context, d *sql.DB) error {
			who, v, err := subjectArgs(c, "REPO|PATTERN")
			if err != nil {
				return err
			}
			r, err := access.Revoke(c.Context, d, who, repoArg(v[0]))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "revoked %s on %s from %s\n", r.Level, r.Pattern, r.Who)
			return nil
		}),
	}
}

func (a *app) grantsCommand() *cli.Command {
	return &cli.Command{
		Name:  "grants",
		Usage: "list every grant",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array"}},
		Action: a.withDB("grants", func(c *cli.Context, d *sql.DB) error {
			v, err := parseArgs(c, nil, nil, []string{"json"})
			if err != nil {
				return err
			}
			rules, err := access.Rules(c.Context, d)
			if err != nil {
				return err
			}
			if v.bools["json"] {
				return printJSON(c.App.Writer, nonNil(rules))
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WHO\tPATTERN\tLEVEL")
			for _, r := range rules {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Who, r.Pattern, r.Level)
			}
			return tw.Flush()
		}),
	}
}

func (a *app) groupCommand() *cli.Command {
	name := func(c *cli.Context, want ...string) ([]string, error) {
		v, err := args(c, want...)
		if err != nil {
			return nil, err
		}
		for i, w := range want {
			if err := access.ValidateName(strings.ToLower(w), v[i]); err != nil {
				return nil, usageError{err}
			}
		}
		return v, nil
	}
	return &cli.Command{
		Name:  "group",
		Usage: "manage groups of users (a grant to a group applies to each member)",
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "create an empty group", ArgsUsage: "GROUP",
				Action: a.withDB("group-add", func(c *cli.Context, d *sql.DB) error {
					v, err := name(c, "GROUP")
					if err != nil {
						return err
					}
					if err := access.AddGroup(c.Context, d, v[0]); err != nil {
						return err
					}
					return done(c, "added group %s (no members yet); add one with 'gitmesh group member add %s USER'", v[0], v[0])
				}),
			},
			{
				Name: "remove", Usage: "delete a group, its memberships and its grants", ArgsUsage: "GROUP",
				Action: a.withDB("group-remove", func(c *cli.Context, d *sql.DB) error {
					v, err := name(c, "GROUP")
					if err != nil {
						return err
					}
					if err := access.RemoveGroup(c.Context, d, v[0]); err != nil {
						return err
					}
					return done(c, "removed group %s with its memberships and grants", v[0])
				}),
			},
			{
				Name: "list", Usage: "list groups and their members",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array"}},
				Action: a.withDB("group-list", func(c *cli.Context, d *sql.DB) error {
					v, err := parseArgs(c, nil, nil, []string{"json"})
					if err != nil {
						return err
					}
					groups, err := access.Groups(c.Context, d)
					if err != nil {
						return err
					}
					if v.bools["json"] {
						return printJSON(c.App.Writer, nonNil(groups))
					}
					for _, g := range groups {
						fmt.Fprintf(c.App.Writer, "%s\t%s\n", g.Name, strings.Join(g.Members, " "))
					}
					return nil
				}),
			},
			{
				Name:  "member",
				Usage: "manage a group's members",
				Subcommands: []*cli.Command{
					{
						Name: "add", Usage: "put a user into a group", ArgsUsage: "GROUP USER",
						Action: a.withDB("group-member-add", func(c *cli.Context, d *sql.DB) error {
							v, err := name(c, "GROUP", "USER")
							if err != nil {
								return err
							}
							if err := access.AddMember(c.Context, d, v[0], v[1]); err != nil {
								return err
							}
							return done(c, "added user %s to group %s", v[1], v[0])
						}),
					},
					{
						Name: "remove", Usage: "take a user out of a group", ArgsUsage: "GROUP USER",
						Action: a.withDB("group-member-remove", func(c *cli.Context, d *sql.DB) error {
							v, err := name(c, "GROUP", "USER")
							if err != nil {
								return err
							}
							if err := access.RemoveMember(c.Context, d, v[0], v[1]); err != nil {
								return err
							}
							return done(c, "removed user %s from group %s", v[1], v[0])
						}),
					},
					{
						Name: "list", Usage: "list a group's members", ArgsUsage: "GROUP",
						Action: a.withDB("group-member-list", func(c *cli.Context, d *sql.DB) error {
							v, err := name(c, "GROUP")
							if err != nil {
								return err
							}
							members, err := access.Members(c.Context, d, v[0])
							for _, m := range members {
								fmt.Fprintln(c.App.Writer, m)
							}
							return err
						}),
					},
				},
			},
		},
	}
}

func (a *app) accessCommand() *cli.Command {
	return &cli.Command{
		Name:      "access",
		Usage:     "show what a user may do with a repository, and which grants say so",
		ArgsUsage: "USER REPO",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON object"}},
		Action: a.withDB("access", func(c *cli.Context, d *sql.DB) error {
			v, err := parseArgs(c, []string{"USER", "REPO"}, nil, []string{"json"})
			if err != nil {
				return err
			}
			if err := access.ValidateName("user", v.pos[0]); err != nil {
				return usageError{err}
			}
			repo := repoArg(v.pos[1])
			if _, err := access.PatternRegex(repo); err != nil || strings.Contains(repo, "*") {
				return usageError{fmt.Errorf("access needs one repository name, not %q", v.pos[1])}
			}
			e, err := access.Explain(c.Context, d, v.pos[0], repo)
			if err != nil {
				return err
			}
			if v.bools["json"] {
				return printJSON(c.App.Writer, e)
			}
			printAccess(c.App.Writer, e)
			return nil
		}),
	}
}

func printAccess(w io.Writer, e access.Explanation) {
	what := map[access.Level]string{
		access.None:  "may not use",
		access.Read:  "may read (fetch, clone, archive)",
		access.Write: "may read and write (fetch and push)",
		access.Admin: "may read and write, and administers",
	}[e.Level]
	fmt.Fprintf(w, "%s %s %s: level %s\n", e.User, what, e.Repo, e.Level)
	if !e.RepoExists {
		fmt.Fprintf(w, "note: repository %s does not exist (yet); the grants below apply once it is created\n", e.Repo)
	}
	if len(e.Matches) == 0 {
		fmt.Fprintln(w, "no grant matches: deny by default")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tPATTERN\tVIA")
	for _, m := range e.Matches {
		via := "direct grant to " + e.User
		if m.Group != "" {
			via = "group " + m.Group
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Level, m.Pattern, via)
	}
	tw.Flush()
}

// subjectArgs reads "USER rest..." or "--group GROUP rest..." (the flag
// before or after the positional arguments).
func subjectArgs(c *cli.Context, rest ...string) (access.Subject, []string, error) {
	if !flagGiven(c, "group") {
		v, err := parseArgs(c, append([]string{"USER"}, rest...), []string{"group"}, nil)
		if err != nil {
			return access.Subject{}, nil, err
		}
		if err := access.ValidateName("user", v.pos[0]); err != nil {
			return access.Subject{}, nil, usageError{err}
		}
		return access.Subject{Name: v.pos[0]}, v.pos[1:], nil
	}
	v, err := parseArgs(c, rest, []string{"group"}, nil)
	if err != nil {
		return access.Subject{}, nil, err
	}
	if err := access.ValidateName("group", v.vals["group"]); err != nil {
		return access.Subject{}, nil, usageError{err}
	}
	return access.Subject{Name: v.vals["group"], Group: true}, v.pos, nil
}

// flagGiven reports whether --name appears before or among the arguments.
func flagGiven(c *cli.Context, name string) bool {
	if c.IsSet(name) {
		return true
	}
	for _, s := range c.Args().Slice() {
		if !strings.HasPrefix(s, "-") {
			continue
		}
		if n, _, _ := strings.Cut(strings.TrimLeft(s, "-"), "="); n == name {
			return true
		}
	}
	return false
}

// repoArg normalises a repository or pattern as an operator may type it:
// "/team/app.git" is "team/app".
func repoArg(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(s, "/"), ".git")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return errors.New("encode JSON: " + err.Error())
	}
	return nil
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
