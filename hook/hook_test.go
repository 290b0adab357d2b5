package hook

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	zero = "0000000000000000000000000000000000000000"
	one  = "1111111111111111111111111111111111111111"
	two  = "2222222222222222222222222222222222222222"
)

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Request
	}{
		{"state only", "prepared\n", Request{State: "prepared"}},
		{"one update", "committed\n" + zero + " " + one + " refs/heads/main\n",
			Request{State: "committed", Updates: []Update{{zero, one, "refs/heads/main"}}}},
		{"several updates", "prepared\n" + zero + " " + one + " refs/heads/main\n" + one + " " + zero + " refs/tags/v1\n",
			Request{State: "prepared", Updates: []Update{{zero, one, "refs/heads/main"}, {one, zero, "refs/tags/v1"}}}},
		{"last line without newline", "aborted\n" + one + " " + two + " refs/heads/x",
			Request{State: "aborted", Updates: []Update{{one, two, "refs/heads/x"}}}},
		{"state trimmed", "  prepared \r\n", Request{State: "prepared"}},
		{"extra blanks around fields", "prepared\n\t" + one + "   " + two + "  refs/heads/x \r\n",
			Request{State: "prepared", Updates: []Update{{one, two, "refs/heads/x"}}}},
		{"junk ignored", "prepared\n\njunk\n" + one + " " + two + "\n" +
			one + " " + two + " refs/heads/a extra\n" + zero + " " + one + " refs/heads/b\n#\n",
			Request{State: "prepared", Updates: []Update{{zero, one, "refs/heads/b"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readRequest(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("readRequest(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readRequest(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// errReader yields its text, then fails with err.
type errReader struct {
	text string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.text == "" {
		return 0, r.err
	}
	n := copy(p, r.text)
	r.text = r.text[n:]
	return n, nil
}

func TestReadRequestErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		r    io.Reader
		is   error
	}{
		{"empty", strings.NewReader(""), io.EOF},
		{"state without newline", strings.NewReader("prepared"), io.EOF},
		{"failure before the state", &errReader{"", boom}, boom},
		{"failure among the updates", &errReader{"prepared\n" + zero + " " + one + " refs/heads/main\n" + zero, boom}, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readRequest(tt.r)
			if !errors.Is(err, tt.is) {
				t.Fatalf("readRequest = %+v, %v; want an error wrapping %v", got, err, tt.is)
			}
			if !reflect.DeepEqual(got, Request{}) {
				t.Errorf("readRequest returned %+v with its error, want the zero Request", got)
			}
		})
	}
}

// hookDir is the private directory of s, as its GitConfig names it.
func hookDir(t *testing.T, s *Server) string {
	t.Helper()
	hooks, ok := strings.CutPrefix(s.GitConfig(), "core.hooksPath=")
	if !ok || filepath.Base(hooks) != "hooks" {
		t.Fatalf("GitConfig() = %q, want core.hooksPath=DIR/hooks", s.GitConfig())
	}
	return filepath.Dir(hooks)
}

func listen(t *testing.T, bin string) *Server {
	t.Helper()
	s, err := Listen(bin)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(s.Close)
	return s
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

func TestListenLayoutAndClose(t *testing.T) {
	// A binary path that needs quoting in a shell script.
	bin := filepath.Join(t.TempDir(), "it's a dir", "gitmesh")
	out := filepath.Join(t.TempDir(), "bin.out")
	writeScript(t, bin, "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$BIN_OUT\"\ncat >> \"$BIN_OUT\"\n")

	s, err := Listen(bin)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer s.Close()
	dir := hookDir(t, s)
	if filepath.Dir(dir) != filepath.Clean(os.TempDir()) {
		t.Errorf("hook dir %s is not directly under %s", dir, os.TempDir())
	}
	if prefix := fmt.Sprintf("gitmesh-push-%d-", os.Getpid()); !strings.HasPrefix(filepath.Base(dir), prefix) {
		t.Errorf("hook dir %s does not start with %s (removeOrphans relies on it)", dir, prefix)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("hook dir: %v, mode %v; want a 0700 directory", err, st.Mode().Perm())
	}
	wantEnv := SocketEnv + "=" + filepath.Join(dir, "hook.sock")
	if s.Env() != wantEnv {
		t.Errorf("Env() = %q, want %q", s.Env(), wantEnv)
	}
	if st, err := os.Stat(filepath.Join(dir, "hook.sock")); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Errorf("hook.sock: %v; want a socket", err)
	}
	for _, name := range append([]string{"reference-transaction"}, chained...) {
		st, err := os.Stat(filepath.Join(dir, "hooks", name))
		if err != nil || st.Mode()&0o100 == 0 {
			t.Errorf("hooks/%s: %v; want an executable script", name, err)
		}
	}

	// The reference-transaction script runs `BIN hook reference-transaction STATE`.
	cmd := exec.Command(filepath.Join(dir, "hooks", "reference-transaction"), "prepared")
	cmd.Env = append(os.Environ(), "BIN_OUT="+out)
	cmd.Stdin = strings.NewReader(zero + " " + one + " refs/heads/main\n")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference-transaction script: %v: %s", err, b)
	}
	if got, _ := os.ReadFile(out); string(got) != "hook\nreference-transaction\nprepared\n"+zero+" "+one+" refs/heads/main\n" {
		t.Errorf("gitmesh got %q", got)
	}

	// A chained hook runs the repository's own hook of that name, if any.
	gitDir := t.TempDir()
	ownOut := filepath.Join(t.TempDir(), "own.out")
	writeScript(t, filepath.Join(gitDir, "hooks", "update"), "#!/bin/sh\necho \"$@\" > "+shQuote(ownOut)+"\nexit 3\n")
	cmd = exec.Command(filepath.Join(dir, "hooks", "update"), "refs/heads/main", zero, one)
	cmd.Env = append(os.Environ(), "GIT_DIR="+gitDir)
	var exitErr *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("chained update hook: %v; want the repository hook's exit status 3", err)
	}
	if got, _ := os.ReadFile(ownOut); string(got) != "refs/heads/main "+zero+" "+one+"\n" {
		t.Errorf("repository's update hook got %q", got)
	}
	cmd = exec.Command(filepath.Join(dir, "hooks", "pre-receive"))
	cmd.Env = append(os.Environ(), "GIT_DIR="+gitDir) // no pre-receive there
	if err := cmd.Run(); err != nil {
		t.Errorf("chained pre-receive without a repository hook: %v; want success", err)
	}

	// Close stops Serve and removes everything.
	done := make(chan struct{})
	go func() { s.Serve(func(Request) error { return nil }); close(done) }()
	s.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("hook dir after Close: %v; want it gone", err)
	}
}

// recorder is a Handler that notes each request, in the shared log too.
type recorder struct {
	mu   sync.Mutex
	log  string // the file the repository's own hook also appends to
	reqs []Request
	fail map[string]error // state -> answer
}

func (r *recorder) handle(req Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	f, err := os.OpenFile(r.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "serve %s %d\n", req.State, len(req.Updates))
	return r.fail[req.State]
}

func (r *recorder) take() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.reqs
	r.reqs = nil
	return reqs
}

