package gitexec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"gitmesh/public"
)

// Git runs git for gitmesh's own bookkeeping: creating copies, fetching from
// peers and reading refs.
type Git struct {
	// SSH builds GIT_SSH_COMMAND for hops to ssh:// peers (reading the
	// cluster key and known_hosts); it is called at the first hop only
	// (see SSHCommand), so a git run that reaches no peer never reads
	// them. nil is plain ssh.
	SSH func() string
	// Timeout bounds one fetch from a peer.
	Timeout time.Duration
	// Progress, when set, gets the meter of fetches from peers (a user
	// waiting for a catch-up sees it).
	Progress *Progress
	// StageHooks is the directory of the syncing reference-transaction
	// hook (hook.StageDir) that a local-path peer's staging receive-pack
	// runs with for a push of many refs (see PushStage); "" syncs each
	// ref instead.
	StageHooks string
}

// keptEnv are the variables git and the repositories' hooks get; anything
// else (GIT_DIR, LD_PRELOAD, a client's LC_*, gitmesh's own database URL)
// stays behind.
var keptEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ"}

// Env is the environment git runs in: an allowlist of the caller's, plus
// GIT_PROTOCOL when the client sent a valid one.
func Env(environ []string) []string {
	out := make([]string, 0, len(keptEnv)+1)
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if slices.Contains(keptEnv, name) || name == "GIT_PROTOCOL" && validProtocol(value) {
			out = append(out, kv)
		}
	}
	return out
}

// validProtocol accepts what git clients send: "version=2", colon separated.
func validProtocol(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(nameByte(c) || c == '=' || c == ':') {
			return false
		}
	}
	return true
}

// gitArgs is the argv that serves verb to a user, run inside the copy:
// gitmesh's own namespace is never advertised, refs are written to disk
// for good, and the copy is named "." so that git's messages to the user
// never show the server's path; extra are more `git -c` settings.
func gitArgs(verb Verb, extra ...string) []string {
	return gitArgsFlags(verb, nil, extra...)
}

// The flags of git's smart HTTP, which runs a service once per request.
const (
	// AdvertiseRefs: list the refs and stop (GET info/refs).
	AdvertiseRefs = "--advertise-refs"
	// StatelessRPC: one request in, one response out (POST).
	StatelessRPC = "--stateless-rpc"
)

// gitArgsFlags is gitArgs with flags of the service's own after its name.
func gitArgsFlags(verb Verb, flags []string, extra ...string) []string {
	args := []string{"git"}
	for _, c := range append(append(FsyncConfig(), "uploadpack.hideRefs="+Hidden, "receive.hideRefs="+Hidden), extra...) {
		args = append(args, "-c", c)
	}
	args = append(args, strings.TrimPrefix(string(verb), "git-"))
	return append(append(args, flags...), ".")
}

// ExecCluster replaces this process with upload-pack for a peer device:
// every ref, staged ones included.
func ExecCluster(dir string, env []string) error {
	bin, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("find git: %w", err)
	}
	return syscall.Exec(bin, []string{"git", "upload-pack", dir}, env)
}

// ExecReplica replaces this process with the receive-pack of a staging
// push from a peer device (see ReplicaReceivePack; syncHooks "" syncs
// each ref).
func ExecReplica(dir string, env []string, syncHooks string) error {
	bin, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("find git: %w", err)
	}
	return syscall.Exec(bin, append(append([]string{"git"}, ReplicaReceivePack(syncHooks)...), dir), env)
}

// Exec replaces this process with the git service; it returns only on error.
func Exec(verb Verb, dir string, env []string) error {
	return ExecFlags(verb, dir, env, nil)
}

// ExecFlags is Exec with the service's own flags (AdvertiseRefs,
// StatelessRPC).
func ExecFlags(verb Verb, dir string, env, flags []string) error {
	bin, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("find git: %w", err)
	}
	if err := os.Chdir(dir); err != nil {
		return public.Wrap(err, "this device cannot open its copy of the repository; the administrator can find why in gitmesh's log")
	}
	return syscall.Exec(bin, gitArgsFlags(verb, flags, partialCloneConfig(verb, env)...), env)
}

