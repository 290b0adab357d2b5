// Package hook is how a push's ref updates reach gitmesh. git-receive-pack
// runs with every ref routed to its proc-receive hook
// (receive.procReceiveRefs=refs); that hook is a relay to the waiting
// `gitmesh serve` over a private unix socket, so serve itself decides each
// ref and writes git's report. If the relay cannot run or serve is gone,
// receive-pack reports every ref as rejected: the write path fails closed.
// It knows git's hook protocols and the socket, not the database.
package hook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gitmesh/proc"
)

// SocketEnv names the socket of the waiting serve process.
const SocketEnv = "GITMESH_HOOK_SOCKET"

// chained are the hooks receive-pack still runs itself; each passes on to
// the repository's own hook of the same name, so an administrator's hooks
// keep working under core.hooksPath. (The update hook is run by serve,
// per ref, since receive-pack skips it for proc-receive refs.)
var chained = []string{"pre-receive", "post-receive", "post-update"}

// Dir writes (or refreshes) the hook directory under root and returns
// it. It lives beside the copies, not in TMPDIR: a noexec TMPDIR must not
// leave the push without its hook.
func Dir(root, bin string) (string, error) {
	scripts := map[string]string{"proc-receive": procReceiveScript(bin)}
	for _, name := range chained {
		// The repository's own hook never learns where serve listens.
		scripts[name] = fmt.Sprintf("#!/bin/sh\nunset %s\nh=\"${GIT_DIR:-.}/hooks/%s\"\n[ -x \"$h\" ] || { cat >/dev/null; exit 0; }\nexec \"$h\" \"$@\"\n", SocketEnv, name)
	}
	return writeDir(root, "hooks", scripts)
}

// DirFor is the hook directory for a push into the copy at copyDir: Dir's
// when the copy has a pre-receive, post-receive or post-update hook of its
// own (any file of that name in its hooks directory, whatever its mode),
// otherwise one holding proc-receive alone, so that receive-pack starts
// no shell for a hook that would only drain its input: one before the
// ref commands reach serve and two after the report, while the client
// still waits for the connection to end. A hook the copy gains during a
// push runs from the next push on.
func DirFor(root, bin, copyDir string) (string, error) {
	for _, name := range chained {
		if _, err := os.Lstat(filepath.Join(copyDir, "hooks", name)); !errors.Is(err, os.ErrNotExist) {
			return Dir(root, bin)
		}
	}
	dir, err := writeDir(root, "hooks-bare", map[string]string{"proc-receive": procReceiveScript(bin)})
	if err != nil {
		return "", err
	}
	for _, name := range chained {
		// Nothing else runs from it, whatever was put there.
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("hook dir: %v", err)
		}
	}
	return dir, nil
}

func procReceiveScript(bin string) string {
	return fmt.Sprintf("#!/bin/sh\nexec %s hook proc-receive\n", shQuote(bin))
}

// writeDir makes root/.gitmesh/name hold scripts, rewriting only those
// that differ or lost their executable bits, and returns it.
func writeDir(root, name string, scripts map[string]string) (string, error) {
	dir := filepath.Join(root, ".gitmesh", name)
	// Never MkdirAll: a missing repo root (an unmounted disk) stays missing.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("hook dir: %v", err)
		}
	}
	for name, body := range scripts {
		if err := writeHook(filepath.Join(dir, name), body); err != nil {
			return "", fmt.Errorf("hook dir: %v", err)
		}
	}
	return dir, nil
}

// StageScript is the reference-transaction hook of a staging push of
// many refs (gitexec.PushStage): receive-pack wrote the refs without a
// sync each, and runs this hook once the transaction is committed and
// before it reports to the writer, which counts the copy as stored only
// on that report. The hook syncs the copy's filesystem once (coreutils'
// `sync -f`, syncfs(2)); if that fails it kills receive-pack, so nothing
// is reported and the writer does not count this copy (git ignores the
// exit status of a hook run for "committed").
const StageScript = `#!/bin/sh
cat >/dev/null
[ "$1" = committed ] || exit 0
sync -f "${GIT_DIR:-.}" && exit 0
kill -9 "$PPID"
exit 1
`

// StageDir writes (or refreshes) the hook directory of staging pushes
// of many refs under root, holding only the reference-transaction hook
// StageScript, and returns it.
func StageDir(root string) (string, error) {
	dir := filepath.Join(root, ".gitmesh", "stage-hooks")
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("stage hook dir: %v", err)
		}
	}
	if err := writeHook(filepath.Join(dir, "reference-transaction"), StageScript); err != nil {
		return "", fmt.Errorf("stage hook dir: %v", err)
	}
	return dir, nil
}

