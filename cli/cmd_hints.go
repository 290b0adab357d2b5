package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// isGlobalFlag reports whether a command-line word ("--config",
// "-config=F") names one of the global flags, and which.
func isGlobalFlag(word string) (string, bool) {
	if !strings.HasPrefix(word, "-") {
		return "", false
	}
	name, _, _ := strings.Cut(strings.TrimLeft(word, "-"), "=")
	for _, f := range settingFlags() {
		if f.Names()[0] == name {
			return name, true
		}
	}
	return "", false
}

// globalFlagAfter explains a global flag given after the subcommand cmd
// ("gitmesh status --config F"): global flags are read only before it.
// rest are the words after cmd; bad is the flag's word among them.
func globalFlagAfter(cmd string, rest []string, bad string) error {
	name, _ := isGlobalFlag(bad)
	value := "VALUE"
	var others []string
	for i := 0; i < len(rest); i++ {
		if rest[i] != bad {
			others = append(others, rest[i])
			continue
		}
		if _, v, ok := strings.Cut(rest[i], "="); ok {
			value = v
		} else if i+1 < len(rest) {
			i++
			value = rest[i]
		}
		bad = "" // only the first occurrence
	}
	if name == "database-url" {
		value = "URL" // never echo a password
	}
	line := strings.Join(append([]string{"gitmesh", "--" + name, value, cmd}, others...), " ")
	return usageError{fmt.Errorf("flag --%s is a global flag: put it before the subcommand: %s", name, line)}
}

// usageHint is OnUsageError for every subcommand: urfave/cli's complaint
// as a usage error, or, when the flag it did not know is a global one,
// where that flag goes.
func usageHint(c *cli.Context, err error) error {
	flag, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return usageError{err}
	}
	if _, global := isGlobalFlag(flag); !global {
		return usageError{err}
	}
	// The parent's arguments start with this command's name.
	lineage := c.Lineage()
	if len(lineage) < 2 {
		return usageError{err}
	}
	words := lineage[1].Args().Slice()
	if len(words) == 0 {
		return usageError{err}
	}
	for _, w := range words[1:] {
		if n, ok := isGlobalFlag(w); ok && n == strings.TrimLeft(flag, "-") {
			return globalFlagAfter(commandName(c), words[1:], w)
		}
	}
	return usageError{err}
}

// misplacedGlobalFlag finds a global flag among a command's arguments
// (after its first positional one, where urfave/cli stops reading flags)
// that the command does not define itself, and says where it goes.
func misplacedGlobalFlag(c *cli.Context) error {
	rest := c.Args().Slice()
	for _, w := range rest {
		name, ok := isGlobalFlag(w)
		if ok && !definesFlag(c.Command, name) {
			return globalFlagAfter(commandName(c), rest, w)
		}
	}
	return nil
}

func definesFlag(cmd *cli.Command, name string) bool {
	if cmd == nil {
		return false
	}
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}