// Service is a git service running as a child of gitmesh.
type Service struct {
	cmd  *exec.Cmd
	done <-chan error
}

// StartService runs the git service as a child reading stdin and
// writing this process's stdout and stderr, with extra `git -c` settings.
// The child and its hooks form one process group, and get SIGKILL if this
// process dies, so no git outlives the gitmesh that must record its work.
func StartService(verb Verb, dir string, env, gitConfig []string, stdin *os.File) (*Service, error) {
	return StartServiceIO(verb, dir, env, gitConfig, nil, stdin, os.Stdout)
}

// StartServiceIO is StartService with the service's own flags
// (StatelessRPC) and another stdout (an HTTP response).
func StartServiceIO(verb Verb, dir string, env, gitConfig, flags []string, stdin *os.File, stdout io.Writer) (*Service, error) {
	var args []string
	for _, c := range gitConfig {
		args = append(args, "-c", c)
	}
	args = append(args, gitArgsFlags(verb, flags, partialCloneConfig(verb, env)...)[1:]...)
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	done, err := StartTied(cmd)
	if err != nil {
		return nil, fmt.Errorf("start git %s: %w", verb, err)
	}
	return &Service{cmd: cmd, done: done}, nil
}

// StartTied starts cmd from a thread locked until the child is done:
// Pdeathsig (set by the caller) fires when the thread that started the
// child exits. The channel gets cmd.Wait's result.
func StartTied(cmd *exec.Cmd) (<-chan error, error) {
	started, done := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	return done, <-started
}

// ExitError carries git's own exit status; git has already told the user
// why on stderr.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("git exited with status %d", e.Code) }

// ExitStatus turns a git child's failure into an ExitError.
func ExitStatus(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return &ExitError{Code: ee.ExitCode()}
	}
	if err != nil {
		// Killed by a signal: git said nothing, so gitmesh must.
		return fmt.Errorf("git was stopped (%v) before it finished", err)
	}
	return nil
}

// Pid is the service's process id.
func (s *Service) Pid() int { return s.cmd.Process.Pid }

// HungUp reports whether a git child was killed by SIGPIPE: it wrote to
// a client that had closed the connection.
func HungUp(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGPIPE
}

// Wait returns the service's exit error.
func (s *Service) Wait() error { return <-s.done }

// Kill ends the service and its hooks at once: the client gets no report.
func (s *Service) Kill() { syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) }

// Exists reports whether dir holds a git repository gitmesh can serve.
func Exists(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "HEAD"))
	return err == nil && st.Mode().IsRegular()
}

// ErrNoRoot means a device's repo root is missing: an unmounted disk must
// not be mistaken for an empty one.
var ErrNoRoot = errors.New("the repo root is missing")

// InitCopy creates an empty copy at dir under root, which must exist: the
// directories between are made one by one below it, so a root that
// vanishes meanwhile is not made again.
//
// The copy is made beside dir and renamed into place whole: a `git init`
// killed half-way (a staging push cut at the grace's end) must not leave a
// directory at dir without HEAD, which no copy check takes for a copy and
// every later catch-up's rename into place would meet. Such a directory,
// left by an older gitmesh, is removed first: it holds no HEAD, so no
// copy. The caller holds the copy's read lock.
func (g Git) InitCopy(ctx context.Context, root, dir string) error {
	if err := RemoveHalfMade(dir); err != nil {
		return err
	}
	tmp := dir + ".gitmesh-init"
	os.RemoveAll(tmp) // left by a killed init; the read lock is ours
	if err := MkdirUnder(root, tmp); err != nil {
		return err
	}
	// Inside tmp (git -C), never by path: `git init PATH` would make the
	// leading directories again if the root vanished meanwhile.
	if _, err := g.run(ctx, tmp, "init", "--quiet", "--bare", "--initial-branch=main"); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create copy: %w", err)
	}
	return nil
}

