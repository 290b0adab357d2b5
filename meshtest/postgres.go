// Package meshtest builds throwaway gitmesh clusters for tests: a real
// PostgreSQL, real git, and devices each with its own repo root.
package meshtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/lib/pq" // the driver
)

// Postgres is a PostgreSQL server the tests may create databases in.
type Postgres struct {
	AdminURL string // a superuser URL
	dir      string
	bin      string
	cred     *syscall.Credential
	port     int
	cmd      *exec.Cmd
	done     chan error
	counter  atomic.Int64
	// opts are extra -c settings, after (and so over) the defaults.
	opts []string
}

// StartPostgres uses GITMESH_TEST_DATABASE_URL when set (a superuser URL);
// otherwise it starts a throwaway server with initdb on a free loopback
// port, as the postgres user when running as root. The server dies with
// the test process, even when that process is killed.
func StartPostgres() (*Postgres, error) {
	if u := os.Getenv("GITMESH_TEST_DATABASE_URL"); u != "" {
		return &Postgres{AdminURL: u}, nil
	}
	return StartOwnPostgres()
}

// StartOwnPostgres always starts a throwaway server, for tests that stop
// and start it.
func StartOwnPostgres() (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gitmesh-pg-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: dir, bin: bin, cred: cred}
	if err := p.initdb(bin, cred); err != nil {
		p.Stop()
		return nil, err
	}
	if p.port, err = FreePort(); err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.StartServer(); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// postgresBin finds the directory holding initdb and postgres.
func postgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// A link on PATH: the directory that holds the rest (pg_basebackup).
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries not found (no initdb on PATH or in /usr/lib/postgresql/*/bin): run 'apt-get install -y postgresql' or set GITMESH_TEST_DATABASE_URL")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// serverCredential is the unprivileged user PostgreSQL runs as when the
// tests run as root (PostgreSQL refuses root); nil otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged 'postgres' user: %w (apt-get install -y postgresql creates it)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (p *Postgres) initdb(bin string, cred *syscall.Credential) error {
	if cred != nil {
		if err := os.Chown(p.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(p.dir, "data"),
		"-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = p.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	return nil
}

// StartServer starts the server process (again) on its port.
func (p *Postgres) StartServer() error {
	bin, cred, port := p.bin, p.cred, p.port
	p.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(p.dir, "data"),
		"-p", strconv.Itoa(port), "-k", p.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	for _, o := range p.opts {
		p.cmd.Args = append(p.cmd.Args, "-c", o)
	}
	p.cmd.Dir = p.dir
	logf, err := os.OpenFile(filepath.Join(p.dir, "postgres.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	os.Chown(logf.Name(), int(credUID(cred)), -1)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// SIGQUIT (immediate shutdown) when the test process dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	p.done = make(chan error, 1)
	started := make(chan error, 1)
	go func() {
		// Pdeathsig follows the starting thread: keep it for the server's life.
		runtime.LockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.done <- p.cmd.Wait()
		logf.Close()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	p.AdminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return p.waitReady(30 * time.Second)
}

func credUID(c *syscall.Credential) uint32 {
	if c == nil {
		return uint32(os.Getuid())
	}
	return c.Uid
}

func (p *Postgres) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		d, err := sql.Open("postgres", p.AdminURL)
		if err == nil {
			err = d.Ping()
			d.Close()
		}
		if err == nil {
			return nil
		}
		select {
		case werr := <-p.done:
			log, _ := os.ReadFile(filepath.Join(p.dir, "postgres.log"))
			return fmt.Errorf("postgres exited: %v: %s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %s: %w", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast) and removes its files. Safe to call on
// a server the harness did not start.
func (p *Postgres) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

// StopServer stops the server process (fast shutdown), keeping its data.
func (p *Postgres) StopServer() error {
	if p.cmd == nil {
		return fmt.Errorf("cannot stop a server the harness did not start")
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	<-p.done
	p.cmd = nil
	return nil
}

// RequirePassword makes role log in over TCP with its password
// (scram-sha-256) rather than the harness's trust, and reloads.
func (p *Postgres) RequirePassword(role string) error {
	if p.dir == "" {
		return fmt.Errorf("cannot change the access rules of a server the harness did not start")
	}
	path := filepath.Join(p.dir, "data", "pg_hba.conf")
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	rule := fmt.Sprintf("host all %s 127.0.0.1/32 scram-sha-256\n", role)
	if err := os.WriteFile(path, append([]byte(rule), old...), 0o600); err != nil {
		return err
	}
	d, err := sql.Open("postgres", p.AdminURL)
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = d.Exec(`SELECT pg_reload_conf()`)
	return err
}

// NewDatabase creates an empty database and returns its URL.
func (p *Postgres) NewDatabase() (string, error) {
	u, err := url.Parse(p.AdminURL)
	if err != nil {
		return "", fmt.Errorf("GITMESH_TEST_DATABASE_URL must be a postgres:// URL: %w", err)
	}
	name := fmt.Sprintf("gitmesh_test_%d_%d", os.Getpid(), p.counter.Add(1))
	admin, err := sql.Open("postgres", p.AdminURL)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SocketDSN is the key=value DSN reaching database name over the server's
// unix socket, or "" for a server the harness did not start.
func (p *Postgres) SocketDSN(name string) string {
	if p.dir == "" {
		return ""
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", p.dir, p.port, name)
}