// writeHook puts body at path unless it is there already, written aside
// and renamed: a concurrent push never runs half a file.
func writeHook(path, body string) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == body && executable(path) {
		return nil
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, []byte(body), 0o755); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // whatever the umask
		return err
	}
	return os.Rename(tmp, path)
}

// executable reports whether git would run path as a hook.
func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 == 0o111
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Server listens for the proc-receive relay of one push.
type Server struct {
	dir    string
	ln     *net.UnixListener
	parent atomic.Int64 // Expect may be called while Serve runs
	// ReadLimit bounds the wait for the relay's request (Serve sets it as
	// the connection's read deadline); 0 is no bound.
	ReadLimit time.Duration
	// Refused, when set, hears of each connection Serve turned away.
	Refused func(pid int, why string)
}

// privateDir is this account's own directory in TMPDIR (in /tmp when
// TMPDIR's path is too long for the sockets in it), made 0700 and
// checked to be a directory it owns that no one else may enter: the push
// sockets live in it, and the search for orphans looks nowhere else.
func privateDir() (string, error) {
	dir := socketBase(os.TempDir())
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != os.Getuid() || st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is not a private directory of this account", dir)
	}
	return dir, nil
}

// socketBase is this account's directory of push sockets under tmp, or
// under /tmp when a socket's path there could pass the 107 bytes that
// sun_path holds: a long TMPDIR must not fail every push.
func socketBase(tmp string) string {
	name := fmt.Sprintf("gitmesh-%d", os.Getuid())
	if dir := filepath.Join(tmp, name); len(dir) <= maxSocketBase {
		return dir
	}
	return filepath.Join("/tmp", name)
}

// maxSocketBase is the longest base whose sockets fit in sun_path (107
// bytes and a NUL) with the longest directory MkdirTemp makes for a pid
// (pid_max is at most 4194304) and the socket's name.
const maxSocketBase = 107 - len("/4194304-4294967295/"+sockName)

// Listen creates a private directory holding the socket.
func Listen() (*Server, error) {
	base, err := privateDir()
	if err != nil {
		return nil, fmt.Errorf("hook socket dir: %v", err)
	}
	removeOrphans(base)
	// Short names: a socket's path must fit in 108 bytes, and TMPDIR
	// may already be long.
	dir, err := os.MkdirTemp(base, fmt.Sprintf("%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("hook socket dir: %v", err)
	}
	s := &Server{dir: dir}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, sockName), Net: "unix"})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("hook socket: %v", err) // %v: not a database error
	}
	s.ln = ln
	return s, nil
}

// removeOrphans deletes the directories of pushes whose serve was killed
// before it could remove its own; base is this account's private
// directory, so another account's directories cost nothing.
func removeOrphans(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "*-*"))
	for _, d := range dirs {
		pidText, _, _ := strings.Cut(filepath.Base(d), "-")
		pid, err := strconv.Atoi(pidText)
		if err == nil && pid > 0 && !proc.Alive(pid) {
			os.RemoveAll(d)
		}
	}
}

// GitConfig is the `git -c` settings that route every ref of the push
// to the relay in hooks.
func GitConfig(hooks string) []string {
	return []string{"core.hooksPath=" + hooks, "receive.procReceiveRefs=refs"}
}

// Env is what receive-pack's environment needs so the relay finds serve.
func (s *Server) Env() string { return SocketEnv + "=" + filepath.Join(s.dir, sockName) }

// sockName is the socket's name in its directory <pid>-<random>.
const sockName = "s"

// Expect makes Serve accept only a relay run by receive-pack, the
// process pid: the connecting process (SO_PEERCRED) must be its child.
// The repository's hooks are children of receive-pack too, but they run
// before proc-receive with the quarantine in their environment, and the
// socket's address is not in it: a process they leave behind is no
// longer receive-pack's child.
func (s *Server) Expect(pid int) { s.parent.Store(int64(pid)) }

// Serve hands the first relay connection to h, then stops listening: a
// push runs proc-receive once. A connection from anything else (see
// Expect) is closed and Serve waits on. It returns when h is done or on
// Close.
func (s *Server) Serve(h func(*Conn)) {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		if pid, why := s.check(c); why != "" {
			c.Close()
			if s.Refused != nil {
				s.Refused(pid, why)
			}
			continue
		}
		defer c.Close()
		s.ln.Close()
		if s.ReadLimit > 0 {
			c.SetReadDeadline(time.Now().Add(s.ReadLimit))
		}
		h(&Conn{c: c})
		return
	}
}

