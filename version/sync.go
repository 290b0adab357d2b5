package version

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/lock"
	"gitmesh/public"
)

// Node is this device as the protocols see it.
type Node struct {
	DB            *sql.DB
	Device        string
	RepoRoot      string
	Git           gitexec.Git
	LockTimeout   time.Duration
	RecordTimeout time.Duration
	// Bin is the gitmesh binary, run by git as the push's hook.
	Bin string
	// WriteQuorum is the write_quorum setting: 0 for a majority.
	WriteQuorum int
	// After starts, detached from the client, what is left once git has
	// reported a push (see Afterward); nil or an error does it in place.
	After func(Afterward) error
	// Limits of a push (see limits.go): how many pushes may wait for the
	// write lock, and the bounds on receive-pack (0: none).
	MaxPushWaiters  int
	PushTimeout     time.Duration
	PushIdleTimeout time.Duration
	// The size bounds of one push: its pack's bytes (git's
	// receive.maxInputSize) and its ref updates; 0 is none.
	MaxPushBytes int64
	MaxPushRefs  int
	// Client is what the pushing client sends (serve's stdin); nil is
	// os.Stdin.
	Client io.Reader
	Log    zerolog.Logger
	// Tell writes one sentence to the user (stderr in serve).
	Tell func(format string, args ...any)
}

// ErrNoVersions means no device has a recorded version of the repository,
// so there is no way to know which copy is right.
var ErrNoVersions = errors.New("no device holds a recorded version")

// notThatVersionError is a fetch whose refs were not the version the peer
// had recorded: a write there is in progress, or a newer version was
// recorded and shown since.
type notThatVersionError int64

func (e notThatVersionError) Error() string {
	return fmt.Sprintf("its refs are not version %d (a write there is in progress)", int64(e))
}

// NoPeerError means no device at the newest version could be fetched from.
type NoPeerError struct {
	Repo    string
	Version int64
	Tried   []string // "device: error"
	// Public is Tried for users: "device: what failed", no paths or addresses.
	Public []string
	// movedOn: some peer's refs were not the version looked for (a newer
	// one may have been recorded since the state was read).
	movedOn bool
}

// PublicMessage is the error for a user of device: the devices tried and
// what failed, the detail left to the log.
func (e *NoPeerError) PublicMessage(device string) string {
	if len(e.Public) == 0 {
		return fmt.Sprintf("no other device holds version %d of %s, and device %s's copy is missing; tell an administrator", e.Version, e.Repo, device)
	}
	return fmt.Sprintf("no up-to-date copy of %s (version %d) is reachable from device %s: %s; try again later, and tell an administrator if it persists",
		e.Repo, e.Version, device, strings.Join(e.Public, "; "))
}

func (e *NoPeerError) Error() string {
	if len(e.Tried) == 0 {
		return fmt.Sprintf("no other device holds version %d of %s, and this device's copy is missing", e.Version, e.Repo)
	}
	return fmt.Sprintf("no up-to-date copy of %s (version %d) is reachable: %s",
		e.Repo, e.Version, strings.Join(e.Tried, "; "))
}

// CatchUp brings this device's copy of st.Repo to the newest version. st is
// the state read on the fast path; when it shows this device current,
// CatchUp does nothing.
func (n *Node) CatchUp(ctx context.Context, st State) error {
	if n.Current(st) {
		return nil
	}
	if len(st.Copies) == 0 {
		return ErrNoVersions
	}
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	key := lock.Read(st.RepoID, st.SelfID)
	if err := lock.Acquire(ctx, conn, key, n.LockTimeout, n.waiting(st.Repo, key)); err != nil {
		return err
	}
	defer n.unlock(conn, st.Repo, key)
	// Another reader may have fetched while this one waited.
	was := st.RepoID
	st, err = n.reload(ctx, conn, st.Repo)
	if err == nil && st.RepoID != was {
		err = ErrNotFound // renamed or deleted meanwhile, the name taken again
	}
	if err != nil {
		return err
	}
	if err := n.stillHolds(st); err != nil {
		return err
	}
	return n.syncLocked(ctx, conn, st)
}

