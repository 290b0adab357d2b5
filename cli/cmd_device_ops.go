package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"gitmesh/gitexec"
	"gitmesh/serve"
	"gitmesh/version"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "sync",
			Usage:     "bring this device's copies up to date now, as a read would (a new device, say)",
			ArgsUsage: "[REPO]",
			Action:    a.withDB("sync", a.tidyFirst(a.onEachCopy("brought up to date", "current on", syncHeld, atRest))),
		}
	})
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "gc",
			Usage:     "run git gc --auto on this device's copies, under the locks (schedule it off-peak)",
			ArgsUsage: "[REPO]",
			Action: a.withDB("gc", a.onEachCopy("garbage collected", "",
				func(ctx context.Context, n *version.Node, repo string) error { return n.GC(ctx, repo) }, nil)),
		}
	})
}

// onEachCopy runs op on this device's copy of one repository (REPO) or of
// every one, reporting each failure and going on; done, when set, is
// printed for each success. rest, when set, lists every repository and
// whether op has nothing to do for it, in one statement: op is skipped
// for those, so that an idle run costs one query, not one per repository.
func (a *app) onEachCopy(what, done string, op func(context.Context, *version.Node, string) error, rest restFunc) func(*cli.Context, *sql.DB) error {
	return func(c *cli.Context, d *sql.DB) error {
		if err := a.settings.NeedDevice(); err != nil {
			return err
		}
		var idle map[string]bool
		var repos []string
		var err error
		if rest != nil && c.NArg() == 0 {
			repos, idle, err = rest(c.Context, d, a.settings.Device, a.settings.RepoRoot)
		}
		if (rest == nil || c.NArg() > 0) && err == nil {
			repos, err = repoArgs(c, d)
		}
		if err != nil {
			return err
		}
		if len(repos) == 0 && rest != nil {
			_, err := fmt.Fprintf(c.App.Writer, "device %s holds no copies\n", a.settings.Device)
			return err
		}
		node := serve.NewNode(a.settings, d, a.log, tell)
		failed := 0
		for _, r := range repos {
			if idle[r] {
				err = nil
			} else {
				err = op(c.Context, node, r)
			}
			var elsewhere notHeldError
			if errors.As(err, &elsewhere) {
				fmt.Fprintf(c.App.Writer, "%s: %s\n", r, elsewhere.Error())
			} else if err != nil {
				fmt.Fprintf(c.App.ErrWriter, "gitmesh: %s: %s\n", r, message(err))
				failed++
			} else if done != "" {
				fmt.Fprintf(c.App.Writer, "%s: %s %s\n", r, done, a.settings.Device)
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d repositories could not be %s", failed, len(repos), what)
		}
		return nil
	}
}

// restFunc lists the repositories and those whose copy on device needs
// nothing done.
type restFunc func(ctx context.Context, d *sql.DB, device, root string) ([]string, map[string]bool, error)

// atRest: a copy recorded at the newest version, shown, unmarked and on
// disk needs no sync.
func atRest(ctx context.Context, d *sql.DB, device, root string) ([]string, map[string]bool, error) {
	rest, err := version.AtRest(ctx, d, device)
	if err != nil {
		return nil, nil, err
	}
	repos := make([]string, 0, len(rest))
	idle := make(map[string]bool, len(rest))
	for _, r := range rest {
		repos = append(repos, r.Repo)
		idle[r.Repo] = r.AtRest && gitexec.Exists(gitexec.RepoDir(root, r.Repo))
	}
	return repos, idle, nil
}

// tidyFirst does this device's disk tasks (copies to rename or remove:
// a repository renamed, deleted or moved while it was away) before next;
// a task that fails is reported, and the command fails after next.
func (a *app) tidyFirst(next func(*cli.Context, *sql.DB) error) func(*cli.Context, *sql.DB) error {
	return func(c *cli.Context, d *sql.DB) error {
		if err := a.settings.NeedDevice(); err != nil {
			return err
		}
		n, tidyErr := serve.NewNode(a.settings, d, a.log, tell).Tidy(c.Context)
		if n > 0 {
			fmt.Fprintf(c.App.Writer, "did %d disk tasks (copies moved away, deleted or renamed) on %s\n", n, a.settings.Device)
		}
		if tidyErr != nil {
			fmt.Fprintf(c.App.ErrWriter, "gitmesh: %s\n", message(fmt.Errorf("remove or rename the copies this device no longer holds: %w", tidyErr)))
		}
		if err := next(c, d); err != nil {
			return err
		}
		if tidyErr != nil {
			return fmt.Errorf("the renames and removals due on %s are not all done; they are tried again on the next sync", a.settings.Device)
		}
		return nil
	}
}

// notHeldError: the repository asked for is placed on other devices, so
// this one keeps no copy of it and has nothing to do.
type notHeldError struct {
	device  string
	holders []string
}

func (e notHeldError) Error() string {
	return fmt.Sprintf("not held by %s, nothing to do (its copies are on %s)", e.device, strings.Join(e.holders, ", "))
}

// syncHeld brings this device's copy of repo up to date, and says so when
// the device holds none.
func syncHeld(ctx context.Context, n *version.Node, repo string) error {
	st, err := version.Load(ctx, n.DB, repo)
	if err != nil {
		return err
	}
	var holders []string
	for _, h := range st.Holders {
		if h.Name == n.Device {
			return n.Sync(ctx, repo)
		}
		holders = append(holders, h.Name)
	}
	return notHeldError{device: n.Device, holders: holders}
}
