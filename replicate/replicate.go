// Package replicate brings the devices a push left behind up to date
// without waiting for a read there: Converge runs once, detached from the
// pushing client, on the writer's device; Follow is the optional
// long-running per-device process (`gitmesh replicate`).
// It schedules; the catching up itself is package version's.
package replicate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"

	"gitmesh/db"
	"gitmesh/retention"
	"gitmesh/version"
)

// Converge brings every other holder of repo that lags, or holds the
// newest version staged but not shown, up to date, all at once: a peer
// whose copies are on a path here directly (as that device), an ssh://
// peer by asking it to sync. Each takes its own locks and records its own
// version.
func Converge(ctx context.Context, n *version.Node, repo string) error {
	st, err := version.Load(ctx, n.DB, repo)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for _, h := range st.Holders {
		if h.Name == n.Device || current(st, h) && !marked(st, h) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := n.SyncDevice(ctx, h, repo)
			n.Log.Info().Str("op", "converge").Str("repo", repo).Str("peer", h.Name).
				Dur("duration", time.Since(start)).AnErr("error", err).Msg("catch-up after push")
			if err != nil {
				mu.Lock()
				failed = append(failed, h.Name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// This copy took the push's refs as loose files; pack them once
	// there are many (the peers pack theirs when they sync).
	if err := n.PackRefs(ctx, repo); err != nil {
		n.Log.Warn().Err(err).Str("repo", repo).Msg("pack refs")
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return &LagError{Repo: repo, Devices: failed}
	}
	return nil
}

// LagError names the devices a converge left behind: expected while a
// device is down, they catch up on their next read or sweep.
type LagError struct {
	Repo    string
	Devices []string
}

func (e *LagError) Error() string {
	if len(e.Devices) == 1 {
		return fmt.Sprintf("%s did not catch up on %s; it will on its next read or sweep", e.Devices[0], e.Repo)
	}
	return fmt.Sprintf("%s did not catch up on %s; they will on their next reads or sweeps", strings.Join(e.Devices, ", "), e.Repo)
}

// current reports whether h shows the newest version of st.
func current(st version.State, h version.Device) bool {
	for _, c := range st.Copies {
		if c.DeviceID == h.ID {
			return c.Version == st.Highest() && !c.Pending
		}
	}
	return false
}

// marked reports whether h holds a write mark: asked to sync, it repairs
// the mark if its writer is gone.
func marked(st version.State, h version.Device) bool {
	for _, c := range st.Copies {
		if c.DeviceID == h.ID {
			return c.IsWriting
		}
	}
	return false
}

// PruneEvery is how often Follow prunes the history tables.
const PruneEvery = time.Hour

// Follow keeps this device's copies at the newest version until ctx ends:
// it catches up on each repository a push announces (LISTEN), and sweeps
// every repository at start, after a lost connection and every sweep. l
// listens on version.Notify (db.Listen). Every PruneEvery it deletes
// history rows older than keep (0: never).
func Follow(ctx context.Context, n *version.Node, l *pq.Listener, sweep, keep time.Duration) error {
	Sweep(ctx, n)
	tick := time.NewTicker(sweep)
	defer tick.Stop()
	heal := time.NewTicker(HealEvery)
	defer heal.Stop()
	prune := time.NewTicker(PruneEvery)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-prune.C:
			if deleted, err := retention.Prune(ctx, n.DB, keep); err != nil {
				n.Log.Warn().Err(err).Msg("replicate: prune history")
			} else {
				n.Log.Info().Interface("deleted", deleted).Msg("replicate: pruned history")
			}
		case <-heal.C:
			HealMarks(ctx, n)
		case note := <-l.Notify:
			if note == nil { // reconnected: notifications may have been missed
				Sweep(ctx, n)
				continue
			}
			catchUp(ctx, n, note.Extra)
		case <-tick.C:
			Sweep(ctx, n)
		}
	}
}

// HealEvery is how often Follow looks for this device's write marks whose
// writer died: no notification tells of a death, and it is one query.
const HealEvery = 5 * time.Second

// HealMarks repairs this device's write marks whose writer is gone (see
// version.Node.Heal); a live push's mark is left alone.
func HealMarks(ctx context.Context, n *version.Node) {
	repos, err := db.Strings(ctx, n.DB, `SELECT r.name FROM working_copy_versions v
		JOIN repositories r ON r.id = v.repository_id JOIN devices d ON d.id = v.device_id
		WHERE d.name = $1 AND v.is_writing ORDER BY r.name`, n.Device)
	if err != nil {
		n.Log.Warn().Err(err).Msg("replicate: list write marks")
		return
	}
	for _, r := range repos {
		if _, err := n.Heal(ctx, r); err != nil {
			n.Log.Warn().Err(err).Str("repo", r).Msg("replicate: heal")
		}
	}
}

// Sweep does this device's disk tasks (copies to remove or rename), then
// catches up on every repository it holds.
func Sweep(ctx context.Context, n *version.Node) {
	if done, err := n.Tidy(ctx); err != nil || done > 0 {
		n.Log.Info().Int("done", done).AnErr("error", err).Msg("replicate: disk tasks")
	}
	repos, err := db.Strings(ctx, n.DB, `SELECT r.name FROM repositories r
		JOIN holders h ON h.repository_id = r.id JOIN devices d ON d.id = h.device_id
		WHERE d.name = $1 ORDER BY r.name`, n.Device)
	if err != nil {
		n.Log.Warn().Err(err).Msg("replicate: list repositories")
		return
	}
	for _, r := range repos {
		if ctx.Err() != nil {
			return
		}
		catchUp(ctx, n, r)
	}
}

func catchUp(ctx context.Context, n *version.Node, repo string) {
	start := time.Now()
	err := n.Sync(ctx, repo)
	if errors.Is(err, sql.ErrNoRows) || errors.Is(err, version.ErrNotFound) {
		return
	}
	ev := n.Log.Info()
	if err != nil {
		ev = n.Log.Warn().Err(err)
	}
	ev.Str("op", "replicate").Str("repo", repo).Dur("duration", time.Since(start)).Msg("catch up")
}