// Sync brings this device's copy of repo to the newest version, as a read
// would, for an administrator.
func (n *Node) Sync(ctx context.Context, repo string) error {
	st, err := load(ctx, n.DB, repo, "", n.Device)
	if err != nil {
		return err
	}
	if st.SelfID == 0 {
		return fmt.Errorf("%w: %s", ErrNoDevice, n.Device)
	}
	if !st.Holds() {
		return nil // placed elsewhere: this device keeps no copy
	}
	if c, frozen := st.Frozen(); frozen && c.DeviceID == st.SelfID {
		if _, err := n.Heal(ctx, repo); err != nil {
			n.Log.Warn().Err(err).Str("repo", repo).Msg("heal")
		}
		if st, err = load(ctx, n.DB, repo, "", n.Device); err != nil {
			return err
		}
	}
	if err := n.CatchUp(ctx, st); err != nil {
		return err
	}
	// After a push or a catch-up moved many refs: off every client's clock.
	if err := n.PackRefs(ctx, repo); err != nil {
		n.Log.Warn().Err(err).Str("repo", repo).Msg("pack refs")
	}
	return nil
}

// Current reports whether this device holds the newest version and its
// copy is on disk (a lost disk is caught up like a stale copy).
func (n *Node) Current(st State) bool {
	return st.Current() && gitexec.Exists(gitexec.RepoDir(n.RepoRoot, st.Repo))
}

func (n *Node) reload(ctx context.Context, conn *sql.Conn, repo string) (State, error) {
	ctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	st, err := load(ctx, conn, repo, "", n.Device)
	if err != nil {
		return State{}, err
	}
	if st.SelfID == 0 {
		return State{}, fmt.Errorf("%w: %s", ErrNoDevice, n.Device)
	}
	return st, nil
}

// syncLocked brings this device's copy to the newest version: it shows
// the staged refs when this copy holds the version staged, and otherwise
// fetches a leader's refs into its stage and shows them. Visible refs
// only ever move to a recorded version. The caller holds this device's
// read lock on the repository.
//
// A push recorded and shown between the state's load and the fetches
// makes every leader's refs differ from the version looked for: then the
// state is read again and, when a newer version was recorded, the
// catch-up goes for that one (at most maxCatchUpRounds in all).
func (n *Node) syncLocked(ctx context.Context, conn *sql.Conn, st State) error {
	for round := 1; ; round++ {
		err := n.syncOnce(ctx, conn, st)
		var np *NoPeerError
		if !errors.As(err, &np) || !np.movedOn || round == maxCatchUpRounds {
			return err
		}
		newer, rerr := n.reload(ctx, conn, st.Repo)
		if rerr != nil || newer.RepoID != st.RepoID || newer.Highest() <= st.Highest() {
			return err
		}
		n.Log.Info().Str("repo", st.Repo).Int64("version", st.Highest()).Int64("newer", newer.Highest()).
			Msg("a newer version was recorded while catching up; catching up to it")
		st = newer
	}
}

// maxCatchUpRounds bounds how often a catch-up that pushes keep
// overtaking starts again for the newer version.
const maxCatchUpRounds = 3

