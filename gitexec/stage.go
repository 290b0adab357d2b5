package gitexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Hidden is the namespace gitmesh keeps for itself in every copy: never
// advertised to users, never written by them, left out of digests.
const Hidden = "refs/gitmesh/"

// Stage holds, under Hidden, the ref state a copy is about to show: a
// push stages its new refs here on a quorum of devices before any
// device's visible refs move. "refs/heads/x" stages as Stage+"heads/x".
const Stage = Hidden + "stage/"

// ZeroID stands for "no object" in ref updates (SHA-1 repositories).
const ZeroID = "0000000000000000000000000000000000000000"

// fsyncConfig makes every write of objects and refs reach the disk
// before git reports it done (git 2.36+).
var fsyncConfig = []string{"core.fsync=committed", "core.fsyncMethod=fsync"}

// FsyncConfig is fsyncConfig as `git -c` settings, for services.
func FsyncConfig() []string { return append([]string(nil), fsyncConfig...) }

// unsyncedRefs keeps the sync of every object git writes but not of each
// ref file: a ref transaction run with it is made durable afterwards by
// one syncfs of the copy's filesystem (Syncfs), which also covers the
// renames that put the ref files in place. ("committed,-reference" would
// not do: git adds the listed components back after removing.)
const unsyncedRefs = "core.fsync=objects"

// BatchSyncRefs is the number of changed refs from which a ref
// transaction skips the sync of each ref file and syncs the copy's
// filesystem once instead. One syncfs cost 0.6 to 3 ms on a quiet disk
// here against 0.5 to 0.8 ms for one fsync, and 10 to 100 ms while other
// work wrote to it (it waits for whatever else is dirty on that
// filesystem); git's update-ref spent 1.4 to 3.4 ms per synced ref: below
// this a push of a few refs keeps git's own syncs.
const BatchSyncRefs = 8

// Syncfs makes everything written to the filesystem holding dir durable
// (syncfs(2)): the ref files a transaction run with unsyncedRefs wrote,
// and the directory entries naming them.
func Syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync the copy's filesystem: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync the copy's filesystem: %w", err)
	}
	return nil
}

// RefSet maps a ref name to its object id.
type RefSet map[string]string

// Lines renders the set as Refs does: "<object> <refname>" lines.
func (r RefSet) Lines() string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", r[n], n)
	}
	return b.String()
}

// Digest is the refs_digest of a copy showing these refs with HEAD at head:
// Digest(r.Lines(), head), with one sort instead of three passes (it
// runs twice per push over every ref).
func (r RefSet) Digest(head string) string {
	lines := make([]string, 0, len(r))
	for n, obj := range r {
		lines = append(lines, obj+" "+n)
	}
	return digestSorted(lines, head)
}

// Clone returns a copy of r.
func (r RefSet) Clone() RefSet {
	out := make(RefSet, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}

// ReadRefs returns dir's visible refs and its staged refs (named as they
// will be shown), from one for-each-ref.
func (g Git) ReadRefs(ctx context.Context, dir string) (visible, staged RefSet, err error) {
	out, err := g.Refs(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	visible, staged = splitRefs(out)
	return visible, staged, nil
}

// CopyRefSets reads the copy at dir as RemoteRefSets reads a peer's: its
// visible and staged refs and HEAD's target, from one for-each-ref and
// the HEAD file (verify's read of a local copy: no upload-pack). dir must
// be a git directory itself; git does not look for one above it.
func (g Git) CopyRefSets(ctx context.Context, dir string) (visible, staged RefSet, head string, err error) {
	out, err := g.run(ctx, "", "--git-dir="+dir, "for-each-ref", "--format=%(objectname) %(refname)")
	if err != nil {
		return nil, nil, "", err
	}
	if head, err = Head(dir); err != nil {
		return nil, nil, "", fmt.Errorf("read HEAD: %w", err)
	}
	visible, staged = splitRefs(string(out))
	return visible, staged, head, nil
}

// splitRefs sorts Refs' lines into visible and staged refs (named as they
// will be shown); other hidden refs are neither.
func splitRefs(out string) (visible, staged RefSet) {
	visible, staged = RefSet{}, RefSet{}
	for _, line := range strings.Split(out, "\n") {
		obj, name, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, Stage):
			staged["refs/"+strings.TrimPrefix(name, Stage)] = obj
		case strings.HasPrefix(name, Hidden):
		default:
			visible[name] = obj
		}
	}
	return visible, staged
}