// check returns the peer's pid and why it is not the relay ("" if it is).
func (s *Server) check(c *net.UnixConn) (int, string) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err.Error()
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return 0, fmt.Sprintf("no peer credentials: %v %v", err, cerr)
	}
	pid := int(cred.Pid)
	if int(cred.Uid) != os.Getuid() {
		return pid, "another account"
	}
	if want := int(s.parent.Load()); want != 0 && parentOf(pid) != want {
		return pid, "not a child of this push's receive-pack"
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if bytes.Contains(append([]byte{0}, env...), []byte("\x00GIT_QUARANTINE_PATH=")) {
		return pid, "runs with the push's quarantine (a pre-receive hook)"
	}
	return pid, ""
}

// parentOf is pid's parent pid, or 0 when it cannot be read.
func parentOf(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// Close stops listening and removes the socket.
func (s *Server) Close() {
	if s.ln != nil {
		s.ln.Close()
	}
	os.RemoveAll(s.dir)
}

// What serve sends the relay travels in bands, as git's sideband does:
// the proc-receive answer for receive-pack (the relay's stdout), and
// notes for the pushing client (the relay's stderr, which receive-pack
// sends the client as `remote:` progress when it asked for a sideband,
// and passes to ssh's stderr otherwise). Each frame is a 4-digit hex
// length (of the whole frame), the band byte and the data.
const (
	bandAnswer = 1
	bandNote   = 2
	maxFrame   = 0xffff
)

// Conn is serve's end of one relay: reads are what receive-pack wrote
// to the hook, writes are the answer. Safe for one reader and several
// writers.
type Conn struct {
	c  *net.UnixConn
	mu sync.Mutex
}

func (c *Conn) Read(p []byte) (int, error) { return c.c.Read(p) }

// Write sends the proc-receive answer to receive-pack.
func (c *Conn) Write(p []byte) (int, error) { return c.send(bandAnswer, p) }

// Close ends the relay's connection: once the relay is gone,
// receive-pack reports what it was answered. (Serve closes it when its
// handler returns; only a deliberately broken build closes it earlier.)
func (c *Conn) Close() error { return c.c.Close() }

// Notes is where text for the pushing client goes: every client sees it
// as `remote:` lines, whether or not it shows ssh's stderr.
func (c *Conn) Notes() io.Writer { return noteWriter{c} }

type noteWriter struct{ c *Conn }

func (w noteWriter) Write(p []byte) (int, error) { return w.c.send(bandNote, p) }

func (c *Conn) send(band byte, p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sent := 0
	for len(p) > 0 {
		n := min(len(p), maxFrame-5)
		frame := append([]byte(fmt.Sprintf("%04x", n+5)), band)
		if _, err := c.c.Write(append(frame, p[:n]...)); err != nil {
			return sent, err
		}
		sent += n
		p = p[n:]
	}
	return sent, nil
}

// Relay is the hook side (`gitmesh hook proc-receive`): it joins
// receive-pack's stdin to serve's socket, and serve's answer to its
// stdout and serve's notes to its stderr. Serve speaks the proc-receive
// protocol itself; the relay only reports that it is gone.
func Relay(stdin io.Reader, stdout, stderr io.Writer) error {
	sock := os.Getenv(SocketEnv)
	if sock == "" {
		return fmt.Errorf("not run by gitmesh serve (%s is unset)", SocketEnv)
	}
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		// No path: the user reads this. Nothing was changed.
		return errors.New("gitmesh serve is gone; nothing was changed, push again")
	}
	defer c.Close()
	go func() {
		io.Copy(c, stdin)
		c.(*net.UnixConn).CloseWrite()
	}()
	answered, err := demux(bufio.NewReader(c), stdout, stderr)
	if err != nil || !answered {
		return errors.New("gitmesh serve is gone before answering; push again")
	}
	return nil
}

// demux copies serve's frames to stdout and stderr until serve closes;
// answered: some of the answer reached stdout.
func demux(r *bufio.Reader, stdout, stderr io.Writer) (answered bool, err error) {
	var head [4]byte
	buf := make([]byte, maxFrame)
	for {
		if _, err := io.ReadFull(r, head[:]); err == io.EOF {
			return answered, nil
		} else if err != nil {
			return answered, err
		}
		n, err := strconv.ParseUint(string(head[:]), 16, 16)
		if err != nil || n < 5 {
			return answered, fmt.Errorf("bad frame length %q", head)
		}
		frame := buf[:n-4]
		if _, err := io.ReadFull(r, frame); err != nil {
			return answered, err
		}
		switch frame[0] {
		case bandAnswer:
			if _, err := stdout.Write(frame[1:]); err != nil {
				return answered, err
			}
			answered = true
		case bandNote:
			stderr.Write(frame[1:]) // a note lost is no reason to fail the push
		default:
			return answered, fmt.Errorf("bad band %d", frame[0])
		}
	}
}
