// Package serve is the forced command: one SSH connection, parsed, checked,
// brought up to date and handed to git; and, through Handle, the same path
// for a request the HTTP front door (httpgit) parsed.
// It owns the order
// of the steps (parse, access, admit, catch up or write, run git), not the
// steps themselves, and knows nothing of flags or the log's destination.
package serve

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"gitmesh/access"
	"gitmesh/config"
	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/hook"
	"gitmesh/public"
	"gitmesh/version"
)

// Conn is one SSH connection as sshd hands it over.
type Conn struct {
	User     string   // the key's user, from the forced command
	Original string   // SSH_ORIGINAL_COMMAND
	Environ  []string // the process environment, filtered before git sees it
	Log      zerolog.Logger
	Tell     func(format string, args ...any)
	// Stderr, when set, gets the progress of a catch-up from a peer.
	Stderr io.Writer
	// In and Out carry a cluster request's data that git does not
	// (gitmesh-digests): the session's stdin and stdout.
	In  io.Reader
	Out io.Writer
}

// Request is one user's request, as a front door parsed it (SSH's
// SSH_ORIGINAL_COMMAND, or an HTTP request): from here on both doors take
// the same path (access, admit, catch up or write, run git).
type Request struct {
	User    string
	Cmd     gitexec.Command
	Environ []string // the environment git may see, filtered before it does
	Log     zerolog.Logger
	Tell    func(format string, args ...any)
	// Stderr, when set, gets the progress of a catch-up from a peer.
	Stderr io.Writer
	// Advertise asks only for the refs (smart HTTP's GET info/refs): the
	// access check is the verb's, the rest is a read's (no write lock).
	Advertise bool
	// Run, when set, runs git for a read or an advertisement; nil execs
	// the service in place of gitmesh (SSH).
	Run func(dir string, env []string) error
	// Receive, when set, starts receive-pack for a push in dir with env
	// (filtered, plus the hook's) and gitConfig; nil runs it on this
	// process's stdout (SSH).
	Receive func(dir string, env, gitConfig []string, stdin *os.File) (*gitexec.Service, error)
	// Client, when set, is the push's bytes; nil reads stdin.
	Client io.Reader
	// spoke, when set (SSH), is set once git has this process's stdout.
	spoke *bool
	// PassedOn: another device passed the request on (gitmesh-as,
	// gitmesh-as-http); it is never passed on again.
	PassedOn bool
	// HTTP, set by the HTTP door, lets a request that reached a device
	// holding no copy be passed on: a holder's HTTP door answers it whole.
	HTTP *HTTPHop
}

// HTTPHop is what passing a smart HTTP request on needs from the door.
type HTTPHop struct {
	Body io.Reader // the request body as git sent it (inflated); nil for info/refs
	Out  io.Writer // where the holder's CGI answer (header and body) goes, as it is
}

// User serves a user's connection: reads catch up first, pushes run under
// the write lock. On success a read never returns (git replaced gitmesh).
// A refusal of a well-formed git request before git has written anything
// on stdout is marked so (see InProtocol): the client may be told in the
// protocol as well.
func User(ctx context.Context, s config.Settings, c Conn) error {
	cmd, err := gitexec.ParseCommand(c.Original)
	if err != nil {
		return err // not a git client's request: stderr only
	}
	return handleConn(ctx, s, c, Request{User: c.User, Cmd: cmd, Environ: c.Environ})
}

// handleConn is Handle for an SSH connection (the user's own, or one
// passed on by another device), marking a refusal before git spoke.
func handleConn(ctx context.Context, s config.Settings, c Conn, r Request) error {
	spoke := false
	r.Log, r.Tell, r.Stderr, r.spoke = c.Log, c.Tell, c.Stderr, &spoke
	err := Handle(ctx, s, r)
	if err != nil && !spoke {
		return refusal{err}
	}
	return err
}

// servePassedOn serves a user's request that a device holding no copy
// passed on (gitmesh-as): as the user, with the client's GIT_PROTOCOL,
// through the whole user path (access again, this device's limits), and
// never passed on again.
func servePassedOn(ctx context.Context, s config.Settings, c Conn, cmd gitexec.Command) error {
	env := make([]string, 0, len(c.Environ)+1)
	for _, kv := range c.Environ {
		if !strings.HasPrefix(kv, "GIT_PROTOCOL=") {
			env = append(env, kv)
		}
	}
	if cmd.Protocol != "" {
		env = append(env, "GIT_PROTOCOL="+cmd.Protocol)
	}
	c.Log = c.Log.With().Bool("passed_on", true).Logger()
	return handleConn(ctx, s, c, Request{User: cmd.User, Cmd: gitexec.Command{Verb: cmd.Verb, Repo: cmd.Repo},
		Environ: env, PassedOn: true})
}