// syncOnce is one round of syncLocked, for the version st names.
func (n *Node) syncOnce(ctx context.Context, conn *sql.Conn, st State) error {
	if n.Current(st) {
		return nil
	}
	if len(st.Copies) == 0 {
		return ErrNoVersions
	}
	final := gitexec.RepoDir(n.RepoRoot, st.Repo)
	dir := final
	if !gitexec.Exists(final) {
		// Renamed while this device was away: its copy is under the old name.
		if err := n.RenamePending(ctx, st.Repo); err != nil {
			return err
		}
		if n.Current(st) {
			return nil
		}
	}
	if !gitexec.Exists(final) {
		// A missing copy (a lost disk) is built aside and renamed into
		// place only once it shows a recorded version: an empty copy never
		// passes for one, even when every fetch fails.
		if err := gitexec.CheckRoot(n.RepoRoot); err != nil {
			return fmt.Errorf("create copy of %s: %w", st.Repo, err)
		}
		if err := gitexec.RemoveHalfMade(final); err != nil { // else the rename into place fails
			return fmt.Errorf("create copy of %s: %w", st.Repo, err)
		}
		dir = final + ".gitmesh-new"
		os.RemoveAll(dir) // left by a killed catch-up; the read lock is ours
		if err := n.Git.InitCopy(ctx, n.RepoRoot, dir); err != nil {
			return fmt.Errorf("create copy of %s: %w", st.Repo, err)
		}
		defer os.RemoveAll(dir) // gone after the rename
		if done, err := n.emptyIsRecorded(ctx, st, dir, final); done || err != nil {
			return err
		}
	}
	if err := n.removeStaleLocks(dir); err != nil {
		return err
	}
	// Every holder of this read lock checks that its session still holds
	// it before it moves a ref: advisory locks do not survive a failover.
	rkey := lock.Read(st.RepoID, st.SelfID)
	if self, ok := st.Self(); ok && self.Pending && self.Version == st.Highest() {
		if err := n.held(ctx, conn, rkey); err != nil {
			return err
		}
		err := n.show(ctx, conn, st.RepoID, st.SelfID, dir, self.Version, self.Digest, false)
		if err == nil {
			return nil
		}
		n.Log.Warn().Err(err).Str("repo", st.Repo).Msg("show staged refs; fetching instead")
	}
	leaders := st.Leaders()
	rand.Shuffle(len(leaders), func(i, j int) { leaders[i], leaders[j] = leaders[j], leaders[i] })
	// A copy with a write in progress (or frozen) may be mid-way: fetch
	// from it only when no other copy is current.
	sort.SliceStable(leaders, func(i, j int) bool { return !leaders[i].IsWriting && leaders[j].IsWriting })
	noPeer := &NoPeerError{Repo: st.Repo, Version: st.Highest()}
	for _, peer := range leaders {
		if !strings.Contains(peer.URL, "://") { // a local path: its copy may wait for a rename
			n.RenameIfDue(ctx, st.RepoID, peer.DeviceID, peer.Device, peer.URL, st.Repo)
		}
		start := time.Now()
		n.tellCatchUp(st, peer)
		err := n.fetchFrom(ctx, dir, st.Repo, peer)
		n.logSync(ctx, conn, st, peer, time.Since(start), err)
		if err != nil {
			noPeer.movedOn = noPeer.movedOn || errors.As(err, new(notThatVersionError))
			noPeer.Tried = append(noPeer.Tried, fmt.Sprintf("%s: %v", peer.Device, err))
			why, ok := public.Why(err)
			if !ok {
				why = "the fetch failed"
			}
			noPeer.Public = append(noPeer.Public, peer.Device+": "+why)
			continue
		}
		if err := n.held(ctx, conn, rkey); err != nil {
			return err
		}
		visible, staged, err := n.Git.ReadRefs(ctx, dir)
		if err != nil {
			return fmt.Errorf("read refs of %s: %w", st.Repo, err)
		}
		if err := n.Git.UpdateRefs(ctx, dir, gitexec.ShowCommands(visible, staged), false); err != nil {
			return fmt.Errorf("show version %d of %s: %w", peer.Version, st.Repo, err)
		}
		if dir != final {
			if err := os.Rename(dir, final); err != nil {
				return fmt.Errorf("create copy of %s: %w", st.Repo, err)
			}
		}
		bctx, cancel := db.Bound(ctx, n.LockTimeout)
		res, err := conn.ExecContext(bctx, recordSyncQuery, st.RepoID, st.SelfID, peer.Version, peer.Digest, peer.DeviceID)
		stall := db.Stalled(bctx, "record the catch-up", n.LockTimeout)
		cancel()
		if stall != nil {
			// Shown but not surely recorded: the next read records it (the
			// copy is still behind in the table, the stage holds the version).
			return fmt.Errorf("record version %d of %s: %w", peer.Version, st.Repo, stall)
		}
		if err != nil {
			return fmt.Errorf("record version %d of %s: %w", peer.Version, st.Repo, err)
		}
		if k, _ := res.RowsAffected(); k != 1 && !st.Current() {
			return public.New(fmt.Sprintf("the copy of %s on %s changed while it was fetched (an administrator's thaw?); try again", st.Repo, peer.Device))
		}
		return nil
	}
	return noPeer
}

