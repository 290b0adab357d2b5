package version

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"

	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/guard"
	"gitmesh/hook"
	"gitmesh/lock"
)

// FrozenError refuses a push to a repository whose last write never finished.
type FrozenError struct {
	Repo string
	Copy Copy
	// Why it could not repair itself, if a repair was tried.
	Why string
}

func (e *FrozenError) Error() string {
	w := e.Copy.Writer
	who := "an unknown writer"
	if w != nil {
		who = fmt.Sprintf("a push by %s started %s", w.User, w.Started.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	why := ""
	if e.Why != "" {
		why = " and it cannot repair itself (" + e.Why + ")"
	}
	return fmt.Sprintf("%s is frozen for writes: %s on device %s did not finish%s; reads still work; "+
		"an administrator must run 'gitmesh thaw %s --promote %s' or '--demote %s'",
		e.Repo, who, e.Copy.Device, why, e.Repo, e.Copy.Device, e.Copy.Device)
}

// ErrLostWrite means the write's outcome could not be recorded: the client
// got no acknowledgement and the repository stays frozen until an
// administrator thaws it.
var ErrLostWrite = errors.New("the push could not be recorded")

// QuorumError refuses a push that fewer devices than the quorum could
// hold; no device shows any of its refs.
type QuorumError struct {
	Repo        string
	Stored      int
	Need        int
	Holders     int
	Unreachable []string
}

func (e *QuorumError) Error() string {
	return fmt.Sprintf("push to %s refused: only %d of %d devices could store it and %d must; unreachable: %s; nothing was changed, try again when they are back",
		e.Repo, e.Stored, e.Holders, e.Need, strings.Join(e.Unreachable, ", "))
}

// Receiver starts git-receive-pack with the extra environment and `git -c`
// settings that route its ref updates to this process, reading the
// client's bytes from stdin.
type Receiver func(env, gitConfig []string, stdin *os.File) (*gitexec.Service, error)

// Push runs one write. Before receive-pack starts, this copy catches up
// as a read would (no write lock), so that it advertises the newest refs;
// the client's pack is then received and checked without any lock. Only
// when receive-pack hands over the ref commands (proc-receive, the
// objects out of quarantine) does procReceive take the write lock, with a
// fair place in its queue, refuse if frozen, catch up again if a push
// landed meanwhile, mark the write pending and decide the commands
// against the refs as they are then.
func (n *Node) Push(ctx context.Context, st State, user string, start Receiver) (err error) {
	if c, frozen := st.Frozen(); frozen && c.DeviceID != st.SelfID {
		n.HealFrozen(ctx, st) // the writer's device repairs; it needs the write lock
	}
	began := time.Now()
	if !n.Current(st) {
		// Best effort: the catch-up under the write lock (or the refusal
		// of a frozen repository) decides.
		if err := n.CatchUp(ctx, st); err != nil {
			n.Log.Info().Err(err).Str("repo", st.Repo).Msg("catch-up before receive-pack failed; tried again under the write lock")
		}
	}
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	w := &write{n: n, conn: conn, st: st, user: user, dir: gitexec.RepoDir(n.RepoRoot, st.Repo)}
	defer func() { w.conn.Close() }()
	defer func() { w.handOff(began, err) }()
	defer w.unlock()
	if err := w.precheck(ctx); err != nil {
		return err
	}
	n.Log.Debug().Str("repo", st.Repo).Dur("took", time.Since(began)).Msg("receive-pack starts; the write lock comes with the commands")
	return w.run(ctx, start)
}

// precheck refuses, before the client uploads anything, a push that the
// write lock would refuse anyway: a frozen repository (when the lock is
// free it is repaired or refused under it, as the push itself would) or
// a queue with no place left for it. The push takes its places and
// the lock only once its commands arrive (lock), so this reserves
// nothing: a push it lets through may still be refused then.
func (w *write) precheck(ctx context.Context) error {
	n := w.n
	wkey := lock.Write(w.st.RepoID)
	ok, err := lock.Try(ctx, w.conn, wkey)
	if err != nil {
		return err
	}
	if ok {
		defer n.unlock(w.conn, w.st.Repo, wkey)
		if _, marked := w.st.Frozen(); !marked {
			return nil
		}
		st, err := n.reload(ctx, w.conn, w.st.Repo)
		if err != nil {
			return err
		}
		_, err = n.healLocked(ctx, w.conn, st)
		return err
	}
	own, err := lock.TakeUserWaiter(ctx, w.conn, wkey.Obj, w.user, UserWaiters)
	if errors.Is(err, lock.ErrFull) {
		return &WaitersError{Repo: w.st.Repo, Max: UserWaiters, Own: true}
	}
	if err != nil {
		return err
	}
	defer lock.ReleaseUserWaiter(context.Background(), w.conn, own)
	place, err := lock.TakeSlot(ctx, w.conn, lock.PushWaiter(wkey.Obj, 0), n.MaxPushWaiters)
	if errors.Is(err, lock.ErrFull) {
		return &WaitersError{Repo: w.st.Repo, Max: n.MaxPushWaiters}
	}
	if err != nil {
		return err
	}
	return lock.Release(context.Background(), w.conn, place)
}

// lock takes the write lock for the commands that just arrived and makes
// this copy the base of the new version: repaired if a dead writer left
// its mark, caught up if a push landed since receive-pack advertised its
// refs, and marked as written.
func (w *write) lock(ctx context.Context) error {
	n := w.n
	wkey := lock.Write(w.st.RepoID)
	waited, err := n.acquireWrite(ctx, w.conn, w.st.Repo, wkey, w.user)
	w.waited = waited
	if err != nil {
		return err
	}
	w.locked = true
	st, err := n.reload(ctx, w.conn, w.st.Repo)
	if err == nil && st.RepoID != w.st.RepoID {
		err = ErrNotFound // renamed or deleted meanwhile, the name taken again
	}
	if err != nil {
		return err
	}
	// Moved away while it waited: this copy may not count in the quorum.
	if err := n.stillHolds(st); err != nil {
		return err
	}
	if st, err = n.healLocked(ctx, w.conn, st); err != nil {
		return err
	}
	if !n.Current(st) {
		if err := n.catchUpLocked(ctx, w.conn, st); err != nil {
			return err
		}
		if st, err = n.reload(ctx, w.conn, st.Repo); err != nil {
			return err
		}
	}
	w.st = st
	if err := n.removeStaleLocks(w.dir); err != nil {
		return err
	}
	n.removeOldQuarantines(w.dir)
	w.version = w.st.Highest() // this copy's, after catching up under the write lock
	if w.token, err = n.markWriting(ctx, w.conn, w.st, w.user); err != nil {
		return err
	}
	w.marked = true
	return nil
}

// unlock lets the write lock go (once).
func (w *write) unlock() {
	if w.locked {
		w.n.unlock(w.conn, w.st.Repo, lock.Write(w.st.RepoID))
		w.locked = false
	}
}

// write is one push in progress; its proc-receive handler runs while
// receive-pack does, and alone uses conn meanwhile.
type write struct {
	n       *Node
	conn    *sql.Conn
	st      State
	user    string
	dir     string
	token   string
	version int64 // the newest version before this push
	// Set by the handler, read after receive-pack is done.
	outcome    error         // why the push was refused or could not be recorded
	committed  bool          // the new version is recorded (or may be: outcome says)
	answered   bool          // receive-pack has serve's answer to every ref
	newVersion int64         // the version recorded
	lockLost   bool          // the session that held the write lock died
	commands   bool          // the push's commands reached serve
	locked     bool          // this push holds the write lock
	marked     bool          // this push set the write mark (token)
	waited     time.Duration // its wait for the write lock
	started    bool          // receive-pack ran: git, not serve, reports to the client
	stored     []Device
	rep        *replication // the staging on the peers, logged after the answer
	batchSync  bool         // the stage changes many refs: peers sync once (PushStage)
	guard      *guard.Guard // bounds receive-pack except while recording
	// notes, while the relay is connected, carries lines for the client
	// as `remote:` progress (every client shows those; not all show
	// ssh's stderr).
	notes io.Writer
}

func (w *write) run(ctx context.Context, start Receiver) error {
	hooks, err := hook.DirFor(w.n.RepoRoot, w.n.Bin, w.dir)
	if err != nil {
		w.finish(ctx)
		return err
	}
	// A local-path peer's staging receive-pack of many refs runs with
	// this one (PushStage); without it, it syncs each ref.
	if w.n.Git.StageHooks, err = hook.StageDir(w.n.RepoRoot); err != nil {
		w.n.Log.Warn().Err(err).Msg("stage hook dir; local peers sync each staged ref")
	}
	srv, err := hook.Listen()
	if err != nil {
		w.finish(ctx)
		return err
	}
	defer srv.Close()
	// No auto-gc after the report: a gc racing the next writer of this
	// copy is unsafe. `gitmesh gc` runs it under the locks.
	// Relative to the copy, where receive-pack runs its hooks: git's own
	// complaints about a hook then never show the repo root to the user.
	if rel, err := filepath.Rel(w.dir, hooks); err == nil {
		hooks = rel
	}
	cfg := append(hook.GitConfig(hooks), "receive.autogc=false", gitexec.ReceiveFsck)
	if w.n.MaxPushBytes > 0 {
		cfg = append(cfg, fmt.Sprintf("receive.maxInputSize=%d", w.n.MaxPushBytes))
	}
	client := w.n.Client
	if client == nil {
		client = os.Stdin
	}
	g, stdin, err := guard.New(client, w.n.PushIdleTimeout, w.n.PushTimeout)
	if err != nil {
		w.finish(ctx)
		return err
	}
	svc, err := start([]string{srv.Env()}, cfg, stdin)
	stdin.Close() // receive-pack's now; the guard writes the other end
	if err != nil {
		g.Stop()
		w.finish(ctx)
		return err
	}
	w.guard = g
	w.started = true // git reports to the client: what is left waits (handOff)
	g.Watch(svc.Kill)
	srv.Expect(svc.Pid())
	srv.ReadLimit = w.n.PushIdleTimeout
	srv.Refused = func(pid int, why string) {
		w.n.Log.Warn().Str("repo", w.st.Repo).Int("peer_pid", pid).Str("why", why).Msg("hook socket: connection refused")
	}
	served := make(chan struct{})
	go func() {
		srv.Serve(func(c *hook.Conn) { w.procReceive(ctx, c) })
		close(served)
	}()
	runErr := svc.Wait()
	stoppedBy := g.Stop()
	srv.Close()
	<-served // a handler in flight finishes before w is read here
	if !w.committed {
		w.finish(ctx)
	}
	if w.outcome != nil {
		return w.outcome
	}
	if !w.commands && w.n.MaxPushBytes > 0 && g.Received() > w.n.MaxPushBytes {
		// index-pack stopped at receive.maxInputSize: git said so in its
		// words, this is gitmesh's sentence and exit status.
		w.n.Log.Info().Str("repo", w.st.Repo).Int64("received", g.Received()).Int64("max_push_bytes", w.n.MaxPushBytes).Msg("push refused: too large")
		return &TooLargeError{Repo: w.st.Repo, Max: w.n.MaxPushBytes, Bytes: true}
	}
	if stoppedBy != nil {
		return w.stopped(stoppedBy)
	}
	if runErr != nil && w.committed && w.answered && gitexec.HungUp(runErr) {
		// The version is recorded and receive-pack had every answer: a
		// client that hangs up once it has read its report (go-git does)
		// takes receive-pack's last writes with it, not the push.
		w.n.Log.Info().Str("repo", w.st.Repo).Int64("version", w.newVersion).Msg("the client hung up after its answer")
		return nil
	}
	return gitexec.ExitStatus(runErr)
}

// procReceive speaks git's proc-receive protocol with receive-pack (via
// the relay): it gets every ref command of the push at once, after the
// objects are in place, and answers each. Until it answers "ok", no
// client has been told anything.
func (w *write) procReceive(ctx context.Context, c *hook.Conn) {
	if !w.guard.Recording() {
		return // stopped at a bound: receive-pack is being killed, every ref rejected
	}
	defer w.guard.Answered()
	push, err := hook.ReadPush(bufio.NewReader(c), c)
	if errors.Is(err, hook.ErrMalformed) {
		w.n.Log.Warn().Str("repo", w.st.Repo).Int("commands", len(push.Commands)).Msg("push refused: malformed ref command")
		if err := hook.WriteResults(c, hook.RefuseAll(push, MalformedReason)); err != nil {
			w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg("proc-receive answer")
		}
		w.n.Tell("%s", MalformedReason)
		return
	}
	if err != nil {
		w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg("proc-receive")
		return // receive-pack rejects every ref
	}
	w.notes = c.Notes()
	defer func() { w.notes = nil }()
	w.commands = true
	if len(push.Commands) == 0 {
		hook.WriteResults(c, nil)
		return
	}
	if w.n.MaxPushRefs > 0 && len(push.Commands) > w.n.MaxPushRefs {
		e := &TooLargeError{Repo: w.st.Repo, Refs: len(push.Commands), Max: int64(w.n.MaxPushRefs)}
		w.n.Log.Info().Str("repo", w.st.Repo).Int("refs", e.Refs).Int("max_push_refs", w.n.MaxPushRefs).Msg("push refused: too many refs")
		if err := hook.WriteResults(c, failAll(push, "more than max_push_refs refs in one push")); err != nil {
			w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg("proc-receive answer")
		}
		w.outcome = e
		return
	}
	if err := w.lock(ctx); err != nil {
		w.outcome = err
		w.n.Log.Info().Err(err).Str("repo", w.st.Repo).Msg("push refused at the write lock")
		if err := hook.WriteResults(c, failAll(push, refusedAtLock(err))); err != nil {
			w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg("proc-receive answer")
		}
		return
	}
	if brokenEarlyAck { // a deliberately broken build: see broken.go
		ok := make([]hook.Result, len(push.Commands))
		for i, cmd := range push.Commands {
			ok[i] = hook.Result{Ref: cmd.Ref}
		}
		hook.WriteResults(c, ok)
		c.Close() // the relay ends: receive-pack reports to the client now
		w.apply(ctx, push)
		if !w.committed {
			w.finish(ctx)
		}
		w.unlock()
		return
	}
	results := w.apply(ctx, push)
	err = hook.WriteResults(c, results)
	if err != nil {
		w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg("proc-receive answer")
	}
	w.answered = err == nil
	if w.committed && w.outcome == nil {
		w.tellStored(w.newVersion, w.answered)
	}
	if !w.committed {
		w.finish(ctx) // what it may tell the user still goes through the relay
	}
	// The relay ends here: receive-pack reports to the client while the
	// lock is given back, and the next push need not wait for git's
	// report or post-receive.
	c.Close()
	w.unlock()
}

// refusedAtLock is the short reason git shows for each ref of a push
// refused when it asked for the write lock; serve's sentence says more.
func refusedAtLock(err error) string {
	var (
		waiters *WaitersError
		timeout *lock.TimeoutError
		frozen  *FrozenError
	)
	switch {
	case errors.As(err, &waiters):
		return "too many pushes wait for this repository; nothing was changed"
	case errors.As(err, &timeout):
		return "another push held the write lock too long; nothing was changed"
	case errors.As(err, &frozen):
		return "the repository is frozen for writes"
	case errors.As(err, new(MovedError)):
		return "this device no longer holds the repository (its copies moved meanwhile); nothing was changed, try again"
	}
	return "gitmesh could not prepare the push; nothing was changed"
}

// tell writes one sentence for the user: through the relay as `remote:`
// progress while it is connected, on serve's stderr otherwise.
func (w *write) tell(format string, args ...any) {
	if w.notes != nil {
		if _, err := fmt.Fprintf(w.notes, "gitmesh: "+format+"\n", args...); err == nil {
			return
		}
	}
	w.n.Tell(format, args...)
}

// apply decides a push: validate each command, stage the accepted ones on
// this copy, replicate the stage to a quorum, record one version, show
// the refs here, and only then report "ok".
func (w *write) apply(ctx context.Context, push hook.Push) []hook.Result {
	start := time.Now()
	facts := w.lookUp(ctx, push) // in parallel with reading the refs
	visible, staged, err := w.n.Git.ReadRefs(ctx, w.dir)
	if err != nil {
		w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg("read refs")
		return failAll(push, "gitmesh could not read the repository; nothing was changed")
	}
	head, err := gitexec.Head(w.dir)
	if err != nil {
		w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg("read HEAD")
		return failAll(push, "gitmesh could not read the repository; nothing was changed")
	}
	read := time.Now()
	results := w.validate(ctx, push, visible, head, <-facts)
	validated := time.Now()
	// The copy must show exactly its recorded version: a copy wiped or
	// re-created under this push must not become the base of a new version
	// (it would erase acknowledged refs everywhere). Checked after the
	// update hooks ran (as git runs them before its ref transaction can
	// still fail), before anything is staged.
	base := visible.Digest(head)
	if self, ok := w.st.Self(); !ok || self.Digest != base {
		w.n.Log.Error().Str("repo", w.st.Repo).Msg("copy differs from its recorded version; push refused")
		return failAll(push, "this device's copy does not match its recorded version; nothing was changed, try again")
	}
	want := visible.Clone()
	var accepted []hook.Command
	for i, c := range push.Commands {
		if results[i].Err != "" {
			continue
		}
		accepted = append(accepted, c)
		if gitexec.IsZero(c.New) {
			delete(want, c.Ref)
		} else {
			want[c.Ref] = c.New
		}
	}
	digest := want.Digest(head)
	if len(accepted) == 0 || digest == base {
		return results
	}
	fail := func(reason string) []hook.Result {
		for i := range results {
			if results[i].Err == "" {
				results[i].Err = reason
			}
		}
		return results
	}
	stage := gitexec.StageCommands(staged, want)
	w.batchSync = len(stage) >= gitexec.BatchSyncRefs // the peers change about as many
	syncStage, err := w.n.Git.UpdateRefsSyncLater(ctx, w.dir, stage, false)
	if err != nil {
		w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg("stage refs")
		return fail("gitmesh could not stage the refs on this device; nothing was changed")
	}
	stagedAt := time.Now()
	// This copy's stage reaches its disk while the peers store it; both
	// are done before anything is recorded.
	synced := make(chan error, 1)
	go func() { synced <- syncStage() }()
	rep := w.replicate(ctx)
	w.rep = rep
	syncErr := <-synced
	replicated := time.Now()
	defer rep.release()
	q := w.st.Quorum(w.n.WriteQuorum)
	if syncErr != nil {
		w.n.Log.Error().Err(syncErr).Str("repo", w.st.Repo).Msg("sync the staged refs")
		w.outcome = fmt.Errorf("sync the staged refs: %w", syncErr)
		w.unstage(ctx, want, visible, rep)
		return fail("gitmesh could not stage the refs on this device; nothing was changed")
	}
	if 1+len(rep.stored) < q {
		if err := rep.dbLost(); err != nil {
			// The peers were fine; the database went (a failover): its
			// locks with it. Told as an outage, not as unreachable peers.
			w.outcome = fmt.Errorf("stage the push on the peers: %w", err)
			return fail("the coordination database went away during the push; nothing was changed, try again")
		}
		qe := &QuorumError{Repo: w.st.Repo, Stored: 1 + len(rep.stored), Need: q, Holders: len(w.st.Holders), Unreachable: rep.failedNames()}
		w.outcome = qe
		w.unstage(ctx, want, visible, rep)
		return fail(fmt.Sprintf("only %d of %d devices could store the push (%d needed)", qe.Stored, qe.Holders, q))
	}
	newVersion := w.version + 1
	if err := w.commit(ctx, newVersion, digest, rep.stored, accepted); err != nil {
		w.outcome = err
		if !w.committed {
			w.unstage(ctx, want, visible, rep)
		}
		return fail("gitmesh could not record the push; nothing was acknowledged")
	}
	rep.release() // the peers' stages are recorded: their own readers may show them
	committed := time.Now()
	w.showSelf(ctx, newVersion, digest, gitexec.ShowCommands(visible, want))
	w.n.Log.Info().Str("op", "push").Str("repo", w.st.Repo).Int64("version", newVersion).
		Dur("read_refs", read.Sub(start)).Dur("validate", validated.Sub(read)).Dur("stage", stagedAt.Sub(validated)).
		Int("refs", len(visible)).Dur("replicate", replicated.Sub(stagedAt)).
		Dur("record", committed.Sub(replicated)).Dur("show", time.Since(committed)).Msg("push timings")
	w.stored = append([]Device{w.self()}, rep.stored...)
	w.newVersion = newVersion
	return results
}

// unstage takes a refused push out of the stage, on this copy and on the
// peers that stored it (whose read locks rep still holds): the stage goes
// back to the refs this copy shows, so nothing of a push that was never
// recorded stays reachable from a ref (its objects stay unreferenced until
// gc). A failure is logged; the stage is replaced at the next catch-up or
// push anyway.
func (w *write) unstage(ctx context.Context, staged, visible gitexec.RefSet, rep *replication) {
	if err := w.n.Git.UpdateRefs(ctx, w.dir, gitexec.StageCommands(staged, visible), false); err != nil {
		w.n.Log.Warn().Err(err).Str("repo", w.st.Repo).Msg("unstage a refused push")
		return
	}
	var wg sync.WaitGroup
	for _, p := range rep.stored {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.n.Git.PushStage(ctx, w.dir, PeerURL(p.URL, w.st.Repo), !strings.Contains(p.URL, "://"), w.batchSync)
			if err != nil {
				w.n.Log.Warn().Err(err).Str("repo", w.st.Repo).Str("peer", p.Name).Msg("unstage a refused push on a peer")
			}
		}()
	}
	wg.Wait()
}

// MalformedReason refuses a push holding a malformed ref command.
const MalformedReason = "the push holds a malformed ref command (a ref name with a space or a control character); nothing was changed"

func failAll(push hook.Push, reason string) []hook.Result {
	out := make([]hook.Result, len(push.Commands))
	for i, c := range push.Commands {
		out[i] = hook.Result{Ref: c.Ref, Err: reason}
	}
	return out
}

func (w *write) self() Device {
	for _, h := range w.st.Holders {
		if h.ID == w.st.SelfID {
			return h
		}
	}
	return Device{ID: w.st.SelfID, Name: w.n.Device}
}

// pushFacts are what validation reads from git besides the refs.
type pushFacts struct {
	types  map[string]string // object id -> type
	cfg    map[string]string // the repository's receive.deny* settings
	err    error             // the objects could not be read
	cfgErr error             // the settings could not be read
}

// lookUp reads the pushed objects' types and the repository's settings,
// two git runs at once.
func (w *write) lookUp(ctx context.Context, push hook.Push) <-chan pushFacts {
	out := make(chan pushFacts, 1)
	go func() {
		var ids []string
		for _, c := range push.Commands {
			if !gitexec.IsZero(c.New) {
				ids = append(ids, c.New)
			}
		}
		type settings struct {
			cfg map[string]string
			err error
		}
		cfg := make(chan settings, 1)
		go func() {
			m, err := w.n.Git.Configs(ctx, w.dir, `^receive\.deny(deletes|nonfastforwards|deletecurrent)$`)
			cfg <- settings{m, err}
		}()
		f := pushFacts{types: map[string]string{}}
		if len(ids) > 0 {
			f.types, f.err = w.n.Git.ObjectTypes(ctx, w.dir, ids)
		}
		got := <-cfg
		f.cfg, f.cfgErr = got.cfg, got.err
		out <- f
	}()
	return out
}

// validate checks each command as receive-pack would have for a ref it
// updates itself: the name, the old value, the object, the repository's
// receive.deny* settings and its own update hook. An atomic push fails
// whole.
func (w *write) validate(ctx context.Context, push hook.Push, visible gitexec.RefSet, head string, f pushFacts) []hook.Result {
	if f.err != nil {
		return failAll(push, "gitmesh could not read the pushed objects; nothing was changed")
	}
	// The policy fails closed: settings that cannot be read, or a value
	// git would refuse, refuse the push rather than allow what they deny.
	denyDeletes, errD := gitexec.ConfigBool(f.cfg["receive.denydeletes"])
	denyNonFF, errF := gitexec.ConfigBool(f.cfg["receive.denynonfastforwards"])
	if err := errors.Join(f.cfgErr, errD, errF); err != nil {
		w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg("read receive.denyDeletes and receive.denyNonFastForwards")
		return failAll(push, "gitmesh could not read the repository's receive settings; nothing was changed")
	}
	// The repository's update hooks run within push_timeout: the guard
	// does not stop receive-pack while serve records, so serve bounds
	// them itself.
	if end := w.guard.Deadline(); !end.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, end)
		defer cancel()
	}
	results := make([]hook.Result, len(push.Commands))
	d := denials{
		deletes:       denyDeletes,
		nonFF:         denyNonFF,
		deleteCurrent: denyDeleteCurrent(f.cfg["receive.denydeletecurrent"]),
		head:          head,
	}
	failed := false
	for i, c := range push.Commands {
		results[i] = hook.Result{Ref: c.Ref, Err: w.check(ctx, c, visible, f.types, d)}
		failed = failed || results[i].Err != ""
	}
	if push.Atomic && failed {
		for i := range results {
			if results[i].Err == "" {
				results[i].Err = "atomic push failed"
			}
		}
	}
	return results
}