func TestRunRoundTrip(t *testing.T) {
	s := listen(t, "/nonexistent/gitmesh")
	logPath := filepath.Join(t.TempDir(), "order.log")
	rec := &recorder{log: logPath, fail: map[string]error{}}
	done := make(chan struct{})
	go func() { s.Serve(rec.handle); close(done) }()
	t.Cleanup(func() { s.Close(); <-done })

	// The repository's own reference-transaction hook notes its argument
	// and input in the same log; it fails when OWN_FAIL names the state.
	gitDir := t.TempDir()
	writeScript(t, filepath.Join(gitDir, "hooks", "reference-transaction"),
		"#!/bin/sh\n{ echo \"own $*\"; cat; } >> "+shQuote(logPath)+"\n"+
			"[ \"$OWN_FAIL\" = \"$1\" ] && { echo own hook says no >&2; exit 1; }\nexit 0\n")
	t.Setenv("GIT_DIR", gitDir)
	t.Setenv(SocketEnv, strings.TrimPrefix(s.Env(), SocketEnv+"="))

	input := zero + " " + one + " refs/heads/main\njunk line\n" + one + " " + two + " refs/tags/v1\n"
	updates := []Update{{zero, one, "refs/heads/main"}, {one, two, "refs/tags/v1"}}
	own := "own %[1]s\n" + input

	tests := []struct {
		name     string
		state    string
		serveErr error  // the handler's answer
		ownFail  bool   // the repository's hook fails
		wantErr  string // "" for success
		asked    bool   // serve saw the request
		log      string // fmt: %[1]s is the state
	}{
		{name: "prepared, accepted", state: "prepared", asked: true,
			log: own + "serve %[1]s 2\n"},
		{name: "prepared, refused by serve", state: "prepared", asked: true,
			serveErr: errors.New("cannot record the push:\nthe database is gone"),
			wantErr:  "cannot record the push: the database is gone",
			log:      own + "serve %[1]s 2\n"},
		{name: "prepared, refused by the repository's hook", state: "prepared", ownFail: true,
			wantErr: "the repository's reference-transaction hook failed",
			log:     own},
		{name: "committed", state: "committed", asked: true,
			log: "serve %[1]s 2\n" + own},
		{name: "aborted", state: "aborted", asked: true,
			log: "serve %[1]s 2\n" + own},
		{name: "committed, the repository's hook fails", state: "committed", ownFail: true, asked: true,
			wantErr: "the repository's reference-transaction hook failed",
			log:     "serve %[1]s 2\n" + own},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(logPath)
			rec.fail[tt.state] = tt.serveErr
			defer delete(rec.fail, tt.state)
			if tt.ownFail {
				t.Setenv("OWN_FAIL", tt.state)
			} else {
				t.Setenv("OWN_FAIL", "")
			}
			var stderr strings.Builder
			err := Run(tt.state, strings.NewReader(input), &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Run: %v (stderr %q)", err, stderr.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Run = %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.ownFail && !strings.Contains(stderr.String(), "own hook says no") {
				t.Errorf("stderr = %q, want the repository hook's own message", stderr.String())
			}
			reqs := rec.take()
			var want []Request
			if tt.asked {
				want = []Request{{State: tt.state, Updates: updates}}
			}
			if !reflect.DeepEqual(reqs, want) {
				t.Errorf("serve saw %+v, want %+v", reqs, want)
			}
			got, _ := os.ReadFile(logPath)
			if w := fmt.Sprintf(tt.log, tt.state); string(got) != w {
				t.Errorf("order of hooks:\n%s\nwant\n%s", got, w)
			}
		})
	}
}