// RemoveHalfMade removes a directory at dir that is not a copy (no HEAD
// file): what a killed `git init` in place left.
func RemoveHalfMade(dir string) error {
	if Exists(dir) {
		return nil
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove a half-made copy: %w", err)
	}
	return nil
}

// NoRootError is ErrNoRoot naming the root, for administrators (serve's
// users hear only that the server is misconfigured).
type NoRootError struct{ Root string }

func (e *NoRootError) Error() string {
	return fmt.Sprintf("the repo root %s is missing (an unmounted disk?); mount it, or create it owned by the git account with mode 700", e.Root)
}

// Is makes errors.Is(err, ErrNoRoot) hold.
func (e *NoRootError) Is(target error) bool { return target == ErrNoRoot }

// CheckRoot returns a NoRootError unless root is a directory.
func CheckRoot(root string) error {
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return &NoRootError{root}
	}
	return nil
}

// MkdirUnder makes dir and the directories between it and root, which
// must exist (ErrNoRoot otherwise).
func MkdirUnder(root, dir string) error {
	if err := CheckRoot(root); err != nil {
		return err
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is not under the repo root", dir)
	}
	cur := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			if errors.Is(err, os.ErrNotExist) {
				return &NoRootError{root}
			}
			return err
		}
	}
	return nil
}

// InitBare creates an empty bare repository at dir (and its parents).
func (g Git) InitBare(ctx context.Context, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	_, err := g.run(ctx, "", "init", "--quiet", "--bare", "--initial-branch=main", dir)
	return err
}

// GCAuto runs `git gc --auto` in the foreground, as receive-pack would
// have after a push.
func (g Git) GCAuto(ctx context.Context, dir string) error {
	_, err := g.run(ctx, dir, "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet")
	return err
}

// RemoteHead returns the ref that url's HEAD points to ("" when HEAD is
// detached or missing).
func (g Git) RemoteHead(ctx context.Context, url string) (string, error) {
	out, err := g.run(ctx, "", "ls-remote", "--symref", url, "HEAD")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "ref: "); ok {
			target, _, _ := strings.Cut(rest, "\t")
			return target, nil
		}
	}
	return "", nil
}

// RemoteRefs reads url's visible refs ("<object> <refname>" lines, as
// Refs gives them) and HEAD's target.
func (g Git) RemoteRefs(ctx context.Context, url string) (refs, head string, err error) {
	visible, _, head, err := g.RemoteRefSets(ctx, url)
	if err != nil {
		return "", "", err
	}
	return visible.Lines(), head, nil
}

// RemoteRefSets reads url's visible and staged refs and HEAD's target.
func (g Git) RemoteRefSets(ctx context.Context, url string) (visible, staged RefSet, head string, err error) {
	out, err := g.run(ctx, "", "ls-remote", "--symref", url)
	if err != nil {
		return nil, nil, "", err
	}
	visible, staged = RefSet{}, RefSet{}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "ref: "); ok {
			if target, name, _ := strings.Cut(rest, "\t"); name == "HEAD" {
				head = target
			}
			continue
		}
		obj, ref, ok := strings.Cut(line, "\t")
		switch {
		case !ok || ref == "HEAD" || strings.HasSuffix(ref, "^{}"):
		case strings.HasPrefix(ref, Stage):
			staged["refs/"+strings.TrimPrefix(ref, Stage)] = obj
		case strings.HasPrefix(ref, Hidden):
		default:
			visible[ref] = obj
		}
	}
	return visible, staged, head, nil
}

// SetHead points dir's HEAD at ref.
func (g Git) SetHead(ctx context.Context, dir, ref string) error {
	if !strings.HasPrefix(ref, "refs/") {
		return fmt.Errorf("refusing HEAD target %q", ref)
	}
	_, err := g.run(ctx, dir, "symbolic-ref", "HEAD", ref)
	return err
}