// denials are the repository's receive.deny* settings that receive-pack
// would apply, and HEAD's branch.
type denials struct {
	deletes, nonFF, deleteCurrent bool
	head                          string
}

// gitBool reads a git boolean setting as git does (unset is false).
func gitBool(v string) bool {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true
	}
	return false
}

// denyDeleteCurrent reads receive.denyDeleteCurrent: only "ignore",
// "warn" and false allow deleting HEAD's branch; unset refuses, as git.
func denyDeleteCurrent(v string) bool {
	switch strings.ToLower(v) {
	case "ignore", "warn", "false", "no", "off", "0":
		return false
	}
	return true
}

func (w *write) check(ctx context.Context, c hook.Command, visible gitexec.RefSet, types map[string]string, d denials) string {
	if why := gitexec.ValidRefName(c.Ref); why != "" {
		return why
	}
	cur, exists := visible[c.Ref]
	if gitexec.IsZero(c.Old) && exists || !gitexec.IsZero(c.Old) && cur != c.Old {
		// Another push landed after receive-pack advertised the refs
		// this one was built on: git's own client words it so.
		return "stale info: the ref changed since your push began; fetch first, then push again"
	}
	branch := strings.HasPrefix(c.Ref, "refs/heads/")
	if gitexec.IsZero(c.New) {
		// receive-pack's order and words: receive.denyDeletes covers
		// branches; HEAD's branch needs receive.denyDeleteCurrent off.
		if d.deletes && branch {
			return "deletion prohibited"
		}
		if d.deleteCurrent && c.Ref == d.head {
			return "deletion of the current branch prohibited"
		}
	} else {
		switch t := types[c.New]; {
		case t == "missing":
			return "bad object"
		case t != "commit" && strings.HasPrefix(c.Ref, "refs/heads/"):
			return "a branch must point to a commit"
		case d.nonFF && branch && exists && !w.n.Git.IsAncestor(ctx, w.dir, c.Old, c.New):
			return "non-fast-forward"
		}
	}
	if err := w.runUpdateHook(ctx, c); errors.Is(err, context.DeadlineExceeded) {
		w.n.Log.Warn().Str("repo", w.st.Repo).Str("ref", c.Ref).Dur("push_timeout", w.n.PushTimeout).Msg("update hook stopped at push_timeout")
		return "the update hook ran past push_timeout"
	} else if err != nil {
		return "hook declined"
	}
	return ""
}

