package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// serve has no log file when log_file is unset; sshd runs it, so a bad
// setting must still leave a trace: the failure goes to the system log.
// The test's own datagram socket stands in for /dev/log.
func TestServeWithoutALogFileLogsToTheSystemLog(t *testing.T) {
	t.Setenv("SSH_ORIGINAL_COMMAND", "git-upload-pack 'team/app.git'")
	for _, v := range []string{"GITMESH_CONFIG", "GITMESH_DATABASE_URL", "GITMESH_LOG_FILE"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(badConfig, []byte("repo-root = \"/srv/git/repos\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "gitmesh.log")
	for _, tt := range []struct {
		name string
		args []string
		want string // in the system log; "" nothing
	}{
		{"a database URL that cannot be read", []string{"--database-url", "mysql://gitmesh:hunter2@h/db", "--device", "a", "--repo-root", dir, "serve", "alice"},
			"it is a mysql:// URL, and gitmesh needs PostgreSQL"},
		{"a settings file that cannot be read", []string{"--config", badConfig, "serve", "alice"}, `unknown setting \"repo-root\"; did you mean repo_root?`},
		{"with a log file, not the system log", []string{"--database-url", "mysql://gitmesh:hunter2@h/db", "--log-file", logFile, "--device", "a", "--repo-root", dir, "serve", "alice"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "log")
			l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			a := &app{syslogPath: sock}
			if code := a.run(append([]string{"gitmesh"}, tt.args...)); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			buf := make([]byte, 64<<10)
			wait := 5 * time.Second
			if tt.want == "" {
				wait = 300 * time.Millisecond // nothing is coming: a bound, not a wait for an event
			}
			l.SetReadDeadline(time.Now().Add(wait))
			n, err := l.Read(buf)
			got := string(buf[:max(n, 0)])
			if tt.want == "" {
				if err == nil {
					t.Fatalf("with a log file, the system log got %q", got)
				}
				if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "mysql://") {
					t.Errorf("the log file holds %q, want the failure", b)
				}
				return
			}
			if err != nil {
				t.Fatalf("nothing reached the system log: %v", err)
			}
			if !strings.Contains(got, tt.want) || !strings.Contains(got, "gitmesh") || !strings.Contains(got, `"level":"error"`) {
				t.Errorf("system log got %q, want an error saying %q", got, tt.want)
			}
			if strings.Contains(got, "hunter2") {
				t.Errorf("the system log holds the password: %q", got)
			}
		})
	}
}

// `gitmesh serve alice` typed in a terminal says who runs serve and how to
// try it, instead of refusing an "interactive login".
func TestServeByHandInATerminal(t *testing.T) {
	t.Setenv("SSH_ORIGINAL_COMMAND", "")
	os.Unsetenv("SSH_ORIGINAL_COMMAND")
	tty := openPTY(t)
	saved := os.Stdin
	os.Stdin = tty
	defer func() { os.Stdin = saved }()
	a := &app{}
	err := a.cli().Run([]string{"gitmesh", "--database-url", "postgres://x@127.0.0.1/db", "--device", "a", "--repo-root", t.TempDir(), "serve", "alice"})
	if code := exitCode(err); code != 2 {
		t.Fatalf("exit %d (%v), want 2", code, err)
	}
	msg := a.userMessage(err)
	for _, want := range []string{"serve is run by sshd as the forced command of a user's key, with the client's command in SSH_ORIGINAL_COMMAND",
		`to try it by hand, give it the command git would send: SSH_ORIGINAL_COMMAND="git-upload-pack 'team/app.git'" gitmesh --config FILE serve USER`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q, want it to contain %q", msg, want)
		}
	}
	// Without a terminal, but not from sshd either (no SSH_CONNECTION):
	// by hand too.
	os.Stdin = saved
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	os.Stdin = devnull
	t.Setenv("SSH_CONNECTION", "")
	os.Unsetenv("SSH_CONNECTION")
	args := []string{"gitmesh", "--database-url", "postgres://x@127.0.0.1/db", "--device", "a", "--repo-root", t.TempDir(), "serve", "alice"}
	err = (&app{}).cli().Run(args)
	if err == nil || !strings.Contains(err.Error(), "to try it by hand") || !strings.Contains(err.Error(), "an interactive login is not allowed") {
		t.Errorf("serve with no command, not from sshd: %v, want how to try it", err)
	}
	// As sshd runs it for a key holder who asked for no command: the
	// interactive login is refused, and nothing is said about trying.
	t.Setenv("SSH_CONNECTION", "10.0.0.1 50000 10.0.0.2 22")
	err = (&app{}).cli().Run(args)
	if err == nil || !strings.Contains(err.Error(), "interactive login is not allowed; this key only serves git fetch and push") || strings.Contains(err.Error(), "by hand") {
		t.Errorf("serve from sshd with no command: %v, want the interactive login refused", err)
	}
}

// openPTY opens a pseudo-terminal and returns its terminal end.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}
