package hook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for gitmesh as the proc-receive
// hook: the script from Dir runs `BIN hook proc-receive`, as cmd_hook.go
// does with the real binary.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "hook" && os.Args[2] == "proc-receive" {
		if err := Relay(os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintf(os.Stderr, "gitmesh: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// cleanEnv is the environment without git's repository variables, so a
// hook sees only what a test gives it.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, SocketEnv+"=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func writeScript(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
}

func makeDir(t *testing.T, root, bin string) string {
	t.Helper()
	dir, err := Dir(root, bin)
	if err != nil {
		t.Fatalf("Dir(%s, %s): %v", root, bin, err)
	}
	return dir
}

var hookNames = []string{"proc-receive", "pre-receive", "post-receive", "post-update"}

func stat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestDir(t *testing.T) {
	root := t.TempDir()
	dir := makeDir(t, root, "/usr/bin/gitmesh")
	if want := filepath.Join(root, ".gitmesh", "hooks"); dir != want {
		t.Errorf("Dir = %s, want %s", dir, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"post-receive", "post-update", "pre-receive", "proc-receive"}; !reflect.DeepEqual(names, want) {
		t.Errorf("hook dir holds %q, want exactly %q (no temporary files)", names, want)
	}
	for _, name := range hookNames {
		st := stat(t, filepath.Join(dir, name))
		if !st.Mode().IsRegular() || st.Mode().Perm()&0o100 == 0 {
			t.Errorf("%s: mode %v, want an executable file", name, st.Mode())
		}
	}
	if got := GitConfig(dir); !reflect.DeepEqual(got, []string{"core.hooksPath=" + dir, "receive.procReceiveRefs=refs"}) {
		t.Errorf("GitConfig(%s) = %q", dir, got)
	}

	t.Run("idempotent", func(t *testing.T) {
		before := map[string]os.FileInfo{}
		for _, name := range hookNames {
			before[name] = stat(t, filepath.Join(dir, name))
		}
		if again := makeDir(t, root, "/usr/bin/gitmesh"); again != dir {
			t.Errorf("second Dir = %s, want %s", again, dir)
		}
		for _, name := range hookNames {
			if !os.SameFile(before[name], stat(t, filepath.Join(dir, name))) {
				t.Errorf("%s was rewritten though nothing changed", name)
			}
		}
	})

	t.Run("a new binary rewrites only proc-receive", func(t *testing.T) {
		before := map[string]os.FileInfo{}
		for _, name := range hookNames {
			before[name] = stat(t, filepath.Join(dir, name))
		}
		makeDir(t, root, "/opt/gitmesh/bin/gitmesh")
		for _, name := range hookNames {
			if same := os.SameFile(before[name], stat(t, filepath.Join(dir, name))); same != (name != "proc-receive") {
				t.Errorf("%s: kept = %v after the binary moved", name, same)
			}
		}
		body, _ := os.ReadFile(filepath.Join(dir, "proc-receive"))
		if !strings.Contains(string(body), "'/opt/gitmesh/bin/gitmesh' hook proc-receive") || strings.Contains(string(body), "/usr/bin") {
			t.Errorf("proc-receive after the move:\n%s", body)
		}
	})

	t.Run("a modified script is restored", func(t *testing.T) {
		path := filepath.Join(dir, "pre-receive")
		writeScript(t, path, "#!/bin/sh\nexit 0\n")
		makeDir(t, root, "/opt/gitmesh/bin/gitmesh")
		if body, _ := os.ReadFile(path); !strings.Contains(string(body), "/hooks/pre-receive") {
			t.Errorf("pre-receive not restored:\n%s", body)
		}
	})

	t.Run("root not writable", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := Dir(file, "/usr/bin/gitmesh"); err == nil || !strings.HasPrefix(err.Error(), "hook dir: ") {
			t.Errorf("Dir under a file = %q, %v; want a 'hook dir' error", got, err)
		}
	})
}

func TestDirProcReceiveRunsBinary(t *testing.T) {
	// A binary path that needs quoting in a shell script.
	bin := filepath.Join(t.TempDir(), "it's a $dir `x`", "gitmesh")
	out := filepath.Join(t.TempDir(), "bin.out")
	writeScript(t, bin, "#!/bin/sh\n{ printf '%s\\n' \"$@\"; cat; } > \"$BIN_OUT\"\nexit 7\n")
	dir := makeDir(t, t.TempDir(), bin)

	cmd := exec.Command(filepath.Join(dir, "proc-receive"))
	cmd.Env = cleanEnv("BIN_OUT=" + out)
	cmd.Stdin = strings.NewReader("0014version=1\x00atomic0000")
	var exitErr *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 {
		t.Errorf("proc-receive: %v; want the binary's exit status 7", err)
	}
	if got, _ := os.ReadFile(out); string(got) != "hook\nproc-receive\n0014version=1\x00atomic0000" {
		t.Errorf("binary got %q", got)
	}
}

func TestDirChained(t *testing.T) {
	dir := makeDir(t, t.TempDir(), "/nonexistent/gitmesh")
	big := strings.Repeat(zero+" "+one+" refs/heads/main\n", 1<<14) // more than a pipe holds

	for _, name := range chained {
		t.Run(name, func(t *testing.T) {
			tests := []struct {
				name   string
				own    string      // the repository's own hook; "" for none
				mode   os.FileMode // of the own hook
				viaEnv bool        // GIT_DIR set, as receive-pack does; else the hook runs in GIT_DIR
				status int
				ran    bool
			}{
				{name: "no own hook", viaEnv: true},
				{name: "no own hook, GIT_DIR unset"},
				{name: "own hook runs", own: "ok", mode: 0o755, viaEnv: true, ran: true},
				{name: "own hook runs, GIT_DIR unset", own: "ok", mode: 0o755, ran: true},
				{name: "own hook's failure is the hook's", own: "fail", mode: 0o755, viaEnv: true, ran: true, status: 3},
				{name: "own hook not executable", own: "fail", mode: 0o644, viaEnv: true},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					gitDir := t.TempDir()
					out := filepath.Join(t.TempDir(), "own.out")
					if tt.own != "" {
						status := 0
						if tt.own == "fail" {
							status = 3
						}
						own := filepath.Join(gitDir, "hooks", name)
						writeScript(t, own, fmt.Sprintf("#!/bin/sh\n{ echo \"$@\"; cat; } > %s\nexit %d\n", shQuote(out), status))
						if err := os.Chmod(own, tt.mode); err != nil {
							t.Fatal(err)
						}
					}
					cmd := exec.Command(filepath.Join(dir, name), "refs/heads/main", "refs/tags/v1")
					if tt.viaEnv {
						cmd.Env = cleanEnv("GIT_DIR=" + gitDir)
					} else {
						cmd.Env = cleanEnv()
						cmd.Dir = gitDir
					}
					// An *os.File, so a hook that leaves its input unread shows
					// as a failed write (EPIPE), as receive-pack would see it.
					pr, pw, err := os.Pipe()
					if err != nil {
						t.Fatal(err)
					}
					cmd.Stdin = pr
					written := make(chan error, 1)
					go func() {
						_, err := io.WriteString(pw, big)
						pw.Close()
						written <- err
					}()
					err = cmd.Run()
					pr.Close()
					status := 0
					var exitErr *exec.ExitError
					if errors.As(err, &exitErr) {
						status = exitErr.ExitCode()
					} else if err != nil {
						t.Fatal(err)
					}
					if status != tt.status {
						t.Errorf("exit status %d, want %d", status, tt.status)
					}
					if err := <-written; err != nil {
						t.Errorf("writing the hook's input: %v; the hook must read all of it", err)
					}
					got, err := os.ReadFile(out)
					if ran := err == nil; ran != tt.ran {
						t.Fatalf("own hook ran = %v, want %v", ran, tt.ran)
					}
					if tt.ran && string(got) != "refs/heads/main refs/tags/v1\n"+big {
						t.Errorf("own hook got %d bytes %.80q, want its arguments and the whole input", len(got), got)
					}
				})
			}
		})
	}
}