// runUpdateHook runs the repository's update hook for c, its output to
// the client as `remote:` progress, as receive-pack does with its own
// update hook. The hook writes to a pipe, not to the relay: its exit
// ends the wait even when a child of it keeps the pipe open, whose
// output is then given a short while only.
func (w *write) runUpdateHook(ctx context.Context, c hook.Command) error {
	if w.notes == nil {
		return gitexec.RunUpdateHook(ctx, w.dir, c.Ref, c.Old, c.New, os.Stderr)
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	copied, notes := make(chan struct{}), w.notes
	go func() {
		io.Copy(notes, r)
		r.Close()
		close(copied)
	}()
	err = gitexec.RunUpdateHook(ctx, w.dir, c.Ref, c.Old, c.New, pw)
	pw.Close()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
		r.Close() // the copy ends; what is left of the output is lost
	}
	return err
}

const markQuery = `
UPDATE working_copy_versions
SET is_writing = true, updated_at = now(),
    write_properties = jsonb_build_object('user', $3::text, 'device', $4::text, 'pid', $5::int,
        'backend_pid', pg_backend_pid(), 'app', current_setting('application_name'),
        'started', now(), 'token', $6::text)
WHERE repository_id = $1 AND device_id = $2 AND NOT is_writing`

func (n *Node) markWriting(ctx context.Context, conn *sql.Conn, st State, user string) (string, error) {
	b := make([]byte, 16)
	rand.Read(b)
	token := hex.EncodeToString(b)
	// Bounded by lock_timeout: a database that cannot commit (synchronous
	// replication with no standby) would hold the write lock forever. A
	// mark whose commit was cancelled may have committed locally: its
	// writer is gone by then, so it heals once the database commits again.
	bctx, cancel := db.Bound(ctx, n.LockTimeout)
	defer cancel()
	res, err := conn.ExecContext(bctx, markQuery, st.RepoID, st.SelfID, user, n.Device, os.Getpid(), token)
	if stall := db.Stalled(bctx, "mark the write", n.LockTimeout); stall != nil {
		return "", fmt.Errorf("mark write pending on %s: %w", st.Repo, stall)
	}
	if err != nil {
		return "", fmt.Errorf("mark write pending on %s: %w", st.Repo, err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return "", fmt.Errorf("mark write pending on %s: no idle version row for device %s", st.Repo, n.Device)
	}
	return token, nil
}

// commitWriterQuery records the new version on the writer's copy and ends
// the write, matching the writer's token so a repository thawed meanwhile
// is never overwritten late. The refs are staged, not yet shown.
const commitWriterQuery = `
UPDATE working_copy_versions
SET version = $4, refs_digest = $5, refs_pending = true, is_writing = false, write_properties = NULL, updated_at = now()
WHERE repository_id = $1 AND device_id = $2 AND is_writing AND write_properties->>'token' = $3`

// commitPeersQuery records the new version on each peer that staged it.
const commitPeersQuery = `
INSERT INTO working_copy_versions (repository_id, device_id, version, refs_digest, refs_pending)
SELECT $1, unnest($2::int[]), $3, $4, true
ON CONFLICT (repository_id, device_id) DO UPDATE
SET version = excluded.version, refs_digest = excluded.refs_digest, refs_pending = true, updated_at = now()
WHERE working_copy_versions.version < excluded.version AND NOT working_copy_versions.is_writing`

const pushLogQuery = `
INSERT INTO push_log (repository_id, device_id, user_name, ref, old_value, new_value, version)
SELECT $1, $2, $3, u.ref, u.old, u.new, $7
FROM unnest($4::text[], $5::text[], $6::text[]) AS u(ref, old, new)`

// Notify is the channel `gitmesh replicate` listens on; the payload is
// the repository's name.
const Notify = "gitmesh_versions"

// commit records the push as one version on the writer and the peers
// that staged it, in one transaction. If the database is unreachable it
// retries until RecordTimeout; a commit whose reply was lost is
// recognised by the writer's row.
func (w *write) commit(ctx context.Context, v int64, digest string, peers []Device, ups []hook.Command) error {
	ids := make([]int32, len(peers))
	for i, p := range peers {
		ids[i] = p.ID
	}
	refs, olds, news := make([]string, len(ups)), make([]string, len(ups)), make([]string, len(ups))
	for i, u := range ups {
		refs[i], olds[i], news[i] = u.Ref, u.Old, u.New
	}
	err := w.retry(ctx, "record the push", func(ctx context.Context, conn *sql.Conn) error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		res, err := tx.ExecContext(ctx, commitWriterQuery, w.st.RepoID, w.st.SelfID, w.token, v, digest)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return w.alreadyCommitted(ctx, tx, v, digest)
		}
		if _, err := tx.ExecContext(ctx, commitPeersQuery, w.st.RepoID, pq.Array(ids), v, digest); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, pushLogQuery, w.st.RepoID, w.st.SelfID, w.user,
			pq.Array(refs), pq.Array(olds), pq.Array(news), v); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, Notify, w.st.Repo); err != nil {
			return err
		}
		w.committed = true // from here the outcome may be recorded
		return tx.Commit()
	})
	if err != nil {
		return err
	}
	w.n.Log.Info().Str("op", "push").Str("repo", w.st.Repo).Int64("version", v).
		Int("refs", len(ups)).Int("devices", 1+len(peers)).Msg("recorded push")
	return nil
}

