package cli

import "github.com/urfave/cli/v2"

// The global flags answer Names() from a slice made once. urfave/cli's own
// Names() runs each name through a regular expression on every call, and
// it asks every flag for its names for each flag not set on the command
// line (IsSet, its flag actions): hundreds of calls on every run, the
// largest part of what the command line cost a `serve` answering a read.
// Everything else about each flag is the embedded urfave/cli flag's.
type (
	stringFlag struct {
		*cli.StringFlag
		names []string
	}
	durationFlag struct {
		*cli.DurationFlag
		names []string
	}
	intFlag struct {
		*cli.IntFlag
		names []string
	}
	int64Flag struct {
		*cli.Int64Flag
		names []string
	}
)

func (f stringFlag) Names() []string   { return f.names }
func (f durationFlag) Names() []string { return f.names }
func (f intFlag) Names() []string      { return f.names }
func (f int64Flag) Names() []string    { return f.names }

// namedOnce wraps flags of the kinds above; others are returned as they are.
func namedOnce(flags []cli.Flag) []cli.Flag {
	for i, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			flags[i] = stringFlag{f, f.Names()}
		case *cli.DurationFlag:
			flags[i] = durationFlag{f, f.Names()}
		case *cli.IntFlag:
			flags[i] = intFlag{f, f.Names()}
		case *cli.Int64Flag:
			flags[i] = int64Flag{f, f.Names()}
		}
	}
	return flags
}