func listen(t *testing.T) *Server {
	t.Helper()
	s, err := Listen()
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// sockPath is the socket named by s.Env().
func sockPath(t *testing.T, s *Server) string {
	t.Helper()
	p, ok := strings.CutPrefix(s.Env(), SocketEnv+"=")
	if !ok {
		t.Fatalf("Env() = %q, want %s=PATH", s.Env(), SocketEnv)
	}
	return p
}

// serve runs s.Serve(h) until the test ends.
func serve(t *testing.T, s *Server, h func(*Conn)) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() { s.Serve(h); close(done) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return done
}

// served waits, for at most ten seconds, until Serve started by serve
// has returned (it serves one connection).
func served(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its one connection")
	}
}

func TestListen(t *testing.T) {
	s := listen(t)
	sock := sockPath(t, s)
	dir := filepath.Dir(sock)
	private := filepath.Join(os.TempDir(), fmt.Sprintf("gitmesh-%d", os.Getuid()))
	if filepath.Base(sock) != sockName || filepath.Dir(dir) != private {
		t.Errorf("socket %s, want TMPDIR/gitmesh-UID/DIR/%s", sock, sockName)
	}
	if st := stat(t, private); st.Mode().Perm() != 0o700 {
		t.Errorf("%s mode %v, want 0700: another account must not reach or list it", private, st.Mode().Perm())
	}
	if prefix := fmt.Sprintf("%d-", os.Getpid()); !strings.HasPrefix(filepath.Base(dir), prefix) {
		t.Errorf("socket dir %s does not start with %s (removeOrphans relies on it)", dir, prefix)
	}
	if st := stat(t, dir); st.Mode().Perm() != 0o700 {
		t.Errorf("socket dir mode %v, want 0700: only this user may reach serve", st.Mode().Perm())
	}
	if st := stat(t, sock); st.Mode()&os.ModeSocket == 0 {
		t.Errorf("%s is %v, want a socket", sock, st.Mode())
	}

	// Close stops a waiting Serve, without calling the handler, and
	// removes the directory.
	called := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { s.Serve(func(*Conn) { called <- struct{}{} }); close(done) }()
	s.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if len(called) != 0 {
		t.Error("the handler ran without a connection")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("socket dir after Close: %v; want it gone", err)
	}
	s.Close() // twice is harmless
}