// alreadyCommitted tells an earlier commit whose reply was lost (the
// row shows this version and digest, unmarked) from a mark cleared by
// someone else.
func (w *write) alreadyCommitted(ctx context.Context, tx *sql.Tx, v int64, digest string) error {
	var done bool
	err := tx.QueryRowContext(ctx, `SELECT version = $3 AND refs_digest = $4 AND NOT is_writing
		FROM working_copy_versions WHERE repository_id = $1 AND device_id = $2`,
		w.st.RepoID, w.st.SelfID, v, digest).Scan(&done)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if done && w.committed {
		return nil
	}
	return errMarkGone
}

// errMarkGone means the write mark was cleared by someone else (a thaw).
var errMarkGone = errors.New("the write mark was cleared by someone else (thawed?)")

// showSelf makes this copy's visible refs the recorded ones (cmds, known
// from the push: nothing else moves them under the write lock), with the
// repository's own reference-transaction hook. The version is already
// safe on the quorum; if this fails, the next read here shows them.
func (w *write) showSelf(ctx context.Context, v int64, digest string, cmds []string) {
	key := lock.Read(w.st.RepoID, w.st.SelfID)
	err := lock.Acquire(ctx, w.conn, key, w.n.LockTimeout, nil)
	if err == nil {
		defer w.n.unlock(w.conn, w.st.Repo, key)
		bctx, cancel := db.Bound(ctx, w.n.LockTimeout)
		defer cancel()
		// Nothing moves under a lock lost with a failover.
		if err = lock.Held(bctx, w.conn, key); err == nil {
			err = w.n.Git.UpdateRefs(ctx, w.dir, cmds, true)
		}
		if err == nil {
			_, err = w.conn.ExecContext(bctx, clearPendingQuery, w.st.RepoID, w.st.SelfID, v, digest)
		}
	}
	if err != nil {
		w.n.Log.Warn().Err(err).Str("repo", w.st.Repo).Msg("show pushed refs; the next read here shows them")
	}
}

