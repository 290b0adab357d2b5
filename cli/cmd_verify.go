package cli

import (
	"bytes"
	"database/sql"
	"fmt"
	"runtime"
	"sync"

	"github.com/urfave/cli/v2"

	"gitmesh/admin"
	"gitmesh/serve"
)

func init() {
	register(func(a *app) *cli.Command {
		return &cli.Command{
			Name:      "verify",
			Usage:     "read every copy from its device and compare it with what was recorded",
			ArgsUsage: "[REPO]",
			Flags: []cli.Flag{&cli.IntFlag{Name: "jobs", Value: 2 * runtime.NumCPU(),
				DefaultText: "twice the number of CPUs",
				Usage:       "copies read at once, over every repository (1 to 256)"}},
			Action: a.withDB("verify", a.verify),
		}
	})
}

// verifyChunk is how many repositories verify reads from each ssh://
// device in one digests request before comparing them with their
// records: one request per peer per chunk, within fetch_timeout, and the
// time between a copy's read and its record's load stays short.
const verifyChunk = 1000

// verify checks the repositories, reading --jobs copies at a time, and
// prints each one's report whole and in name order, a chunk at a time.
func (a *app) verify(c *cli.Context, d *sql.DB) error {
	jobs := c.Int("jobs")
	if jobs < 1 || jobs > 256 {
		return usageError{fmt.Errorf("--jobs must be from 1 to 256, not %d", jobs)}
	}
	repos, err := repoArgs(c, d)
	if err != nil {
		return err
	}
	d.SetMaxOpenConns(jobs)
	devs, err := admin.Devices(c.Context, d)
	if err != nil {
		return err
	}
	v := &admin.Verifier{DB: d, Git: serve.Git(a.settings, a.log), Devices: devs, Jobs: jobs}
	type report struct {
		out      bytes.Buffer
		problems int
		err      error
	}
	reports := make([]report, len(repos))
	problems := 0
	for from := 0; from < len(repos); from += verifyChunk {
		chunk := repos[from:min(from+verifyChunk, len(repos))]
		v.Prefetch(c.Context, chunk)
		next := make(chan int)
		var wg sync.WaitGroup
		for w := 0; w < min(jobs, len(chunk)); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					r := &reports[from+i]
					r.problems, r.err = v.Verify(c.Context, chunk[i], &r.out)
				}
			}()
		}
		for i := range chunk {
			next <- i
		}
		close(next)
		wg.Wait()
		for i := range chunk {
			r := &reports[from+i]
			c.App.Writer.Write(r.out.Bytes())
			if r.err != nil {
				return r.err
			}
			problems += r.problems
		}
	}
	if problems > 0 {
		return fmt.Errorf("verify found %d problem(s), listed above", problems)
	}
	return nil
}