// refusal marks an error that ended a git client's request before git
// wrote anything on stdout.
type refusal struct{ error }

func (e refusal) Unwrap() error { return e.error }

// InProtocol reports whether err refused a git client's request before
// git began to write the protocol on stdout: stdout is untouched, and a
// git client there reads an ERR packet (gitexec.ErrPacket) where the
// protocol begins. A malformed command gets stderr only (a person or a
// probe, not a git client); once git has spoken, stdout is git's.
func InProtocol(err error) bool {
	var r refusal
	return errors.As(err, &r)
}

// Handle serves one parsed request, whichever door it came through.
func Handle(ctx context.Context, s config.Settings, r Request) error {
	cmd := r.Cmd
	if err := s.NeedDevice(); err != nil {
		return err
	}
	if err := s.NeedDatabase(); err != nil {
		return err
	}
	write := cmd.Verb.IsWrite() && !r.Advertise
	// The node's logger names the user and verb; version's lines add the
	// repository themselves (a node may serve several), so the context
	// adds it only to serve's own lines: a field twice is not JSON.
	nodeLog := r.Log.With().Str("user", r.User).Str("verb", string(cmd.Verb)).Logger()
	log := nodeLog.With().Str("repo", cmd.Repo).Logger()
	op := "fetch"
	need := access.Read
	if cmd.Verb.IsWrite() {
		need = access.Write
	}
	if write {
		op = "push"
	}
	dbh, err := db.Open(s.DatabaseURL, db.AppName(op, r.User, s.Device, cmd.Repo), s.ConnectTimeout.D())
	if err != nil {
		return err
	}
	defer dbh.Close()
	start := time.Now()
	// The fast path: connect (connect_timeout) and one query, bounded like
	// any database step by lock_timeout. It commits nothing, so it works on
	// a database that answers but cannot commit.
	lctx, cancel := db.Bound(ctx, s.LockTimeout.D())
	st, err := version.Lookup(lctx, dbh, cmd.Repo, r.User, s.Device, need)
	cancel()
	log.Debug().Dur("lookup", time.Since(start)).Bool("current", err == nil && st.Current()).Msg("fast path")
	if errors.Is(err, version.ErrReadOnly) {
		rctx, cancel := db.Bound(ctx, s.LockTimeout.D())
		defer cancel()
		return access.ReadOnly(rctx, dbh, cmd.Repo)
	}
	if err != nil {
		return err
	}
	if !st.Holds() {
		// Any device answers: passed on to a holder, no copy made here.
		dbh.Close()
		if r.PassedOn {
			return errMovedMeanwhile(cmd.Repo, s.Device)
		}
		if (r.Run != nil || r.Receive != nil) && r.HTTP == nil {
			return errHTTPNotHolder(st)
		}
		return passOn(ctx, s, r, st, log)
	}
	// Only after the access check, so that a path's fate tells nothing to
	// someone who may not use it.
	dir, err := confined(s.RepoRoot, cmd.Repo, log)
	if err != nil {
		return err
	}
	node := NewNode(s, dbh, nodeLog, r.Tell)
	if r.Stderr != nil {
		node.Git.Progress = gitexec.NewProgress(r.Stderr, "gitmesh: catching up: ")
	}
	current := node.Current(st)
	if !current {
		if err := checkPeerAccess(s, cmd.Repo, st.Leaders()); err != nil {
			return err
		}
	}
	// The fast path holds its connection for one query; anything longer
	// takes one of the user's places first: a push is refused at once
	// without one, a read waits for one without a connection.
	if write || !current {
		if err := admitSession(ctx, s, dbh, r.User, write, r.Tell); err != nil {
			log.Info().Err(err).Msg("refused: session limit")
			return err
		}
	}
	env := gitexec.Env(r.Environ)
	if write {
		if node.Bin, err = os.Executable(); err != nil {
			return err
		}
		node.Client = r.Client
		node.After = func(a version.Afterward) error { return startConverge(s, node.Bin, a) }
		return node.Push(ctx, st, r.User, func(extraEnv, gitConfig []string, stdin *os.File) (*gitexec.Service, error) {
			if r.Receive != nil {
				return r.Receive(dir, append(env, extraEnv...), gitConfig, stdin)
			}
			svc, err := gitexec.StartService(cmd.Verb, dir, append(env, extraEnv...), gitConfig, stdin)
			if r.spoke != nil {
				*r.spoke = err == nil // receive-pack has this process's stdout
			}
			return svc, err
		})
	}
	// An archive request is read, and refused if it names gitmesh's own
	// refs, before anything else happens (upload-archive ignores hideRefs).
	var archive []byte
	if cmd.Verb == gitexec.UploadArchive {
		if archive, err = gitexec.ReadArchiveRequest(os.Stdin, s.PushIdleTimeout.D()); err != nil {
			log.Info().Err(err).Msg("refused: archive request")
			return err
		}
	}
	// A mark left by a dead writer is repaired by its device (reads still
	// work if it cannot be); the repair may move this copy.
	if node.HealFrozen(ctx, st) {
		if st, err = version.Lookup(ctx, dbh, cmd.Repo, r.User, s.Device, need); err != nil {
			return err
		}
	}
	if err := node.CatchUp(ctx, st); err != nil {
		// The copy moved away while this read waited for its read lock:
		// passed on to a holder as if it had arrived now (an archive
		// request was read already, so it hears "try again").
		if !errors.As(err, new(version.MovedError)) || cmd.Verb == gitexec.UploadArchive || r.PassedOn ||
			(r.Run != nil || r.Receive != nil) && r.HTTP == nil {
			return err
		}
		lctx, cancel := db.Bound(ctx, s.LockTimeout.D())
		moved, lerr := version.Lookup(lctx, dbh, cmd.Repo, r.User, s.Device, need)
		cancel()
		if lerr != nil || moved.Holds() {
			return err
		}
		dbh.Close()
		return passOn(ctx, s, r, moved, log)
	}
	run := r.Run
	if run == nil {
		run = func(dir string, env []string) error {
			if cmd.Verb == gitexec.UploadArchive {
				return gitexec.ExecArchive(dir, env, archive)
			}
			return gitexec.Exec(cmd.Verb, dir, env)
		}
	}
	return execGit(ctx, dbh, s.LockTimeout.D(), cmd.Repo, s.Device, dir, env, log, run)
}