// tellStored is the one line a recorded push adds, sent through the
// relay as `remote:` progress so that every client shows it; when git
// could not be given the answer (its hook died), it says so on serve's
// stderr, since the client then reports a rejection.
func (w *write) tellStored(v int64, answered bool) {
	var in, out []string
	for _, h := range w.st.Holders {
		stored := false
		for _, s := range w.stored {
			stored = stored || s.ID == h.ID
		}
		if stored {
			in = append(in, h.Name)
		} else {
			out = append(out, h.Name)
		}
	}
	msg := fmt.Sprintf("stored on %d of %d devices (%s) as version %d", len(in), len(w.st.Holders), strings.Join(in, ", "), v)
	if len(out) > 0 {
		msg += "; " + strings.Join(out, ", ") + " follow"
		if len(out) == 1 {
			msg += "s"
		}
	}
	if !answered {
		// The relay is gone: serve's stderr is the only way left.
		msg += "; git was not told (its hook died), so it may report the push as rejected: fetch to see it"
		w.n.Tell("%s", msg)
		return
	}
	w.tell("%s", msg)
}

// clearQuery ends a write that recorded nothing: no visible ref moved.
const clearQuery = `
UPDATE working_copy_versions
SET is_writing = false, write_properties = NULL, updated_at = now()
WHERE repository_id = $1 AND device_id = $2 AND is_writing AND write_properties->>'token' = $3`

