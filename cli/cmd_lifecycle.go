package cli

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"gitmesh/admin"
	"gitmesh/serve"
	"gitmesh/version"
)

// The lifecycle of repositories and devices, cluster-wide: repo rename,
// repo delete (in the repo family) and device set-url (in the device
// family).

func init() {
	// A rename or delete waits for the locks (lock_timeout), then asks
	// each holder to act (a request over ssh each): every step is bounded
	// on its own (admin.RenameRepo, admin.DeleteRepo, Node.TidyDevice),
	// not the whole command by one lock step.
	unbounded["repo-rename"] = true
	unbounded["repo-delete"] = true
}

func (a *app) repoRenameCommand() *cli.Command {
	return &cli.Command{
		Name: "rename", Usage: "rename a repository on every device (grants on its exact name follow)", ArgsUsage: "OLD NEW",
		Action: a.withDB("repo-rename", func(c *cli.Context, d *sql.DB) error {
			v, err := args(c, "OLD", "NEW")
			if err != nil {
				return err
			}
			old, nw := repoArg(v[0]), repoArg(v[1])
			r, err := admin.RenameRepo(c.Context, d, a.settings.LockTimeout.D(), old, nw, tell)
			if err != nil {
				return err
			}
			a.log.Info().Str("repo", old).Str("to", nw).Msg("repository renamed")
			msg := fmt.Sprintf("renamed repository %s to %s; %s", old, nw, a.tidyHolders(c, d, nw, r.Holders, "copies renamed on", "rename"))
			if len(r.Globs) > 0 {
				msg += fmt.Sprintf("; grants by pattern (%s) were left as they are and now match differently: see 'gitmesh grants'", strings.Join(r.Globs, ", "))
			}
			return done(c, "%s", msg)
		}),
	}
}

func (a *app) repoDeleteCommand() *cli.Command {
	return &cli.Command{
		Name: "delete", Usage: "delete a repository, its history and every copy, on every device, for good", ArgsUsage: "REPO",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "yes", Usage: "accepted for scripts that confirm; not needed"}},
		Action: a.withDB("repo-delete", func(c *cli.Context, d *sql.DB) error {
			v, err := parseArgs(c, []string{"REPO"}, nil, []string{"yes"})
			if err != nil {
				return err
			}
			repo := repoArg(v.pos[0])
			if err := admin.CheckRepo(c.Context, d, repo); err != nil {
				return err
			}
			devs, err := admin.DeleteRepo(c.Context, d, a.settings.LockTimeout.D(), repo, tell)
			if err != nil {
				return err
			}
			a.log.Info().Str("repo", repo).Msg("repository deleted")
			return done(c, "deleted repository %s and the grants on its name; %s", repo, a.tidyHolders(c, d, repo, devs, "copies removed from", "remove"))
		}),
	}
}

func (a *app) deviceSetURLCommand() *cli.Command {
	return &cli.Command{
		Name: "set-url", Usage: "change where peers reach a device (its next fetch, stage or sync uses it)", ArgsUsage: "NAME URL",
		Action: a.withDB("device-set-url", func(c *cli.Context, d *sql.DB) error {
			v, err := args(c, "NAME", "URL")
			if err != nil {
				return err
			}
			if err := admin.SetDeviceURL(c.Context, d, v[0], v[1]); err != nil {
				return err
			}
			a.log.Info().Str("device", v[0]).Str("url", v[1]).Msg("device URL set")
			return done(c, "device %s is now reached at %s", v[0], v[1])
		}),
	}
}

// tidyHolders asks each device in devs, all at once, to do its disk tasks
// now (rename or remove its copy of repo) and says which did and which
// will on their return: asking is best effort, the task is recorded
// already. Each is given lock_timeout (its read lock) and three connect
// timeouts (the request over ssh).
func (a *app) tidyHolders(c *cli.Context, d *sql.DB, repo string, devs []version.Device, did, verb string) string {
	ctx, cancel := context.WithTimeout(c.Context, a.settings.LockTimeout.D()+3*a.settings.ConnectTimeout.D())
	defer cancel()
	node := serve.NewNode(a.settings, d, a.log, func(string, ...any) {})
	failed := make([]bool, len(devs))
	var wg sync.WaitGroup
	for i, h := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := node.TidyDevice(ctx, h, repo); err != nil {
				a.log.Warn().Err(err).Str("repo", repo).Str("device", h.Name).Msg("disk task not done yet")
				failed[i] = true
			}
		}()
	}
	wg.Wait()
	var ok, later []string
	for i, h := range devs {
		if failed[i] {
			later = append(later, h.Name)
		} else {
			ok = append(ok, h.Name)
		}
	}
	var parts []string
	if len(ok) > 0 {
		parts = append(parts, fmt.Sprintf("%s %s", did, strings.Join(ok, ", ")))
	}
	if len(later) > 0 {
		parts = append(parts, fmt.Sprintf("%s could not be reached and will %s its copy on its return (or run 'gitmesh sync' there)", strings.Join(later, ", "), verb))
	}
	if len(parts) == 0 {
		return "no device held a copy"
	}
	return strings.Join(parts, "; ")
}