func TestRelay(t *testing.T) {
	t.Run("not run by serve", func(t *testing.T) {
		t.Setenv(SocketEnv, "")
		var out bytes.Buffer
		err := Relay(strings.NewReader("x"), &out, io.Discard)
		if err == nil || !strings.Contains(err.Error(), SocketEnv+" is unset") {
			t.Errorf("Relay = %v, want an error naming %s", err, SocketEnv)
		}
		if out.Len() != 0 {
			t.Errorf("Relay wrote %q", out.String())
		}
	})

	t.Run("serve is gone", func(t *testing.T) {
		s := listen(t)
		sock := sockPath(t, s)
		s.Close()
		t.Setenv(SocketEnv, sock)
		err := Relay(strings.NewReader("x"), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "gitmesh serve is gone") {
			t.Errorf("Relay = %v, want 'gitmesh serve is gone'", err)
		}
	})

	t.Run("serve closes without answering", func(t *testing.T) {
		s := listen(t)
		done := serve(t, s, func(c *Conn) { io.Copy(io.Discard, c) })
		t.Setenv(SocketEnv, sockPath(t, s))
		err := Relay(strings.NewReader("request"), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "gone before answering") {
			t.Errorf("Relay = %v, want 'gone before answering'", err)
		}
		served(t, done)
	})

	t.Run("bytes flow both ways", func(t *testing.T) {
		s := listen(t)
		var got []byte
		done := serve(t, s, func(c *Conn) {
			got, _ = io.ReadAll(c) // ends when the relay's input does
			fmt.Fprintf(c, "read %d bytes", len(got))
		})
		t.Setenv(SocketEnv, sockPath(t, s))
		in := strings.Repeat("0123456789abcdef", 1<<16)
		var out bytes.Buffer
		if err := Relay(strings.NewReader(in), &out, io.Discard); err != nil {
			t.Fatalf("Relay: %v", err)
		}
		served(t, done)
		if string(got) != in {
			t.Errorf("serve got %d bytes, want the %d of the input", len(got), len(in))
		}
		if want := fmt.Sprintf("read %d bytes", len(in)); out.String() != want {
			t.Errorf("Relay wrote %q, want %q", out.String(), want)
		}
	})

	t.Run("streaming echo", func(t *testing.T) {
		s := listen(t)
		serve(t, s, func(c *Conn) { io.Copy(c, c) })
		t.Setenv(SocketEnv, sockPath(t, s))
		in := strings.Repeat("x", 4<<20) // far more than the socket buffers
		var out bytes.Buffer
		if err := Relay(strings.NewReader(in), &out, io.Discard); err != nil {
			t.Fatalf("Relay: %v", err)
		}
		if out.String() != in {
			t.Errorf("echo returned %d bytes, want %d", out.Len(), len(in))
		}
	})

	t.Run("one push, one connection", func(t *testing.T) {
		s := listen(t)
		done := serve(t, s, func(c *Conn) { io.WriteString(c, "first") })
		t.Setenv(SocketEnv, sockPath(t, s))
		var out bytes.Buffer
		if err := Relay(strings.NewReader(""), &out, io.Discard); err != nil || out.String() != "first" {
			t.Fatalf("first Relay = %v, %q", err, out.String())
		}
		served(t, done)
		if err := Relay(strings.NewReader(""), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "gitmesh serve is gone") {
			t.Errorf("second Relay = %v, want 'gitmesh serve is gone'", err)
		}
	})
}