// StageCommands are the update-ref --stdin lines that make dir's staged
// refs equal want, given they are now have.
func StageCommands(have, want RefSet) []string {
	var cmds []string
	for _, name := range sortedNames(want) {
		if have[name] != want[name] {
			cmds = append(cmds, fmt.Sprintf("update %s%s %s", Stage, strings.TrimPrefix(name, "refs/"), want[name]))
		}
	}
	for _, name := range sortedNames(have) {
		if _, ok := want[name]; !ok {
			cmds = append(cmds, fmt.Sprintf("delete %s%s", Stage, strings.TrimPrefix(name, "refs/")))
		}
	}
	return cmds
}

// ShowCommands are the update-ref --stdin lines that make the visible
// refs equal the staged ones, each checked against its current value so
// a concurrent change fails the transaction instead of being lost.
func ShowCommands(visible, staged RefSet) []string {
	var cmds []string
	for _, name := range sortedNames(staged) {
		if old, ok := visible[name]; !ok {
			cmds = append(cmds, fmt.Sprintf("create %s %s", name, staged[name]))
		} else if old != staged[name] {
			cmds = append(cmds, fmt.Sprintf("update %s %s %s", name, staged[name], old))
		}
	}
	for _, name := range sortedNames(visible) {
		if _, ok := staged[name]; !ok {
			cmds = append(cmds, fmt.Sprintf("delete %s %s", name, visible[name]))
		}
	}
	return cmds
}

func sortedNames(r RefSet) []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UpdateRefs applies cmds to dir in one transaction (all or nothing),
// synced to disk before it returns: each ref file as git writes it, or,
// from BatchSyncRefs commands on, the whole filesystem once after the
// transaction. With hooks false the repository's own hooks do not run
// (gitmesh's bookkeeping on a replica is not a push there).
func (g Git) UpdateRefs(ctx context.Context, dir string, cmds []string, hooks bool) error {
	sync, err := g.UpdateRefsSyncLater(ctx, dir, cmds, hooks)
	if err != nil {
		return err
	}
	return sync()
}

// UpdateRefsSyncLater is UpdateRefs whose caller makes the transaction
// durable itself, by calling sync (which syncs the filesystem for many
// refs and does nothing for a few, which git synced), before anything
// depends on it: the writer's stage syncs while the peers store it.
func (g Git) UpdateRefsSyncLater(ctx context.Context, dir string, cmds []string, hooks bool) (sync func() error, err error) {
	synced := func() error { return nil }
	if len(cmds) == 0 {
		return synced, nil
	}
	args := []string{}
	if !hooks {
		args = append(args, "-c", "core.hooksPath=/dev/null")
	}
	batch := len(cmds) >= BatchSyncRefs
	if batch {
		args = append(args, "-c", unsyncedRefs) // after fsyncConfig: the last one wins
	}
	args = append(args, "update-ref", "--stdin")
	if _, err := g.runInput(ctx, dir, strings.Join(cmds, "\n")+"\n", args...); err != nil {
		return nil, err
	}
	if !batch {
		return synced, nil
	}
	return func() error { return Syncfs(dir) }, nil
}