// Head returns the ref dir's HEAD points to, read from the HEAD file.
func Head(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "HEAD"))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if ref, ok := strings.CutPrefix(s, "ref: "); ok {
		return ref, nil
	}
	return "", nil // detached
}

// Refs returns dir's refs as "<object> <refname>" lines sorted by name.
func (g Git) Refs(ctx context.Context, dir string) (string, error) {
	out, err := g.run(ctx, dir, "for-each-ref", "--format=%(objectname) %(refname)")
	return string(out), err
}

// Digest is the refs_digest of a copy: sha256 of its refs ("<object>
// <refname>" lines, sorted here) and HEAD's target.
//
// A HEAD pointing at no existing ref counts as no HEAD: a peer's
// upload-pack does not advertise such a HEAD, so a copy read remotely
// (thaw, verify) and one read on disk give the same digest.
func Digest(refs, head string) string {
	return digestSorted(strings.Split(strings.TrimSpace(refs), "\n"), head)
}

// digestSorted is Digest of the lines, which it sorts in place.
func digestSorted(lines []string, head string) string {
	sort.Strings(lines)
	h := sha256.New()
	headExists := false
	for _, l := range lines {
		if l != "" {
			h.Write([]byte(l + "\n"))
			headExists = headExists || strings.HasSuffix(l, " "+head)
		}
	}
	if !headExists {
		head = ""
	}
	fmt.Fprintf(h, "HEAD %s\n", head)
	return hex.EncodeToString(h.Sum(nil))
}

// RefsDigest reads dir and returns the Digest of its visible refs.
func (g Git) RefsDigest(ctx context.Context, dir string) (string, error) {
	visible, _, err := g.ReadRefs(ctx, dir)
	if err != nil {
		return "", err
	}
	head, err := Head(dir)
	if err != nil {
		return "", err
	}
	return visible.Digest(head), nil
}

// run runs git in dir (or nowhere in particular) with the timeout, killing
// the whole process group (ssh, upload-pack) when it expires.
func (g Git) run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	return g.runInput(ctx, dir, "", args...)
}

// runInput is run with input on git's stdin.
func (g Git) runInput(ctx context.Context, dir, input string, args ...string) ([]byte, error) {
	return g.runWith(ctx, dir, input, nil, args...)
}

// runWith is runInput that also passes git's stderr to progress, if set.
func (g Git) runWith(ctx context.Context, dir, input string, progress *Progress, args ...string) ([]byte, error) {
	if g.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.Timeout)
		defer cancel()
	}
	name := subcommand(args)
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	for _, c := range fsyncConfig {
		args = append([]string{"-c", c}, args...)
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	if input != "" {
		cmd.Stdin = strings.NewReader(input)
	}
	cmd.Env = Env(os.Environ())
	if hops(args) {
		if ssh := g.SSHCommand(); ssh != "" {
			// The variant said, since the command may start "cd /": git
			// would otherwise probe it with an extra `ssh -G` per hop.
			cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND="+ssh, "GIT_SSH_VARIANT=ssh")
		}
	}
	cmd.Env = append(cmd.Env, "GIT_TERMINAL_PROMPT=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if progress != nil {
		cmd.Stderr = io.MultiWriter(&stderr, progress)
		defer progress.Flush()
	}
	err := runTied(cmd)
	out := stdout.Bytes()
	if ctx.Err() == context.DeadlineExceeded {
		err := fmt.Errorf("git %s: timed out after %s", name, g.Timeout)
		return out, public.Because(err, err.Error())
	}
	if err != nil {
		// Not %w: git's exit status must not become gitmesh's (cli.ExitCoder).
		// Users hear only what kind of failure: git's own lines name paths.
		why := publicReason(name, stderr.String())
		if reason := failureReason(stderr.String()); reason != "" {
			return out, public.Because(fmt.Errorf("git %s: %s", name, reason), why)
		}
		return out, public.Because(fmt.Errorf("git %s: %v", name, err), why)
	}
	return out, nil
}

