package cli

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"gitmesh/admin"
	"gitmesh/serve"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "thaw",
			Usage:     "repair a frozen repository: make one device's copy the newest, or resync one from the others",
			ArgsUsage: "REPO|--all --promote DEVICE|--demote DEVICE [--force]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "promote", Usage: "make DEVICE's copy the newest; the others resync from it"},
				&cli.StringFlag{Name: "demote", Usage: "make DEVICE's copy resync from the others"},
				&cli.BoolFlag{Name: "all", Usage: "every repository DEVICE holds"},
				&cli.BoolFlag{Name: "force", Usage: "discard the ref values thaw lists as it runs"},
				&cli.BoolFlag{Name: "discard-recorded", Usage: "let --demote drop recorded (acknowledged) versions no other copy holds"},
			},
			Action: a.withDB("thaw", a.thaw),
		}
	})
}

func (a *app) thaw(c *cli.Context, d *sql.DB) error {
	want := []string{"REPO"}
	if c.Bool("all") || contains(c.Args().Slice(), "--all") {
		want = nil
	}
	v, err := parseArgs(c, want, []string{"promote", "demote"}, []string{"all", "force", "discard-recorded"})
	if err != nil {
		return err
	}
	t := admin.Thaw{Promote: v.vals["promote"] != "", Device: v.vals["promote"] + v.vals["demote"],
		Force: v.bools["force"], DiscardRecorded: v.bools["discard-recorded"], Git: serve.Git(a.settings, a.log), LockTimeout: a.settings.LockTimeout.D(), Out: c.App.Writer}
	if (v.vals["promote"] == "") == (v.vals["demote"] == "") {
		return usageError{errors.New("thaw needs exactly one of --promote DEVICE or --demote DEVICE")}
	}
	// Before any lock wait, and so that --all with a mistyped device is no
	// silent success.
	if err := admin.CheckDevice(c.Context, d, t.Device); err != nil {
		return err
	}
	repos := v.pos
	if v.bools["all"] {
		if repos, err = admin.ReposOf(c.Context, d, t.Device); err != nil {
			return err
		}
		if len(repos) == 0 {
			fmt.Fprintf(c.App.Writer, "device %s holds no recorded copy of any repository: nothing to thaw\n", t.Device)
		}
	}
	var failed []error
	for _, r := range repos {
		t.Repo = r
		if err := t.Run(c.Context, d); err != nil {
			if len(repos) == 1 {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "gitmesh: %s\n", message(err))
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d repositories were not thawed: %w", len(failed), len(repos), failed[0])
	}
	return nil
}
