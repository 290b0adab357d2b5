package cli

import (
	"database/sql"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"gitmesh/admin"
)

// cmdArgs are a subcommand's positional arguments and flags. urfave/cli v2
// stops parsing flags at the first positional argument, but the documented
// forms put flags last ("device add NAME --url URL"), so flags are read
// from both places.
type cmdArgs struct {
	pos   []string
	vals  map[string]string
	bools map[string]bool
}

// parseArgs reads c's arguments: want names the positional arguments,
// valueFlags and boolFlags the flags that may follow them.
func parseArgs(c *cli.Context, want []string, valueFlags, boolFlags []string) (cmdArgs, error) {
	a := cmdArgs{vals: map[string]string{}, bools: map[string]bool{}}
	for _, f := range valueFlags {
		if c.IsSet(f) {
			a.vals[f] = c.String(f)
		}
	}
	for _, f := range boolFlags {
		a.bools[f] = c.Bool(f)
	}
	rest := c.Args().Slice()
	for i := 0; i < len(rest); i++ {
		s := rest[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(s, "-"), "=")
		switch {
		case !strings.HasPrefix(s, "-") || s == "-":
			a.pos = append(a.pos, s)
		case contains(valueFlags, name):
			if !hasValue {
				if i+1 >= len(rest) {
					return a, usageError{fmt.Errorf("flag --%s needs a value", name)}
				}
				i++
				value = rest[i]
			}
			a.vals[name] = value
		case contains(boolFlags, name) && !hasValue:
			a.bools[name] = true
		default:
			if _, global := isGlobalFlag(s); global {
				return a, globalFlagAfter(commandName(c), rest, s)
			}
			return a, usageError{fmt.Errorf("%s: unknown flag %s", commandName(c), s)}
		}
	}
	if len(a.pos) != len(want) {
		return a, wrongArgs(c, want)
	}
	return a, nil
}

// wrongArgs says what the command takes.
func wrongArgs(c *cli.Context, want []string) error {
	if len(want) == 0 {
		return usageError{fmt.Errorf("%s takes no arguments", commandName(c))}
	}
	return usageError{fmt.Errorf("%s takes %d argument(s): %s", commandName(c), len(want), strings.Join(want, " "))}
}

// commandName is "device add" for `gitmesh device add`.
func commandName(c *cli.Context) string {
	return strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// repoArgs is the one optional REPO argument, or every repository.
func repoArgs(c *cli.Context, d *sql.DB) ([]string, error) {
	switch c.NArg() {
	case 0:
		return admin.Repos(c.Context, d)
	case 1:
		repo := repoArg(c.Args().First())
		if err := admin.CheckRepo(c.Context, d, repo); err != nil {
			return nil, err
		}
		return []string{repo}, nil
	}
	return nil, wrongArgs(c, []string{"[REPO]"})
}