// SSHCommand is GIT_SSH_COMMAND for a hop to an ssh:// peer ("" for
// plain ssh).
func (g Git) SSHCommand() string {
	if g.SSH == nil {
		return ""
	}
	return g.SSH()
}

// hops reports whether a git run names a URL (an ssh:// peer): only
// those need the ssh command.
func hops(args []string) bool {
	for _, a := range args {
		if strings.Contains(a, "://") {
			return true
		}
	}
	return false
}

// subcommand names a git invocation for messages: "gc" in "-c k=v gc".
func subcommand(args []string) string {
	for i := 0; i < len(args); i++ {
		if args[i] == "-c" {
			i++
			continue
		}
		if strings.HasPrefix(args[i], "--git-dir=") {
			continue // a server path, not for messages
		}
		return args[i]
	}
	return "git"
}

// runTied runs cmd so that it gets SIGKILL when gitmesh dies: a fetch
// orphaned by a killed serve could otherwise rewind refs long after
// another process recorded a newer version.
func runTied(cmd *exec.Cmd) error {
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	go func() {
		// Pdeathsig follows the thread that started the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		errc <- cmd.Run()
	}()
	return <-errc
}

// SSHCommand is the GIT_SSH_COMMAND for fetches from ssh:// peers: the
// cluster key only, no prompts, host keys checked strictly.
func SSHCommand(key, knownHosts string, connectTimeout time.Duration) string {
	if key == "" && knownHosts == "" {
		return ""
	}
	secs := max(int(connectTimeout.Seconds()), 1)
	// -F /dev/null: the git account's own ~/.ssh/config has no say here.
	cmd := fmt.Sprintf("ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=%d", secs)
	if key != "" {
		cmd += " -o IdentitiesOnly=yes -i " + shellQuote(key)
	}
	if knownHosts != "" {
		cmd += " -o UserKnownHostsFile=" + shellQuote(knownHosts) + " -o GlobalKnownHostsFile=/dev/null"
	}
	return cmd
}

// shellQuote single-quotes s for sh, which runs GIT_SSH_COMMAND.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RemoveStaleLocks deletes the *.lock files a killed git left in dir's refs
// and top level; otherwise every later fetch or push fails with "remove the
// file manually". Callers hold the lock that makes them the copy's only
// writer, so any lock file present belongs to a dead process.
func RemoveStaleLocks(dir string) ([]string, error) {
	var removed []string
	remove := func(p string) error {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		removed = append(removed, p)
		return nil
	}
	top, err := filepath.Glob(filepath.Join(dir, "*.lock"))
	if err != nil {
		return nil, err
	}
	for _, p := range top {
		if err := remove(p); err != nil {
			return removed, err
		}
	}
	err = filepath.WalkDir(filepath.Join(dir, "refs"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".lock") {
			return remove(p)
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return removed, err
}

// RemoveOldQuarantines deletes the objects/tmp_objdir-incoming-*
// directories in dir whose newest file is older than age: receive-pack
// keeps a push's objects there until they are checked and moved, and a
// push killed meanwhile (push_timeout, a lost client, a killed serve)
// leaves them behind. A live push writes into its own within its bounds,
// so age (longer than any push or staging push may run) spares it.
func RemoveOldQuarantines(dir string, age time.Duration) ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(dir, "objects", "tmp_objdir-incoming-*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	cutoff := time.Now().Add(-age)
	for _, q := range dirs {
		newest := time.Time{}
		filepath.Walk(q, func(_ string, info os.FileInfo, err error) error {
			if err == nil && info.ModTime().After(newest) {
				newest = info.ModTime()
			}
			return nil
		})
		if newest.IsZero() || newest.After(cutoff) {
			continue
		}
		if err := os.RemoveAll(q); err != nil {
			return removed, err
		}
		removed = append(removed, q)
	}
	return removed, nil
}
