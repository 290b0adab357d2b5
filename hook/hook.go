// Package hook is how a push's ref updates reach gitmesh. git-receive-pack
// runs with every ref routed to its proc-receive hook
// (receive.procReceiveRefs=refs); that hook is a relay to the waiting
// `gitmesh serve` over a private unix socket, so serve itself decides each
// ref and writes git's report. If the relay cannot run or serve is gone,
// receive-pack reports every ref as rejected: the write path fails closed.
// It knows git's hook protocols and the socket, not the database.
package hook

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	dir := filepath.Join(root, ".gitmesh", "hooks")
	// Never MkdirAll: a missing repo root (an unmounted disk) stays missing.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("hook dir: %v", err)
		}
	}
	scripts := map[string]string{
		"proc-receive": fmt.Sprintf("#!/bin/sh\nexec %s hook proc-receive\n", shQuote(bin)),
	}
	for _, name := range chained {
		scripts[name] = fmt.Sprintf("#!/bin/sh\nh=\"${GIT_DIR:-.}/hooks/%s\"\n[ -x \"$h\" ] || { cat >/dev/null; exit 0; }\nexec \"$h\" \"$@\"\n", name)
	}
	for name, body := range scripts {
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && string(old) == body && executable(path) {
			continue
		}
		// Written aside and renamed: a concurrent push never runs half a file.
		tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
		if err := os.WriteFile(tmp, []byte(body), 0o755); err != nil {
			return "", fmt.Errorf("hook dir: %v", err)
		}
		if err := os.Chmod(tmp, 0o755); err != nil { // whatever the umask
			return "", fmt.Errorf("hook dir: %v", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", fmt.Errorf("hook dir: %v", err)
		}
	}
	return dir, nil
}

// executable reports whether git would run path as a hook.
func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 == 0o111
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Server listens for the proc-receive relay of one push.
type Server struct {
	dir string
	ln  *net.UnixListener
}

// Listen creates a private directory holding the socket.
func Listen() (*Server, error) {
	removeOrphans()
	dir, err := os.MkdirTemp("", fmt.Sprintf("gitmesh-push-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("hook socket dir: %v", err)
	}
	s := &Server{dir: dir}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "hook.sock"), Net: "unix"})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("hook socket: %v", err) // %v: not a database error
	}
	s.ln = ln
	return s, nil
}

// removeOrphans deletes the directories of pushes whose serve was killed
// before it could remove its own.
func removeOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "gitmesh-push-*-*"))
	for _, d := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), "gitmesh-push-"), "-")
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
func (s *Server) Env() string { return SocketEnv + "=" + filepath.Join(s.dir, "hook.sock") }

// Serve hands the first relay connection to h, then stops listening: a
// push runs proc-receive once. It returns when h is done or on Close.
func (s *Server) Serve(h func(io.ReadWriter)) {
	c, err := s.ln.AcceptUnix()
	if err != nil {
		return
	}
	defer c.Close()
	s.ln.Close()
	h(c)
}

// Close stops listening and removes the socket.
func (s *Server) Close() {
	if s.ln != nil {
		s.ln.Close()
	}
	os.RemoveAll(s.dir)
}

// Relay is the hook side (`gitmesh hook proc-receive`): it joins
// receive-pack's stdin and stdout to serve's socket. Serve speaks the
// proc-receive protocol itself; the relay only reports that it is gone.
func Relay(stdin io.Reader, stdout io.Writer) error {
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
	n, err := io.Copy(stdout, c)
	if err != nil || n == 0 {
		return errors.New("gitmesh serve is gone before answering; push again")
	}
	return nil
}