// ObjectTypes returns the type of each object id ("missing" when absent).
func (g Git) ObjectTypes(ctx context.Context, dir string, ids []string) (map[string]string, error) {
	out, err := g.runInput(ctx, dir, strings.Join(ids, "\n")+"\n", "cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return nil, err
	}
	types := map[string]string{}
	for _, id := range ids {
		types[id] = "missing"
	}
	for _, line := range strings.Split(string(out), "\n") {
		if id, typ, ok := strings.Cut(line, " "); ok && typ != "missing" {
			types[id] = typ
		}
	}
	return types, nil
}

// IsAncestor reports whether old is an ancestor of new in dir.
func (g Git) IsAncestor(ctx context.Context, dir, old, new string) bool {
	_, err := g.run(ctx, dir, "merge-base", "--is-ancestor", old, new)
	return err == nil
}

// Configs returns dir's settings whose names match the regular
// expression, keyed by their lower-case names, in one git run. A setting
// given without a value (a bare `denyDeletes` line, which git reads as
// true) has the value "true". An error means the settings could not be
// read, which the caller must never take for "not set".
func (g Git) Configs(ctx context.Context, dir, pattern string) (map[string]string, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	// --list, not --get-regexp: that exits 1 both when nothing matches
	// and for some failures; --list exits 0 whatever is set.
	out, err := g.run(ctx, dir, "config", "--list", "-z")
	if err != nil {
		return nil, fmt.Errorf("read the copy's git settings: %w", err)
	}
	m := map[string]string{}
	for _, entry := range strings.Split(string(out), "\x00") {
		k, v, hasValue := strings.Cut(entry, "\n")
		if k == "" || !re.MatchString(k) {
			continue
		}
		if !hasValue {
			v = "true"
		}
		m[k] = v // the last one wins, as in git
	}
	return m, nil
}

// ConfigBool reads a boolean setting's value as git does: true, yes, on
// or a non-zero integer; false, no, off, 0 or empty; any case. Anything
// else is an error (git itself refuses it).
func ConfigBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on":
		return true, nil
	case "false", "no", "off", "":
		return false, nil
	}
	if n, err := strconv.ParseInt(v, 0, 64); err == nil {
		return n != 0, nil
	}
	return false, fmt.Errorf("bad boolean value %q", v)
}

// ReplicaReceivePack is the receive-pack a peer runs for a staging push:
// only the staged namespace is shown and writable, none of the
// repository's hooks run (a replica is not a push to that device), and
// everything is synced before it reports. With syncHooks "" git syncs
// each ref file; otherwise syncHooks is the directory of gitmesh's
// syncing reference-transaction hook (hook.StageDir), and the refs are
// written unsynced and made durable by that hook's one syncfs, which
// receive-pack waits for before it reports (a push of many refs).
func ReplicaReceivePack(syncHooks string) []string {
	var args []string
	for _, c := range replicaConfig(syncHooks) {
		args = append(args, "-c", c)
	}
	return append(args, "receive-pack")
}

func replicaConfig(syncHooks string) []string {
	cfg := FsyncConfig()
	hooks := "/dev/null"
	if syncHooks != "" {
		cfg, hooks = append(cfg, unsyncedRefs), syncHooks
	}
	return append(cfg, "receive.hideRefs=refs/", "receive.hideRefs=!"+Stage,
		"core.hooksPath="+hooks, "receive.autogc=false", ReceiveFsck)
}

// ReceiveFsck makes receive-pack check every object it receives (git's
// --strict: warnings refuse too). The copy's own receive.fsck.<msg-id>
// and receive.fsck.skipList settings stay in force: nothing here
// overrides them.
const ReceiveFsck = "receive.fsckObjects=true"