// confined is the repository's directory; the user hears why a path is
// refused, never the server's paths (those go to the log).
func confined(root, repo string, log zerolog.Logger) (string, error) {
	dir, err := gitexec.ConfinedRepoDir(root, repo)
	if err != nil && !errors.Is(err, gitexec.ErrBadName) {
		log.Error().Err(err).Msg("repository path")
		return "", public.New("this device cannot open its copy of the repository; the administrator can find why in gitmesh's log")
	}
	return dir, err
}

// execGit closes the database and becomes git (or runs it, over HTTP).
// A copy missing now was renamed or deleted after this request looked it
// up (the rename moved it, the delete removed it): "not found", as the
// next request will hear; or moved away (a move's tidy removed it): "try
// again", exit 6; missing otherwise, the administrator's to restore.
// The database is asked only then, within bound.
func execGit(ctx context.Context, dbh *sql.DB, bound time.Duration, repo, device, dir string, env []string, log zerolog.Logger, run func(dir string, env []string) error) error {
	if !gitexec.Exists(dir) {
		bctx, cancel := db.Bound(ctx, bound)
		registered, holds, err := version.Placed(bctx, dbh, repo, device)
		cancel()
		dbh.Close()
		switch {
		case err == nil && !registered:
			return version.ErrNotFound
		case err == nil && !holds:
			return version.ErrMovedAway(repo, device) // removed by a move after the lookup
		}
		log.Error().Str("dir", dir).Msg("copy missing although recorded as current")
		return public.New("this device's copy of the repository is missing and no other device holds the newest version; an administrator must restore it")
	}
	dbh.Close()
	return run(dir, env)
}