func TestRunWithoutServe(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "own.log")
	gitDir := t.TempDir()
	writeScript(t, filepath.Join(gitDir, "hooks", "reference-transaction"),
		"#!/bin/sh\n{ echo \"own $*\"; cat; } >> "+shQuote(logPath)+"\n")
	t.Setenv("GIT_DIR", gitDir)
	input := zero + " " + one + " refs/heads/main\n"

	t.Run("no socket: only the repository's hook", func(t *testing.T) {
		t.Setenv(SocketEnv, "")
		for _, state := range []string{"prepared", "committed", "aborted"} {
			os.Remove(logPath)
			if err := Run(state, strings.NewReader(input), io.Discard); err != nil {
				t.Errorf("Run(%s): %v", state, err)
			}
			if got, _ := os.ReadFile(logPath); string(got) != "own "+state+"\n"+input {
				t.Errorf("Run(%s): repository hook got %q", state, got)
			}
		}
	})

	t.Run("socket of a serve that is gone", func(t *testing.T) {
		t.Setenv(SocketEnv, filepath.Join(t.TempDir(), "hook.sock"))
		err := Run("prepared", strings.NewReader(input), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "gitmesh serve is gone") {
			t.Errorf("Run = %v, want 'gitmesh serve is gone'", err)
		}
	})

	t.Run("serve closes without answering", func(t *testing.T) {
		s := listen(t, "/nonexistent/gitmesh")
		go func() {
			c, err := s.ln.AcceptUnix()
			if err == nil {
				io.Copy(io.Discard, c)
				c.Close()
			}
		}()
		t.Setenv(SocketEnv, strings.TrimPrefix(s.Env(), SocketEnv+"="))
		err := Run("prepared", strings.NewReader(input), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "gone before answering") {
			t.Errorf("Run = %v, want 'gone before answering'", err)
		}
	})

	t.Run("repository hook not executable", func(t *testing.T) {
		t.Setenv(SocketEnv, "")
		dir := t.TempDir()
		path := filepath.Join(dir, "hooks", "reference-transaction")
		writeScript(t, path, "#!/bin/sh\nexit 1\n")
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("GIT_DIR", dir)
		if err := Run("prepared", strings.NewReader(input), io.Discard); err != nil {
			t.Errorf("Run: %v; a non-executable hook must be skipped", err)
		}
	})
}

// mkPushDir makes a directory named like a push's hook directory of pid.
func mkPushDir(t *testing.T, pid string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gitmesh-push-"+pid+"-unittest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "hook.sock"), nil, 0o600); err != nil {
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

func TestAlive(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		want bool
	}{
		{"this process", os.Getpid(), true},
		{"init", 1, true},
		{"reaped", deadPID(t), false},
		{"zombie", zombie(t), false},
	}
	for _, tt := range tests {
		if got := alive(tt.pid); got != tt.want {
			t.Errorf("alive(%s, %d) = %v, want %v", tt.name, tt.pid, got, tt.want)
		}
	}
}

func TestRemoveOrphans(t *testing.T) {
	dead := mkPushDir(t, fmt.Sprint(deadPID(t)))
	zomb := mkPushDir(t, fmt.Sprint(zombie(t)))
	live := mkPushDir(t, fmt.Sprint(os.Getpid()))
	notPID := mkPushDir(t, "x")
	zeroPID := mkPushDir(t, "0")

	removeOrphans()

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
	listen(t, "/nonexistent/gitmesh")
	if _, err := os.Stat(dead2); !os.IsNotExist(err) {
		t.Errorf("Listen left the orphan %s: %v", dead2, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("Listen removed the live %s: %v", live, err)
	}
}