// mkPushDir makes a directory named like a push's socket directory of pid.
func mkPushDir(t *testing.T, pid string) string {
	t.Helper()
	base, err := privateDir()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(base, pid+"-unittest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, sockName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// deadPID is the pid of a process that has run and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// zombie starts a process and kills it without reaping it.
func zombie(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)
	if _, err := os.Stat(stat); err != nil {
		t.Fatal("no /proc: gitmesh needs Linux /proc to tell a zombie from a live process")
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(stat); strings.Contains(string(b), ") Z ") {
			return cmd.Process.Pid
		}
	}
	t.Fatalf("process %d did not become a zombie", cmd.Process.Pid)
	return 0
}

func TestRemoveOrphans(t *testing.T) {
	dead := mkPushDir(t, fmt.Sprint(deadPID(t)))
	zomb := mkPushDir(t, fmt.Sprint(zombie(t)))
	live := mkPushDir(t, fmt.Sprint(os.Getpid()))
	notPID := mkPushDir(t, "x")
	zeroPID := mkPushDir(t, "0")

	base, _ := privateDir()
	removeOrphans(base)

	tests := []struct {
		name, dir string
		kept      bool
	}{
		{"dead pid", dead, false},
		{"zombie pid", zomb, false},
		{"live pid", live, true},
		{"not a pid", notPID, true},
		{"pid 0", zeroPID, true},
	}
	for _, tt := range tests {
		_, err := os.Stat(tt.dir)
		if kept := err == nil; kept != tt.kept {
			t.Errorf("%s: %s kept = %v (%v), want %v", tt.name, tt.dir, kept, err, tt.kept)
		}
	}

	// Listen clears orphans too.
	dead2 := mkPushDir(t, fmt.Sprint(deadPID(t)))
	listen(t)
	if _, err := os.Stat(dead2); !os.IsNotExist(err) {
		t.Errorf("Listen left the orphan %s: %v", dead2, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("Listen removed the live %s: %v", live, err)
	}
}

// A copy without hooks of its own gets a hook directory holding
// proc-receive alone (receive-pack starts no shell per chained hook); a
// copy with any one of them, whatever its mode, gets the full one, which
// passes on to it.
func TestDirFor(t *testing.T) {
	root, copyDir := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(copyDir, "hooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeScript(t, filepath.Join(copyDir, "hooks", "post-receive.sample"), "#!/bin/sh\n")
	bare, err := DirFor(root, "/usr/bin/gitmesh", copyDir)
	if err != nil {
		t.Fatal(err)
	}
	full := makeDir(t, root, "/usr/bin/gitmesh")
	if bare == full {
		t.Fatalf("a copy without hooks of its own got the full hook directory %s", bare)
	}
	// Whatever was left there, nothing but proc-receive stays.
	writeScript(t, filepath.Join(bare, "pre-receive"), "#!/bin/sh\nexit 1\n")
	if again, err := DirFor(root, "/usr/bin/gitmesh", copyDir); err != nil || again != bare {
		t.Fatalf("DirFor again = %s, %v; want %s", again, err, bare)
	}
	entries, _ := os.ReadDir(bare)
	if len(entries) != 1 || entries[0].Name() != "proc-receive" {
		t.Fatalf("the bare hook directory holds %v, want proc-receive alone", entries)
	}
	if body, _ := os.ReadFile(filepath.Join(bare, "proc-receive")); !strings.Contains(string(body), "'/usr/bin/gitmesh' hook proc-receive") {
		t.Errorf("bare proc-receive:\n%s", body)
	}
	for _, name := range []string{"pre-receive", "post-receive", "post-update"} {
		path := filepath.Join(copyDir, "hooks", name)
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o644); err != nil { // not even executable
			t.Fatal(err)
		}
		if got, err := DirFor(root, "/usr/bin/gitmesh", copyDir); err != nil || got != full {
			t.Errorf("with the copy's own %s: DirFor = %s, %v; want the full %s", name, got, err, full)
		}
		os.Remove(path)
	}
}

// A hook script that lost its executable bit would be skipped by git with
// only a hint (the repository's pre-receive bypassed): Dir restores it.
func TestDirRestoresExecutableBit(t *testing.T) {
	root := t.TempDir()
	dir, err := Dir(root, "/usr/local/bin/gitmesh")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pre-receive")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Dir(root, "/usr/local/bin/gitmesh"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode()&0o111 != 0o111 {
		t.Fatalf("pre-receive after Dir: %v, %v", st.Mode(), err)
	}
}

// Serve accepts only the relay receive-pack runs (issue 19): a process
// that is not receive-pack's child, or that runs with the push's
// quarantine (a pre-receive hook), is turned away and Serve waits on.
func TestServeAcceptsOnlyTheRelay(t *testing.T) {
	relay := func(env ...string) (string, error) {
		cmd := exec.Command(os.Args[0], "hook", "proc-receive")
		cmd.Env = cleanEnv(env...)
		cmd.Stdin = strings.NewReader("request")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	s := listen(t)
	var mu sync.Mutex
	var refused []string
	s.Refused = func(pid int, why string) {
		mu.Lock()
		defer mu.Unlock()
		refused = append(refused, why)
	}
	s.Expect(1) // a relay started by this test is not init's child
	done := serve(t, s, func(c *Conn) { io.ReadAll(c); io.WriteString(c, "answered") })
	sock := SocketEnv + "=" + sockPath(t, s)

	if out, err := relay(sock); err == nil || strings.Contains(out, "answered") {
		t.Errorf("a relay that is not receive-pack's child was answered: %v, %q", err, out)
	}
	s.Expect(os.Getpid()) // now this test plays receive-pack
	if out, err := relay(sock, "GIT_QUARANTINE_PATH=/x/objects/tmp_objdir-incoming-1"); err == nil || strings.Contains(out, "answered") {
		t.Errorf("a relay running with the quarantine (a pre-receive hook) was answered: %v, %q", err, out)
	}
	if out, err := relay(sock); err != nil || out != "answered" {
		t.Fatalf("the relay itself: %v, %q; want it answered", err, out)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 2 || !strings.Contains(refused[0], "not a child") || !strings.Contains(refused[1], "quarantine") {
		t.Errorf("refusals %q, want one for the stranger and one for the hook", refused)
	}
}

// A relay that connects and sends nothing does not hold the push: the
// read has a deadline.
func TestServeReadLimit(t *testing.T) {
	s := listen(t)
	s.ReadLimit = 200 * time.Millisecond
	errc := make(chan error, 1)
	serve(t, s, func(c *Conn) {
		_, err := ReadPush(bufio.NewReader(c), c)
		errc <- err
	})
	conn, err := net.Dial("unix", sockPath(t, s))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("ReadPush of a silent relay succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a silent relay held serve past its read limit")
	}
}

// The repository's own hooks never see the socket's address.
func TestChainedHooksHideTheSocket(t *testing.T) {
	root := t.TempDir()
	dir := makeDir(t, root, "/bin/true")
	repo := t.TempDir()
	out := filepath.Join(repo, "env.out")
	writeScript(t, filepath.Join(repo, "hooks", "pre-receive"), "#!/bin/sh\nenv > "+shQuote(out)+"\n")
	cmd := exec.Command(filepath.Join(dir, "pre-receive"))
	cmd.Env = cleanEnv("GIT_DIR="+repo, SocketEnv+"=/tmp/x/hook.sock")
	cmd.Stdin = strings.NewReader("")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pre-receive: %v: %s", err, b)
	}
	env, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(env), SocketEnv) || !strings.Contains(string(env), "GIT_DIR=") {
		t.Errorf("the repository's pre-receive saw:\n%s", env)
	}
}