// finish clears the write mark of a push that recorded no version; if
// that fails the repository stays frozen although nothing was changed.
func (w *write) finish(ctx context.Context) {
	if !w.marked {
		return
	}
	w.marked = false
	err := w.retry(ctx, "clear the write mark", func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, clearQuery, w.st.RepoID, w.st.SelfID, w.token)
		return err
	})
	var stall *db.StallError
	if errors.As(err, &stall) {
		w.n.Tell("the coordination database does not commit; %s's write mark clears itself once it does (nothing was changed)", w.st.Repo)
	} else if err != nil {
		// The detail (the database's address, say) is in the log (lost).
		w.n.Tell("%s stays frozen for writes: its write mark could not be cleared; tell an administrator", w.st.Repo)
	}
}

// retry runs f on the write's connection; when the database is
// unreachable it tells the user, reconnects and tries again until
// RecordTimeout has passed. Every attempt runs within that deadline: an
// attempt that reaches it (a commit waiting for a synchronous standby
// that never answers) has an unknown outcome, a commit cancelled there
// having committed locally, so it ends the retries and is never
// acknowledged.
func (w *write) retry(ctx context.Context, what string, f func(context.Context, *sql.Conn) error) error {
	deadline := time.Now().Add(w.n.RecordTimeout)
	told := false
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithDeadline(ctx, deadline)
		var err error
		if w.lockLost {
			err = w.relock(actx)
		}
		if err == nil {
			err = f(actx, w.conn)
		}
		if errors.Is(actx.Err(), context.DeadlineExceeded) {
			cancel()
			return w.lost(what, &db.StallError{Step: what, After: w.n.RecordTimeout})
		}
		cancel()
		if err == nil {
			return nil
		}
		if !db.IsUnavailable(err) && !errors.Is(err, errLockBusy) {
			return w.lost(what, err)
		}
		if time.Now().After(deadline) {
			return w.lost(what, fmt.Errorf("the database stayed unreachable for %s (%v)", w.n.RecordTimeout, err))
		}
		if !told {
			w.tell("the database is unreachable; retrying to %s for up to %s", what, w.n.RecordTimeout)
			told = true
		}
		time.Sleep(min(100*time.Millisecond<<min(attempt, 4), max(time.Until(deadline), time.Millisecond)))
		if !errors.Is(err, errLockBusy) {
			w.reconnect(ctx)
		}
	}
}

