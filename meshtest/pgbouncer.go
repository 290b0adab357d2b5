package meshtest

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PgBouncerBin is where Debian's pgbouncer package installs the server.
const PgBouncerBin = "/usr/sbin/pgbouncer"

// PgBouncer is a real PgBouncer in session mode in front of the test
// PostgreSQL, on a free loopback port, configured as the README tells
// operators to: pool_mode = session, server_reset_query = DISCARD ALL.
type PgBouncer struct {
	Port   int
	Dir    string // pgbouncer.ini, its log and pid file
	Log    string
	target *url.URL
	cmd    *exec.Cmd
	done   chan error
}

// RequirePgBouncer fails the test (never skips it) when PgBouncer is
// missing, with the command that installs it.
func RequirePgBouncer(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(PgBouncerBin); err != nil {
		t.Fatalf("meshtest: this test runs a real PgBouncer but %s is missing; run: apt-get install -y pgbouncer (or make setup)", PgBouncerBin)
	}
}

// StartPgBouncer starts PgBouncer in front of the server this test process
// uses (as the postgres user when running as root: PgBouncer refuses root).
// It stops with the test (t.Cleanup) and with the test process (Pdeathsig).
func StartPgBouncer(t testing.TB) *PgBouncer {
	t.Helper()
	RequirePgBouncer(t)
	if pg == nil {
		t.Fatal("meshtest: no PostgreSQL; call meshtest.Main from TestMain")
	}
	target, err := url.Parse(pg.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := serverCredential()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gitmesh-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	b := &PgBouncer{Dir: dir, Log: filepath.Join(dir, "pgbouncer.log"), target: target}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if b.Port, err = FreePort(); err != nil {
			t.Fatal(err)
		}
		if lastErr = b.start(cred); lastErr == nil {
			t.Cleanup(b.Stop)
			return b
		}
	}
	t.Fatalf("meshtest: pgbouncer: %v", lastErr)
	return nil
}

// Ini is the configuration: every database name is passed through to the
// test server, logging in as the server URL's user (auth_type = any: the
// bouncer listens on loopback only, in front of a throwaway server).
func (b *PgBouncer) Ini() string {
	host, port := b.target.Hostname(), b.target.Port()
	if port == "" {
		port = "5432"
	}
	conn := fmt.Sprintf("host=%s port=%s", host, port)
	if u := b.target.User; u != nil {
		conn += " user=" + u.Username()
		if p, ok := u.Password(); ok {
			conn += " password=" + p
		}
	}
	return fmt.Sprintf(`[databases]
* = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = session
server_reset_query = DISCARD ALL
max_client_conn = 500
default_pool_size = 100
logfile = %s
pidfile = %s
`, conn, b.Port, b.Log, filepath.Join(b.Dir, "pgbouncer.pid"))
}

func (b *PgBouncer) start(cred *syscall.Credential) error {
	ini := filepath.Join(b.Dir, "pgbouncer.ini")
	if err := os.WriteFile(ini, []byte(b.Ini()), 0o644); err != nil {
		return err
	}
	b.cmd = exec.Command(PgBouncerBin, ini)
	b.cmd.Dir = b.Dir
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM, Setpgid: true}
	var err error
	if b.done, err = startTied(b.cmd); err != nil {
		b.cmd = nil
		return fmt.Errorf("start pgbouncer: %w", err)
	}
	return b.waitReady(30 * time.Second)
}

// waitReady waits until a query through the bouncer works, or reports why
// the bouncer exited.
func (b *PgBouncer) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		d, err := sql.Open("postgres", b.URL(pg.AdminURL))
		if err == nil {
			err = d.Ping()
			d.Close()
		}
		if err == nil {
			return nil
		}
		select {
		case werr := <-b.done:
			b.cmd = nil
			log, _ := os.ReadFile(b.Log)
			return fmt.Errorf("pgbouncer exited (%v): %s", werr, strings.TrimSpace(string(log)))
		default:
		}
		if time.Now().After(deadline) {
			b.Stop()
			return fmt.Errorf("pgbouncer not answering on port %d after %s: %w", b.Port, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID is the bouncer's process id.
func (b *PgBouncer) PID() int {
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// URL is dbURL (a postgres:// URL of the test server) reached through the
// bouncer instead.
func (b *PgBouncer) URL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return ""
	}
	u.Host = "127.0.0.1:" + strconv.Itoa(b.Port)
	return u.String()
}

// ServerPIDs are the process ids of the PostgreSQL backends the bouncer
// holds open (SHOW SERVERS on its admin console).
func (b *PgBouncer) ServerPIDs() (map[int]bool, error) {
	console := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/pgbouncer?sslmode=disable", b.Port)
	d, err := sql.Open("postgres", console)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rows, err := d.Query("SHOW SERVERS")
	if err != nil {
		return nil, fmt.Errorf("SHOW SERVERS: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	pids := map[int]bool{}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, c := range cols {
			if c == "remote_pid" {
				pid, _ := strconv.Atoi(vals[i].String)
				pids[pid] = true
			}
		}
	}
	return pids, rows.Err()
}

// Stop stops the bouncer (SIGTERM: immediate shutdown). Safe to call twice.
func (b *PgBouncer) Stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
	b.cmd = nil
}