// Cluster serves a peer device: a fetch (upload-pack, staged refs
// included), a staging push (receive-pack that may write only the staged
// namespace), a request to catch up on a repository now, or a probe (a
// login that asks for nothing).
func Cluster(ctx context.Context, s config.Settings, c Conn) error {
	if c.Original == "" {
		return clusterProbe(s, c) // gitmesh check
	}
	cmd, err := gitexec.ParseClusterCommand(c.Original)
	if err != nil {
		return err
	}
	if cmd.Verb == gitexec.DigestsRequest {
		return clusterDigests(ctx, s, c)
	}
	if cmd.PassedOn() {
		if cmd.HTTP != "" {
			return fmt.Errorf("%w: a passed-on HTTP request is the HTTP door's", gitexec.ErrBadCommand)
		}
		return servePassedOn(ctx, s, c, cmd)
	}
	if s.RepoRoot == "" {
		return config.UnsetError(config.NoRepoRoot)
	}
	dir, err := gitexec.ConfinedRepoDir(s.RepoRoot, cmd.Repo)
	if err != nil {
		return err
	}
	switch cmd.Verb {
	case gitexec.UploadPack:
		if err := admitCluster(ctx, s, "cluster", cmd.Repo, func(ctx context.Context, dbh *sql.DB) error {
			if !gitexec.Exists(dir) {
				renameIfDue(ctx, s, dbh, cmd.Repo, c.Log) // renamed while this device was away
			}
			if !gitexec.Exists(dir) {
				return version.ErrNotFound
			}
			return nil
		}); err != nil {
			return err
		}
		return gitexec.ExecCluster(dir, gitexec.Env(c.Environ))
	case gitexec.ReceivePack, gitexec.StageVerb:
		if err := admitCluster(ctx, s, "replica", cmd.Repo, func(ctx context.Context, dbh *sql.DB) error {
			return replicaCopy(ctx, s, dbh, cmd.Repo, dir)
		}); err != nil {
			return err
		}
		syncHooks := ""
		if cmd.Verb == gitexec.StageVerb {
			// Many refs: written unsynced, one syncfs before the report.
			var err error
			if syncHooks, err = hook.StageDir(s.RepoRoot); err != nil {
				return err
			}
		}
		return gitexec.ExecReplica(dir, gitexec.Env(c.Environ), syncHooks)
	case gitexec.SyncRequest:
		return clusterSync(ctx, s, cmd.Repo, c)
	}
	return fmt.Errorf("%w: the cluster key may not run %s", gitexec.ErrBadCommand, cmd.Verb)
}

// renameIfDue moves this device's copy of repo into place for a peer's
// fetch when a rename done while this device was away left it under its
// old name (version.Node.RenameIfDue).
func renameIfDue(ctx context.Context, s config.Settings, dbh *sql.DB, repo string, log zerolog.Logger) {
	st, err := version.Load(ctx, dbh, repo)
	if err != nil {
		return
	}
	for _, h := range st.Holders {
		if h.Name == s.Device {
			NewNode(s, dbh, log, func(string, ...any) {}).RenameIfDue(ctx, st.RepoID, h.ID, h.Name, s.RepoRoot, repo)
		}
	}
}

// clusterDB opens the database for one cluster hop (op: cluster, replica
// or sync) on repo, named for pg_stat_activity and bounded by
// connect_timeout like every gitmesh connection. The one way a cluster
// request reaches PostgreSQL; the caller closes it before git starts.
func clusterDB(s config.Settings, op, repo string) (*sql.DB, error) {
	if err := s.NeedDatabase(); err != nil {
		return nil, err
	}
	return db.Open(s.DatabaseURL, db.AppName(op, "cluster", s.Device, repo), s.ConnectTimeout.D())
}

// admitCluster refuses, as an unknown repository, a git directory under
// the root that is not a registered repository (the cluster key reads and
// stages only what gitmesh replicates), then runs then on the same
// connection pool, within the same bound (lock_timeout), and closes it.
func admitCluster(ctx context.Context, s config.Settings, op, repo string, then func(context.Context, *sql.DB) error) error {
	dbh, err := clusterDB(s, op, repo)
	if err != nil {
		return err
	}
	defer dbh.Close()
	ctx, cancel := db.Bound(ctx, s.LockTimeout.D())
	defer cancel()
	ok, err := version.Registered(ctx, dbh, repo)
	if err == nil && !ok {
		err = version.ErrNotFound
	}
	if err != nil {
		return err
	}
	return then(ctx, dbh)
}

// replicaCopy makes sure a staging push has a copy to land in: a missing
// one is created, for a registered repository only.
func replicaCopy(ctx context.Context, s config.Settings, dbh *sql.DB, repo, dir string) error {
	if gitexec.Exists(dir) {
		return nil
	}
	st, err := version.Load(ctx, dbh, repo)
	if err != nil {
		return err
	}
	if err := gitexec.CheckRoot(s.RepoRoot); err != nil {
		return err
	}
	for _, h := range st.Holders {
		if h.Name == s.Device {
			if err := version.ForgetCopy(ctx, dbh, st.RepoID, h.ID); err != nil {
				return err
			}
			if stall := db.Stalled(ctx, "forget a missing copy", s.LockTimeout.D()); stall != nil {
				return stall // committed locally, perhaps: the writer's stage fails, nothing is recorded
			}
		}
	}
	return Git(s, zerolog.Nop()).InitCopy(ctx, s.RepoRoot, dir)
}