// errLockBusy: after a reconnect, someone else (a thaw) holds the write
// lock; nothing is recorded without it.
var errLockBusy = errors.New("the write lock is held by someone else")

// relock takes the write lock again on a new session.
func (w *write) relock(ctx context.Context) error {
	ok, err := lock.Try(ctx, w.conn, lock.Write(w.st.RepoID))
	if err != nil {
		return err
	}
	if !ok {
		return errLockBusy
	}
	w.lockLost = false
	return nil
}

// lost gives up on what: the repository stays frozen.
func (w *write) lost(what string, err error) error {
	w.n.Log.Error().Err(err).Str("repo", w.st.Repo).Msg(what + " failed; repository stays frozen")
	return fmt.Errorf("%w: %s: %w", ErrLostWrite, what, err) // err too: a stall is told as one
}

// reconnect replaces a broken connection; the write lock went with the
// old session and is taken again before anything is recorded.
func (w *write) reconnect(ctx context.Context) {
	c, err := w.n.DB.Conn(ctx)
	if err != nil {
		return
	}
	w.conn.Close()
	w.conn = c
	w.lockLost = true
}

// catchUpLocked syncs under this device's read lock; the caller holds the
// write lock, so no version moves meanwhile.
func (n *Node) catchUpLocked(ctx context.Context, conn *sql.Conn, st State) error {
	if n.Current(st) {
		return nil
	}
	rkey := lock.Read(st.RepoID, st.SelfID)
	if err := lock.Acquire(ctx, conn, rkey, n.LockTimeout, n.waiting(st.Repo, rkey)); err != nil {
		return err
	}
	defer n.unlock(conn, st.Repo, rkey)
	// A reader may have fetched while this waited for the read lock.
	st, err := n.reload(ctx, conn, st.Repo)
	if err != nil {
		return err
	}
	return n.syncLocked(ctx, conn, st)
}