// fetchFsck checks every object a bookkeeping fetch brings in, under the
// copy's own skips: its fetch.fsck.* settings, and its receive.fsck.* ones
// as fetch.fsck.* where it has no fetch setting of that name, so that one
// receive.fsck.<msg-id> per copy governs pushes, staging pushes and
// catch-up fetches alike.
func (g Git) fetchFsck(ctx context.Context, dir string) []string {
	// A copy whose settings cannot be read fetches without its skips:
	// stricter, so this error fails closed by itself.
	cfg, _ := g.Configs(ctx, dir, `^(receive|fetch)\.fsck\.`)
	args := []string{"-c", "fetch.fsckObjects=true"}
	for _, k := range sortedKeys(cfg) {
		name, ok := strings.CutPrefix(k, "receive.fsck.")
		if _, own := cfg["fetch.fsck."+name]; ok && !own {
			args = append(args, "-c", "fetch.fsck."+name+"="+cfg[k])
		}
	}
	return args
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PushStage mirrors dir's staged refs into url's staged refs, atomically:
// objects first, then every staged ref, pruning the ones dir lacks.
// local says url is a path (its receive-pack runs here). batch asks the
// peer for one sync of its filesystem instead of one per ref (a push of
// BatchSyncRefs refs or more): a local peer's receive-pack runs with
// g.StageHooks (per ref without it), an ssh:// peer is sent StageVerb,
// for which its cluster entry point runs its own. Either way the peer's
// receive-pack has synced before it reports: a push that returns nil
// left the peer's stage on its disk.
func (g Git) PushStage(ctx context.Context, dir, url string, local, batch bool) error {
	args := []string{"push", "--quiet", "--atomic", "--prune", "--force", "--no-verify"}
	switch {
	case local && batch && g.StageHooks != "":
		args = append(args, "--receive-pack=git "+strings.Join(ReplicaReceivePack(g.StageHooks), " "))
	case local:
		// Not through the environment: git clears GIT_CONFIG_* for a
		// local transport's receive-pack.
		args = append(args, "--receive-pack=git "+strings.Join(ReplicaReceivePack(""), " "))
	case batch:
		// ssh runs "gitmesh-stage '<path>'" there.
		args = append(args, "--receive-pack="+string(StageVerb))
	}
	args = append(args, url, "+"+Stage+"*:"+Stage+"*")
	_, err := g.run(ctx, dir, args...)
	return err
}

// FetchToStage makes dir's staged refs equal url's refs: its staged ones
// when fromStage (a peer whose visible refs still lag its version),
// otherwise its visible ones. Atomic: a failed fetch changes nothing.
func (g Git) FetchToStage(ctx context.Context, dir, url string, fromStage bool) error {
	// The refs are written unsynced and the filesystem synced once after
	// the fetch: a catch-up may bring any number of refs (a new copy all
	// of them).
	args := append(g.fetchFsck(ctx, dir), "-c", unsyncedRefs, "fetch", "--atomic", "--prune", "--force", "--no-tags",
		"--no-write-fetch-head", "--no-auto-maintenance")
	if g.Progress != nil {
		// Not --quiet, which also silences the receiving side's meter
		// (index-pack's "Receiving objects"); the ref summary it lets
		// through is not a meter line and stays behind.
		args = append(args, "--progress")
	} else {
		args = append(args, "--quiet")
	}
	args = append(args, url)
	if fromStage {
		args = append(args, "+"+Stage+"*:"+Stage+"*")
	} else {
		args = append(args, "+refs/*:"+Stage+"*", "^"+Hidden+"*")
	}
	if _, err := g.runWith(ctx, dir, "", g.Progress, args...); err != nil {
		return err
	}
	return Syncfs(dir)
}

// ValidRefName applies git's check-ref-format rules to a pushed ref, and
// refuses names that are not UTF-8 (the database stores text) and
// gitmesh's own namespace. It returns why, or "".
func ValidRefName(name string) string {
	switch {
	case !utf8.ValidString(name):
		return "ref name is not valid UTF-8"
	case !strings.HasPrefix(name, "refs/") || name == "refs/":
		return "ref name must start with refs/"
	case strings.HasPrefix(name, Hidden) || name+"/" == Hidden:
		return "refs/gitmesh/ is reserved"
	case len(name) > 1024:
		return "ref name is too long"
	case !strings.Contains(strings.TrimPrefix(name, "refs/"), "/"):
		// git's check_refname_format of the name after refs/, one level
		// not allowed: receive-pack refuses "refs/foo" the same way.
		return "funny refname"
	case strings.Contains(name, "..") || strings.Contains(name, "@{") || strings.Contains(name, "//"),
		strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") || strings.HasSuffix(name, ".lock"),
		strings.ContainsAny(name, " ~^:?*[\\\x7f"):
		return "invalid ref name"
	}
	for _, r := range name {
		if r < 0x20 {
			return "invalid ref name"
		}
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return "invalid ref name"
		}
	}
	return ""
}

