// Package hook holds a push's acknowledgement back until gitmesh has
// recorded it. git-receive-pack runs the reference-transaction hook at
// "prepared" (before refs move) and "committed" (before it reports to the
// client); gitmesh's hook hands each state to the waiting `gitmesh serve`
// over a private unix socket and answers git with what serve decides.
package hook

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SocketEnv names the socket of the waiting serve process.
const SocketEnv = "GITMESH_HOOK_SOCKET"

// chained are the hooks receive-pack may run; each is passed on to the
// repository's own hook of the same name, so an administrator's hooks keep
// working under core.hooksPath.
var chained = []string{"pre-receive", "update", "post-receive", "post-update", "push-to-checkout", "proc-receive"}

// Update is one line of the hook's input: "<old> <new> <ref>".
type Update struct{ Old, New, Ref string }

// Request is one hook run as serve sees it.
type Request struct {
	State   string // prepared, committed or aborted
	Updates []Update
}

// Handler answers a Request; a non-nil error aborts a prepared transaction.
type Handler func(Request) error

// Server listens for the hook of one push.
type Server struct {
	dir string
	ln  *net.UnixListener
}

// Listen creates a private directory holding the hook scripts and the
// socket. bin is the absolute path of the gitmesh binary.
func Listen(bin string) (*Server, error) {
	removeOrphans()
	dir, err := os.MkdirTemp("", fmt.Sprintf("gitmesh-push-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("hook dir: %v", err)
	}
	s := &Server{dir: dir}
	if err := writeScripts(filepath.Join(dir, "hooks"), bin); err != nil {
		s.Close()
		return nil, err
	}
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
		if err == nil && pid > 0 && !alive(pid) {
			os.RemoveAll(d)
		}
	}
}

// alive reports whether pid runs; a zombie (killed, not yet reaped) does not.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: trust kill
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func writeScripts(hooks, bin string) error {
	if err := os.Mkdir(hooks, 0o700); err != nil {
		return err
	}
	own := fmt.Sprintf("#!/bin/sh\nexec %s hook reference-transaction \"$@\"\n", shQuote(bin))
	if err := os.WriteFile(filepath.Join(hooks, "reference-transaction"), []byte(own), 0o700); err != nil {
		return err
	}
	for _, name := range chained {
		script := fmt.Sprintf("#!/bin/sh\nh=\"${GIT_DIR:-.}/hooks/%s\"\n[ -x \"$h\" ] || exit 0\nexec \"$h\" \"$@\"\n", name)
		if err := os.WriteFile(filepath.Join(hooks, name), []byte(script), 0o700); err != nil {
			return err
		}
	}
	return nil
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// GitConfig is the git -c option that makes receive-pack use these hooks.
func (s *Server) GitConfig() string { return "core.hooksPath=" + filepath.Join(s.dir, "hooks") }

// Env is what receive-pack's environment needs so the hook finds serve.
func (s *Server) Env() string { return SocketEnv + "=" + filepath.Join(s.dir, "hook.sock") }

// Serve answers hook runs one at a time until Close.
func (s *Server) Serve(h Handler) {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		s.answer(c, h)
	}
}

func (s *Server) answer(c *net.UnixConn, h Handler) {
	defer c.Close()
	req, err := readRequest(c)
	if err == nil {
		err = h(req)
	}
	reply := "ok\n"
	if err != nil {
		reply = "error " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
	}
	c.Write([]byte(reply))
}

func readRequest(r io.Reader) (Request, error) {
	br := bufio.NewReader(r)
	state, err := br.ReadString('\n')
	if err != nil {
		return Request{}, fmt.Errorf("read hook state: %w", err)
	}
	req := Request{State: strings.TrimSpace(state)}
	for {
		line, err := br.ReadString('\n')
		if f := strings.Fields(line); len(f) == 3 {
			req.Updates = append(req.Updates, Update{Old: f[0], New: f[1], Ref: f[2]})
		}
		if err == io.EOF {
			return req, nil
		}
		if err != nil {
			return Request{}, err
		}
	}
}

// Close stops listening and removes the scripts and socket.
func (s *Server) Close() {
	if s.ln != nil {
		s.ln.Close()
	}
	os.RemoveAll(s.dir)
}

// Run is the hook side (`gitmesh hook reference-transaction STATE`): it
// asks serve, and chains to the repository's own reference-transaction
// hook (before serve at "prepared", so serve has the last word; after it
// otherwise). Its error aborts a prepared transaction.
func Run(state string, stdin io.Reader, stderr io.Writer) error {
	input, err := io.ReadAll(stdin)
	if err != nil {
		return err
	}
	if state == "prepared" {
		if err := runOwn(state, input, stderr); err != nil {
			return err
		}
	}
	if sock := os.Getenv(SocketEnv); sock != "" {
		if err := ask(sock, state, input); err != nil {
			return err
		}
	}
	if state != "prepared" {
		return runOwn(state, input, stderr)
	}
	return nil
}

// ask sends the state and the updates to serve and waits for its answer;
// serve bounds its own work, so there is no deadline here. If serve is gone
// the answer is an error, which aborts a prepared transaction.
func ask(sock, state string, input []byte) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return fmt.Errorf("gitmesh serve is gone: %v", err) // %v: not a database error
	}
	defer c.Close()
	if _, err := c.Write(append([]byte(state+"\n"), input...)); err != nil {
		return fmt.Errorf("gitmesh serve is gone: %v", err) // %v: not a database error
	}
	c.(*net.UnixConn).CloseWrite()
	answer, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("gitmesh serve is gone: %v", err) // %v: not a database error
	}
	a := strings.TrimSpace(string(answer))
	if a == "ok" {
		return nil
	}
	if msg, ok := strings.CutPrefix(a, "error "); ok {
		return fmt.Errorf("%s", msg)
	}
	return fmt.Errorf("gitmesh serve is gone before answering")
}

// runOwn runs the repository's own reference-transaction hook, if any.
func runOwn(state string, input []byte, stderr io.Writer) error {
	gitDir := os.Getenv("GIT_DIR")
	if gitDir == "" {
		gitDir = "."
	}
	path := filepath.Join(gitDir, "hooks", "reference-transaction")
	if st, err := os.Stat(path); err != nil || st.Mode()&0o111 == 0 {
		return nil
	}
	cmd := exec.Command(path, state)
	cmd.Stdin = bytes.NewReader(input)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the repository's reference-transaction hook failed: %w", err)
	}
	return nil
}
