package version

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/lock"
)

// replication is the staging of one push on the other holders.
type replication struct {
	w      *write
	mu     sync.Mutex // w.conn is shared by the peers' goroutines
	held   []lock.Key
	stored []Device
	failed map[string]string // device -> why, for the log and the user
	tried  []staging         // every peer's outcome, for sync_log
}

// staging is one peer's part in a push.
type staging struct {
	peer Device
	took time.Duration
	err  error
}

// peerLockPoll is how often a staging push retries a peer's busy read lock.
const peerLockPoll = 50 * time.Millisecond

// replicate pushes this copy's staged refs to every other holder at once,
// each under that holder's read lock (so no catch-up there overwrites
// the stage before it is recorded), and returns once a quorum holds them
// and the rest had a short grace. The locks stay held until release.
func (w *write) replicate(ctx context.Context) *replication {
	r := &replication{w: w, failed: map[string]string{}}
	var peers []Device
	for _, h := range w.st.Holders {
		if h.ID != w.st.SelfID {
			peers = append(peers, h)
		}
	}
	need := w.st.Quorum(w.n.WriteQuorum) - 1
	if len(peers) == 0 {
		return r
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type done struct {
		peer Device
		err  error
		took time.Duration
	}
	results := make(chan done, len(peers))
	for _, p := range peers {
		go func() {
			start := time.Now()
			err := r.stageOn(pctx, p)
			results <- done{p, err, time.Since(start)}
		}()
	}
	start := time.Now()
	var grace <-chan time.Time
	for left := len(peers); left > 0; left-- {
		if len(r.stored) >= need && grace == nil {
			wait := min(max(time.Since(start), 50*time.Millisecond), 2*time.Second)
			grace = time.After(wait)
		}
		var d done
		select {
		case d = <-results:
		case <-grace:
			cancel() // stragglers are left to the catch-up after the answer
			d = <-results
		}
		if d.err != nil && pctx.Err() != nil && ctx.Err() == nil {
			d.err = errLeftBehind
		}
		r.tried = append(r.tried, staging{d.peer, d.took, d.err})
		if d.err == errLeftBehind {
			r.failed[d.peer.Name] = d.err.Error()
			w.n.Log.Info().Str("repo", w.st.Repo).Str("peer", d.peer.Name).Dur("took", d.took).Msg("stage on peer: left to the catch-up after the answer")
		} else if d.err != nil {
			r.failed[d.peer.Name] = d.err.Error()
			w.n.Log.Warn().Str("repo", w.st.Repo).Str("peer", d.peer.Name).Dur("took", d.took).Err(d.err).Msg("stage on peer")
		} else {
			w.n.Log.Debug().Str("repo", w.st.Repo).Str("peer", d.peer.Name).Dur("took", d.took).Msg("staged on peer")
			r.stored = append(r.stored, d.peer)
		}
	}
	return r
}

// errLeftBehind is a straggler's staging, cut once a quorum held the
// push and the grace ended: not a fault, it catches up after the answer.
var errLeftBehind = errors.New("not staged in time: a quorum held the push first; it catches up after the answer")

// stages are each peer's staging of this push, for sync_log (kind
// 'stage', from the writer): whether it holds the new version, or why
// not.
func (w *write) stages(r *replication) []Stage {
	if r == nil {
		return nil
	}
	out := make([]Stage, len(r.tried))
	for i, t := range r.tried {
		out[i] = Stage{Device: t.peer.ID, FromVersion: -1, MS: t.took.Milliseconds(), Result: "ok"}
		for _, c := range w.st.Copies {
			if c.DeviceID == t.peer.ID {
				out[i].FromVersion = c.Version
			}
		}
		switch {
		case t.err != nil:
			out[i].Result = t.err.Error()
			if len(out[i].Result) > 1000 {
				out[i].Result = out[i].Result[:1000]
			}
		case !w.committed:
			out[i].Result = "stored, but the push was not recorded"
		}
	}
	return out
}

// stageOn takes p's read lock and mirrors the stage there.
func (r *replication) stageOn(ctx context.Context, p Device) error {
	w := r.w
	key := lock.Read(w.st.RepoID, p.ID)
	if err := r.lockPeer(ctx, key); err != nil {
		return err
	}
	if brokenSkipStage {
		return nil // a deliberately broken build: see broken.go
	}
	url := PeerURL(p.URL, w.st.Repo)
	local := !strings.Contains(p.URL, "://")
	if local {
		r.mu.Lock()
		err := w.n.prepareLocal(ctx, w.conn, w.st.RepoID, w.st.Repo, p, url)
		r.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return w.n.Git.PushStage(ctx, w.dir, url, local)
}

// lockPeer polls for key on the shared connection until LockTimeout: a
// peer busy catching up for longer counts as unreachable.
func (r *replication) lockPeer(ctx context.Context, key lock.Key) error {
	deadline := time.Now().Add(r.w.n.LockTimeout)
	for {
		r.mu.Lock()
		ok, err := lock.Try(ctx, r.w.conn, key)
		if err == nil && ok {
			r.held = append(r.held, key)
		}
		r.mu.Unlock()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("its read lock stayed busy for %s", r.w.n.LockTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(peerLockPoll):
		}
	}
}

// release lets go of the peers' read locks; it may run twice.
func (r *replication) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.held {
		r.w.n.unlock(r.w.conn, r.w.st.Repo, k)
	}
	r.held = nil
}

// dbLost is the database error that failed a peer's staging, if one
// did: the peers' read locks are taken on the writer's session, so a
// failover fails them all at once.
func (r *replication) dbLost() error {
	for _, t := range r.tried {
		if t.err != nil && db.IsUnavailable(t.err) {
			return t.err
		}
	}
	return nil
}

// failedNames names the holders that did not store the push, for the user.
func (r *replication) failedNames() []string {
	var out []string
	for _, h := range r.w.st.Holders {
		if _, ok := r.failed[h.Name]; ok {
			out = append(out, h.Name)
		}
	}
	return out
}

// prepareLocal makes a local-path peer's copy ready to receive a stage:
// created if missing (forgotten first, see ForgetCopy), freed of a killed
// git's lock files. The caller holds its read lock.
func (n *Node) prepareLocal(ctx context.Context, q execer, repoID int32, repo string, peer Device, dir string) error {
	if !gitexec.Exists(dir) {
		if err := gitexec.CheckRoot(peer.URL); err != nil {
			return err
		}
		as := *n // the peer, renaming its copy as it would itself
		as.Device, as.RepoRoot = peer.Name, peer.URL
		if err := as.RenamePending(ctx, repo); err != nil {
			return err
		}
	}
	if !gitexec.Exists(dir) {
		bctx, cancel := db.Bound(ctx, n.LockTimeout)
		err := ForgetCopy(bctx, q, repoID, peer.ID)
		if stall := db.Stalled(bctx, "forget a missing copy", n.LockTimeout); stall != nil {
			err = stall
		}
		cancel()
		if err != nil {
			return err
		}
		if err := n.Git.InitCopy(ctx, peer.URL, dir); err != nil {
			return err
		}
	}
	return n.removeStaleLocks(dir)
}

// execer is *sql.DB, *sql.Conn or *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ForgetCopy records that a device no longer holds any version of a
// repository: its copy is missing (a lost or wiped disk). It must run
// before an empty copy is created in its place, or that empty copy would
// pass for the recorded version. A copy with a write mark is kept: the
// mark is the administrator's to clear.
func ForgetCopy(ctx context.Context, q execer, repoID, deviceID int32) error {
	_, err := q.ExecContext(ctx, `DELETE FROM working_copy_versions
		WHERE repository_id = $1 AND device_id = $2 AND NOT is_writing`, repoID, deviceID)
	if err != nil {
		return fmt.Errorf("forget a missing copy: %w", err)
	}
	return nil
}

// show makes dir's visible refs equal its staged ones, if those are the
// version recorded for the copy (digest), and clears the copy's pending
// mark. The caller holds the copy's read lock.
func (n *Node) show(ctx context.Context, conn *sql.Conn, repoID, deviceID int32, dir string, v int64, digest string, hooks bool) error {
	visible, staged, err := n.Git.ReadRefs(ctx, dir)
	if err != nil {
		return err
	}
	head, err := gitexec.Head(dir)
	if err != nil {
		return fmt.Errorf("read HEAD: %w", err)
	}
	if got := staged.Digest(head); got != digest {
		return fmt.Errorf("the staged refs are not version %d", v)
	}
	if err := n.Git.UpdateRefs(ctx, dir, gitexec.ShowCommands(visible, staged), hooks); err != nil {
		return err
	}
	ctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	_, err = conn.ExecContext(ctx, clearPendingQuery, repoID, deviceID, v, digest)
	return err
}

// clearPendingQuery records that a copy shows the version it holds.
const clearPendingQuery = `UPDATE working_copy_versions SET refs_pending = false, updated_at = now()
WHERE repository_id = $1 AND device_id = $2 AND version = $3 AND refs_digest = $4 AND refs_pending`
