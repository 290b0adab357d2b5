package serve

import (
	"bufio"
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"gitmesh/config"
	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/version"
)

// clusterDigests answers a peer's digests request (verify): the refs
// digests of this device's copies of the named repositories, read as a
// write reads them (gitexec.CopyRefSets), a few at once. Read-only: one
// query for which names are registered (a git directory gitmesh does not
// know is "missing", as a fetch would call it "not found"), on a
// connection closed before git starts; nothing is locked or written.
func clusterDigests(ctx context.Context, s config.Settings, c Conn) error {
	if s.RepoRoot == "" {
		return config.UnsetError(config.NoRepoRoot)
	}
	start := time.Now()
	// The whole answer is bounded by fetch_timeout, the peer's bound on it.
	ctx, cancel := context.WithTimeout(ctx, s.FetchTimeout.D())
	defer cancel()
	type request struct {
		names []string
		err   error
	}
	read := make(chan request, 1)
	go func() {
		names, err := gitexec.ReadDigestsRequest(c.In)
		read <- request{names, err}
	}()
	var names []string
	select {
	case r := <-read:
		if r.err != nil {
			return r.err
		}
		names = r.names
	case <-ctx.Done():
		return fmt.Errorf("read the digests request: %w", ctx.Err())
	}
	known, err := registeredOf(ctx, s, names)
	if err != nil {
		return err
	}
	g := Git(s, c.Log)
	answers := make([]gitexec.CopyDigest, len(names))
	missing := make([]bool, len(names))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.NumCPU(), len(names)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				dir, err := gitexec.ConfinedRepoDir(s.RepoRoot, names[i])
				if err != nil || !known[names[i]] || !gitexec.Exists(dir) {
					missing[i] = true
					continue
				}
				visible, staged, head, err := g.CopyRefSets(ctx, dir)
				if err != nil {
					c.Log.Warn().Str("repo", names[i]).Err(err).Msg("digests request: read the copy")
					answers[i].Err = err
					continue
				}
				answers[i] = gitexec.CopyDigest{Visible: visible.Digest(head), Staged: staged.Digest(head)}
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	c.Log.Info().Str("op", "digests").Int("repos", len(names)).Dur("duration", time.Since(start)).Msg("digests request")
	out := bufio.NewWriter(c.Out)
	for i, name := range names {
		if err := gitexec.WriteDigest(out, name, answers[i], missing[i]); err != nil {
			return err
		}
	}
	return out.Flush()
}

// registeredOf looks up which of names are registered repositories, in
// one statement bounded by lock_timeout, on a connection it closes.
func registeredOf(ctx context.Context, s config.Settings, names []string) (map[string]bool, error) {
	dbh, err := clusterDB(s, "digests", "")
	if err != nil {
		return nil, err
	}
	defer dbh.Close()
	ctx, cancel := db.Bound(ctx, s.LockTimeout.D())
	defer cancel()
	found, err := version.RegisteredAmong(ctx, dbh, names)
	if err != nil {
		return nil, fmt.Errorf("look up the repositories of a digests request: %w", err)
	}
	known := make(map[string]bool, len(found))
	for _, n := range found {
		known[n] = true
	}
	return known, nil
}