// Listen refuses a TMPDIR/gitmesh-UID that is not this account's alone.
func TestListenRefusesASharedPrivateDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	private := filepath.Join(tmp, fmt.Sprintf("gitmesh-%d", os.Getuid()))
	if err := os.Mkdir(private, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(private, 0o777)
	if s, err := Listen(); err == nil {
		s.Close()
		t.Fatal("Listen used a directory every account may enter")
	}
	os.Remove(private)
	if err := os.Symlink(t.TempDir(), private); err != nil {
		t.Fatal(err)
	}
	if s, err := Listen(); err == nil {
		s.Close()
		t.Fatal("Listen followed a symlink planted in TMPDIR")
	}
}

// A TMPDIR too long for a socket's path (sun_path holds 107 bytes) puts
// the push sockets under /tmp instead of failing every push.
func TestListenUnderALongTMPDIR(t *testing.T) {
	for _, n := range []int{maxSocketBase - 20, 200} {
		tmp := t.TempDir()
		for len(tmp) < n {
			tmp = filepath.Join(tmp, "a-rather-long-directory-name")
		}
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("TMPDIR", tmp)
		s, err := Listen()
		if err != nil {
			t.Fatalf("TMPDIR of %d bytes: %v", len(tmp), err)
		}
		sock := sockPath(t, s)
		s.Close()
		if len(sock) > 107 {
			t.Errorf("TMPDIR of %d bytes: socket path %s is %d bytes", len(tmp), sock, len(sock))
		}
		want := tmp
		if len(filepath.Join(tmp, fmt.Sprintf("gitmesh-%d", os.Getuid()))) > maxSocketBase {
			want = "/tmp"
		}
		if !strings.HasPrefix(sock, want+"/gitmesh-") {
			t.Errorf("TMPDIR of %d bytes: socket %s, want it under %s", len(tmp), sock, want)
		}
	}
}