// clusterSync does this device's disk tasks (copies moved away, deleted
// or renamed), then catches it up on repo, as a read would. A repository
// deleted meanwhile is no error once the tasks are done.
func clusterSync(ctx context.Context, s config.Settings, repo string, c Conn) error {
	dbh, err := clusterDB(s, "sync", repo)
	if err != nil {
		return err
	}
	defer dbh.Close()
	n := NewNode(s, dbh, c.Log, c.Tell)
	if err := n.TidyFor(ctx, repo); err != nil {
		return err
	}
	err = n.Sync(ctx, repo)
	if errors.Is(err, version.ErrNotFound) {
		return nil
	}
	return err
}

// startConverge runs `gitmesh converge REPO` detached from the client's
// connection, with this process's settings and what is left of the push
// (a), so that serve exits as soon as git has reported (sshd holds the
// client until then): the child records the attempt and the staging and,
// when a version was recorded, catches up the devices the push left
// behind, even without `gitmesh replicate`.
func startConverge(s config.Settings, bin string, a version.Afterward) error {
	cmd := exec.Command(bin, "converge", a.Repo)
	cmd.Env = append(gitexec.Env(os.Environ()), SettingsEnv(s)...)
	cmd.Env = append(cmd.Env, version.AfterwardEnv+"="+a.Encode())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// SettingsEnv passes settings to a child gitmesh through its environment
// (never its command line, which every local user can read).
func SettingsEnv(s config.Settings) []string {
	env := []string{
		"GITMESH_DATABASE_URL=" + s.DatabaseURL, "GITMESH_DEVICE=" + s.Device,
		"GITMESH_REPO_ROOT=" + s.RepoRoot, "GITMESH_LOG_FILE=" + s.LogFile,
		"GITMESH_CLUSTER_KEY=" + s.ClusterKey, "GITMESH_KNOWN_HOSTS=" + s.KnownHosts,
		"GITMESH_LOCK_TIMEOUT=" + s.LockTimeout.D().String(), "GITMESH_FETCH_TIMEOUT=" + s.FetchTimeout.D().String(),
		"GITMESH_CONNECT_TIMEOUT=" + s.ConnectTimeout.D().String(), "GITMESH_RECORD_TIMEOUT=" + s.RecordTimeout.D().String(),
		"GITMESH_WRITE_QUORUM=" + s.WriteQuorum.String(), "GITMESH_CLUSTER_FROM=" + s.ClusterFrom,
		"GITMESH_LOG_RETENTION=" + s.LogRetention.D().String(),
		"GITMESH_SSH_CONTROL_PERSIST=" + s.SSHControlPersist.D().String(),
		"GITMESH_SSH_CONTROL_DIR=" + s.SSHControlDir,
		"GITMESH_COPIES=" + strconv.Itoa(s.Copies),
	}
	if s.Path != "" {
		env = append(env, "GITMESH_CONFIG="+s.Path)
	}
	return env
}

// NewNode is this device, as the read and write protocols see it.
func NewNode(s config.Settings, dbh *sql.DB, log zerolog.Logger, tell func(string, ...any)) *version.Node {
	return &version.Node{DB: dbh, Device: s.Device, RepoRoot: s.RepoRoot,
		Git: Git(s, log), LockTimeout: s.LockTimeout.D(), RecordTimeout: s.RecordTimeout.D(),
		WriteQuorum: int(s.WriteQuorum), MaxPushWaiters: s.MaxPushWaiters,
		PushTimeout: s.PushTimeout.D(), PushIdleTimeout: s.PushIdleTimeout.D(),
		MaxPushBytes: s.MaxPushBytes, MaxPushRefs: s.MaxPushRefs, Log: log, Tell: tell}
}

// Git is the bookkeeping git for these settings: fetch timeout and, for
// ssh:// peers, the cluster key, known_hosts and shared connections,
// worked out on the first hop only (a read of a current copy makes none).
// When the control directory is not private, hops go unshared (and say
// why in the log): sharing is a saving, never a reason to fail.
func Git(s config.Settings, log zerolog.Logger) gitexec.Git {
	ssh := sync.OnceValue(func() string {
		base := s.SSHControlDir
		if base == "" {
			base = gitexec.ControlBase()
		}
		ssh, err := gitexec.SharedSSHCommand(s.ClusterKey, s.KnownHosts, s.ConnectTimeout.D(),
			s.SSHControlPersist.D(), base, time.Now())
		if err != nil {
			log.Warn().Err(err).Msg("ssh connections to peers are not shared")
		}
		return ssh
	})
	return gitexec.Git{Timeout: s.FetchTimeout.D(), SSH: ssh}
}