// emptyIsRecorded puts a new empty copy in place when this device's
// recorded version is itself empty (a repository nobody pushed to yet).
func (n *Node) emptyIsRecorded(ctx context.Context, st State, dir, final string) (bool, error) {
	self, ok := st.Self()
	if !ok || self.Version != st.Highest() {
		return false, nil
	}
	visible, _, err := n.Git.ReadRefs(ctx, dir)
	if err != nil {
		return false, err
	}
	head, err := gitexec.Head(dir)
	if err != nil {
		return false, fmt.Errorf("read HEAD: %w", err)
	}
	if len(visible) > 0 || visible.Digest(head) != self.Digest {
		return false, nil
	}
	return true, os.Rename(dir, final)
}

// recordSyncQuery records the version the peer had when it was read, only
// if the peer still holds it or a newer one (a push there meanwhile is
// fine; a thaw that dropped the peer's copy is not) and only upwards.
const recordSyncQuery = `
INSERT INTO working_copy_versions (repository_id, device_id, version, refs_digest)
SELECT $1, $2, $3, $4
WHERE EXISTS (SELECT 1 FROM working_copy_versions
              WHERE repository_id = $1 AND device_id = $5 AND version >= $3)
ON CONFLICT (repository_id, device_id) DO UPDATE
SET version = excluded.version, refs_digest = excluded.refs_digest, refs_pending = false, updated_at = now()
WHERE working_copy_versions.version < excluded.version
   OR working_copy_versions.version = excluded.version AND working_copy_versions.refs_pending`

// fetchFrom mirrors peer's copy into dir's stage (its staged refs when
// the peer has not shown them yet) and checks that the stage is exactly
// the version the peer recorded: a peer mid-write holds other refs.
func (n *Node) fetchFrom(ctx context.Context, dir, repo string, peer Copy) error {
	url := PeerURL(peer.URL, repo)
	if err := n.Git.FetchToStage(ctx, dir, url, peer.Pending); err != nil {
		return err
	}
	digest, err := n.stageDigest(ctx, dir)
	if err != nil || digest == peer.Digest {
		return err
	}
	// HEAD's target may differ (a new copy): take the peer's (one more
	// connection) and look again.
	head, err := n.Git.RemoteHead(ctx, url)
	if err != nil {
		return err
	}
	if head != "" {
		if err := n.Git.SetHead(ctx, dir, head); err != nil {
			return err
		}
	}
	if digest, err = n.stageDigest(ctx, dir); err != nil {
		return err
	}
	if digest != peer.Digest {
		n.Log.Warn().Str("repo", repo).Str("peer", peer.Device).Bool("peer_writing", peer.IsWriting).
			Msg("fetched refs differ from those the peer recorded")
		err := notThatVersionError(peer.Version)
		return public.Because(err, err.Error())
	}
	return nil
}

func (n *Node) stageDigest(ctx context.Context, dir string) (string, error) {
	_, staged, err := n.Git.ReadRefs(ctx, dir)
	if err != nil {
		return "", err
	}
	head, err := gitexec.Head(dir)
	if err != nil {
		return "", fmt.Errorf("read HEAD: %w", err)
	}
	return staged.Digest(head), nil
}