// IsZero reports whether id is the null object id (of any hash length).
func IsZero(id string) bool { return id != "" && strings.Trim(id, "0") == "" }

// RunUpdateHook runs dir's own update hook for one ref, as receive-pack
// would for a ref it updates itself; its output goes to out. It returns
// nil when there is no such hook. The hook runs in a process group of its
// own, killed whole when ctx ends (the caller's bound) and when serve
// dies (Pdeathsig), like every git serve runs: a hung hook must not hold
// the write lock. A hook stopped by ctx gives ctx's error.
func RunUpdateHook(ctx context.Context, dir, ref, old, new string, out io.Writer) error {
	path := filepath.Join(dir, "hooks", "update")
	if st, err := os.Stat(path); err != nil || st.Mode()&0o111 == 0 || st.IsDir() {
		return nil
	}
	cmd := exec.CommandContext(ctx, path, ref, old, new)
	cmd.Dir = dir
	cmd.Env = append(Env(os.Environ()), "GIT_DIR=.")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := runTied(cmd)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// RequestSync asks the device behind an ssh:// url (a repository's URL
// there) to catch up on that repository now: one ssh command with the
// cluster key, which runs `gitmesh serve --cluster` there.
func (g Git) RequestSync(ctx context.Context, rawURL string) error {
	if g.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.Timeout)
		defer cancel()
	}
	cmd, err := g.clusterCommand(ctx, rawURL, func(path string) string { return string(SyncRequest) + " '" + path + "'" })
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("sync request timed out after %s", g.Timeout)
		}
		return fmt.Errorf("sync request: %v: %s", err, strings.Join(strings.Fields(stderr.String()), " "))
	}
	return nil
}

// clusterCommand is the ssh command, with the cluster key, that sends
// request (given the url's path) to the device behind an ssh:// url,
// where `gitmesh serve --cluster` answers it. ctx kills it whole.
func (g Git) clusterCommand(ctx context.Context, rawURL string, request func(path string) string) (*exec.Cmd, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "ssh" || u.Host == "" {
		return nil, fmt.Errorf("not an ssh:// URL")
	}
	dest := u.Hostname()
	if u.User != nil {
		dest = u.User.Username() + "@" + dest
	}
	sshArgs := []string{}
	if p := u.Port(); p != "" {
		sshArgs = append(sshArgs, "-p", p)
	}
	sshArgs = append(sshArgs, "--", dest, request(u.Path))
	ssh := g.SSHCommand()
	if ssh == "" {
		ssh = "ssh"
	}
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", ssh + ` "$@"`, "ssh"}, sshArgs...)...)
	cmd.Env = Env(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd, nil
}

// LooseRefs counts dir's loose refs (files under refs/), stopping at
// limit: a copy whose refs are packed answers at once.
func LooseRefs(dir string, limit int) int {
	n := 0
	stop := errors.New("enough")
	filepath.WalkDir(filepath.Join(dir, "refs"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if n++; n >= limit {
				return stop
			}
		}
		return nil
	})
	return n
}

// PackRefs moves dir's loose refs into its packed-refs file (git
// pack-refs --all), synced to disk, no hooks run. Ref values do not
// change; the caller keeps every other writer of the copy's refs out.
func (g Git) PackRefs(ctx context.Context, dir string) error {
	_, err := g.run(ctx, dir, "-c", "core.hooksPath=/dev/null", "pack-refs", "--all")
	return err
}
