package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"gitmesh/serve"
)

func (a *app) serveCommand() *cli.Command {
	return &cli.Command{
		Name: "serve", Usage: "the authorized_keys forced command", ArgsUsage: "USER",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "cluster", Usage: "serve a peer device (cluster key): fetches, staging pushes and sync requests"}},
		Action: func(c *cli.Context) error {
			// A client that hangs up must not kill serve by SIGPIPE at its
			// next line on stderr (mid-write, say): the write fails instead.
			// Caught, not ignored, so git exec'd later has the default.
			signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
			conn := serve.Conn{Original: os.Getenv("SSH_ORIGINAL_COMMAND"), Environ: os.Environ(), Log: a.log, Tell: tell, Stderr: os.Stderr, In: os.Stdin, Out: os.Stdout}
			if c.Bool("cluster") {
				if _, err := args(c); err != nil {
					return err
				}
				if a.httpDoor {
					return a.httpPassedOn(c, conn.Original) // gitmesh-as-http
				}
				return serve.Cluster(c.Context, a.settings, conn)
			}
			switch {
			case c.NArg() == 0:
				return usageError{errors.New("serve needs the name of the user whose key runs it (gitmesh serve USER, as authorized_keys runs it), or --cluster for the cluster key's line")}
			case c.NArg() > 1:
				return usageError{fmt.Errorf("serve takes exactly one user name, not %d words: gitmesh serve USER, as authorized_keys runs it for that user's key (or gitmesh serve --cluster)", c.NArg())}
			}
			if conn.Original == "" && (isTerminal(os.Stdin) || os.Getenv("SSH_CONNECTION") == "") {
				return usageError{errors.New(byHand)}
			}
			conn.User = c.Args().First()
			return serve.User(c.Context, a.settings, conn)
		},
	}
}

// tell writes one sentence for the user on stderr (never stdout in serve).
func tell(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gitmesh: "+format+"\n", args...)
}

// byHand answers `serve USER` with no command, run by hand (in a
// terminal, or not by sshd, which always sets SSH_CONNECTION): sshd runs
// it, with the client's command in SSH_ORIGINAL_COMMAND. A key holder's
// login through sshd has no terminal (the keys' restrict option refuses a
// pty) and hears gitexec's "interactive login is not allowed".
const byHand = "serve is run by sshd as the forced command of a user's key, with the client's command in SSH_ORIGINAL_COMMAND " +
	"(an interactive login is not allowed); to try it by hand, give it the command git would send: " +
	"SSH_ORIGINAL_COMMAND=\"git-upload-pack 'team/app.git'\" gitmesh --config FILE serve USER </dev/null"

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