// removeStaleLocks clears what a killed git left behind; the caller is the
// copy's only writer (read lock, or write lock on a current copy).
func (n *Node) removeStaleLocks(dir string) error {
	removed, err := gitexec.RemoveStaleLocks(dir)
	for _, p := range removed {
		n.Log.Warn().Str("file", p).Msg("removed a lock file left by a killed git")
	}
	if err != nil {
		return fmt.Errorf("remove stale lock files in %s: %w", dir, err)
	}
	return nil
}

// removeOldQuarantines deletes what killed pushes left in dir's
// quarantine: only directories nothing wrote to for longer than a push
// (push_timeout) or a staging push (fetch_timeout) may run, plus a minute.
func (n *Node) removeOldQuarantines(dir string) {
	age := max(n.PushTimeout, n.Git.Timeout, time.Minute) + time.Minute
	removed, err := gitexec.RemoveOldQuarantines(dir, age)
	for _, p := range removed {
		n.Log.Warn().Str("dir", p).Msg("removed the quarantine a killed push left")
	}
	if err != nil {
		n.Log.Warn().Err(err).Str("dir", dir).Msg("remove old quarantines")
	}
}

// PeerURL is where repo lives on a device whose base URL is base: an
// ssh:// URL or a local path.
func PeerURL(base, repo string) string {
	if strings.Contains(base, "://") {
		return strings.TrimRight(base, "/") + "/" + repo + ".git"
	}
	return filepath.Join(base, filepath.FromSlash(repo)+".git")
}

func (n *Node) logSync(ctx context.Context, conn *sql.Conn, st State, peer Copy, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	from := int64(-1)
	if self, ok := st.Self(); ok {
		from = self.Version
	}
	n.Log.Info().Str("op", "sync").Str("repo", st.Repo).Str("peer", peer.Device).
		Int64("from_version", from).Int64("to_version", peer.Version).Dur("duration", d).
		AnErr("error", err).Msg("fetch from peer")
	ctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	_, dbErr := conn.ExecContext(ctx, `INSERT INTO sync_log
		(repository_id, device_id, from_device, from_version, to_version, duration_ms, result)
		VALUES ($1, $2, $3, NULLIF($4, -1), $5, $6, $7)`,
		st.RepoID, st.SelfID, peer.DeviceID, from, peer.Version, d.Milliseconds(), result)
	if dbErr != nil {
		n.Log.Warn().Err(dbErr).Str("repo", st.Repo).Msg("sync log")
	}
}

// unlock releases key for a defer: bounded, and a failure logged (the
// connection is then discarded, which drops the lock; lock.Unlock).
func (n *Node) unlock(conn *sql.Conn, repo string, key lock.Key) {
	if err := lock.Unlock(conn, key); err != nil {
		n.Log.Warn().Err(err).Str("repo", repo).Msg("unlock")
	}
}

// held checks that conn's session still holds key, bounded like a lock
// step.
func (n *Node) held(ctx context.Context, conn *sql.Conn, key lock.Key) error {
	ctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	return lock.Held(ctx, conn, key)
}

// waiting returns the notice a lock wait gives after lock.NotifyAfter.
func (n *Node) waiting(repo string, key lock.Key) func(*lock.Holder) {
	return func(h *lock.Holder) {
		if h == nil {
			n.Tell("waiting for the %s of %s (up to %s)", key.Describe(), repo, n.LockTimeout)
			return
		}
		// Who holds it goes to the log (and `status`): users hear only
		// that another session does, never its user, pid or device.
		n.Log.Info().Str("repo", repo).Str("lock", key.Describe()).Str("holder", h.Application).
			Int("holder_backend_pid", h.PID).Msg("waiting for a lock")
		n.Tell("waiting for the %s of %s: %s holds it (up to %s)", key.Describe(), repo, HolderKind(key), n.LockTimeout)
	}
}

// HolderKind is what a user is told holds key: never whose session.
func HolderKind(key lock.Key) string {
	if key.Describe() == "write lock" {
		return "another push"
	}
	return "another session updating this device's copy"
}
