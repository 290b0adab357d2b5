package meshtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// HA is a highly available coordination database as the README sets it
// up: a primary and a streaming synchronous standby (pg_basebackup -R -X
// stream), both throwaway servers on fixed loopback ports, reached by
// every device through one multi-host DSN (host=h1,h2 port=p1,p2
// target_session_attrs=read-write). The ports never change: a failover
// promotes the standby on its port, and a fresh standby is attached on
// the dead primary's port, so the devices' DSN stays right throughout.
type HA struct {
	mu      sync.Mutex
	ports   [2]int
	nodes   [2]*Postgres // by port slot; nil while a slot has no server
	primary int          // slot of the primary
	bin     string
	cred    *syscall.Credential
	dbs     []string
}

// Synchronous commit is what makes "nothing acknowledged is lost" true
// across a failover; the test servers otherwise run with it off.
var haOpts = []string{"synchronous_commit=on", "wal_level=replica", "max_wal_senders=10", "hot_standby=on", "wal_keep_size=64MB"}

// StartHA starts a primary and a synchronous standby of it.
func StartHA() (*HA, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	h := &HA{bin: bin, cred: cred}
	for i := range h.ports {
		if h.ports[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	p, err := h.newNode(0)
	if err != nil {
		return nil, err
	}
	if err := p.initdb(bin, cred); err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.StartServer(); err != nil {
		p.Stop()
		return nil, err
	}
	h.nodes[0], h.primary = p, 0
	if err := h.AttachStandby(); err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

func (h *HA) newNode(slot int) (*Postgres, error) {
	dir, err := os.MkdirTemp("", "gitmesh-pg-ha-")
	if err != nil {
		return nil, err
	}
	if h.cred != nil {
		if err := os.Chown(dir, int(h.cred.Uid), int(h.cred.Gid)); err != nil {
			return nil, err
		}
	}
	opts := append(append([]string{}, haOpts...), "cluster_name=pg"+strconv.Itoa(slot))
	return &Postgres{dir: dir, bin: h.bin, cred: h.cred, port: h.ports[slot], opts: opts}, nil
}

// Primary is the server taking writes now.
func (h *HA) Primary() *Postgres {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodes[h.primary]
}

// Standby is the standby, or nil when none is attached.
func (h *HA) Standby() *Postgres {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodes[1-h.primary]
}

// DSN is the multi-host key=value DSN of database name, the standby's
// port listed too, in slot order (after a failover the standby comes
// first: the driver skips it).
func (h *HA) DSN(name string) string {
	return fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=%s sslmode=disable target_session_attrs=read-write",
		h.ports[0], h.ports[1], name)
}

// NewDatabase creates an empty database on the primary (replicated to the
// standby) and returns its multi-host DSN.
func (h *HA) NewDatabase() (string, error) {
	name := fmt.Sprintf("gitmesh_ha_%d_%d", os.Getpid(), len(h.dbs)+1)
	if err := h.exec(h.Primary(), "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	h.dbs = append(h.dbs, name)
	return h.DSN(name), nil
}

// exec runs one statement on p's postgres database, bounded.
func (h *HA) exec(p *Postgres, stmt string) error {
	d, err := sql.Open("postgres", p.AdminURL)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = d.ExecContext(ctx, stmt)
	return err
}

// query reads one value from p, bounded.
func query[T any](p *Postgres, q string) (T, error) {
	var v T
	d, err := sql.Open("postgres", p.AdminURL)
	if err != nil {
		return v, err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = d.QueryRowContext(ctx, q).Scan(&v)
	return v, err
}

// AttachStandby makes a fresh standby of the primary in the free slot
// (pg_basebackup -R -X stream), starts it and makes it the primary's
// synchronous standby, returning once it streams as one.
func (h *HA) AttachStandby() error {
	h.mu.Lock()
	slot := 1 - h.primary
	primary := h.nodes[h.primary]
	h.mu.Unlock()
	s, err := h.newNode(slot)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(h.bin, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port),
		"-U", "postgres", "-D", filepath.Join(s.dir, "data"), "-R", "-X", "stream", "-c", "fast", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: h.cred}
	cmd.Dir = s.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		s.Stop()
		return fmt.Errorf("pg_basebackup: %w: %s", err, out)
	}
	if err := s.StartServer(); err != nil {
		s.Stop()
		return err
	}
	h.mu.Lock()
	h.nodes[slot] = s
	h.mu.Unlock()
	if err := h.setSync(primary, "pg"+strconv.Itoa(slot)); err != nil {
		return err
	}
	return waitUntil(30*time.Second, "the new standby to stream synchronously", func() (bool, error) {
		state, err := query[string](primary, `SELECT COALESCE((SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pg`+strconv.Itoa(slot)+`'), '')`)
		return state == "sync", err
	})
}

// setSync sets p's synchronous_standby_names and reloads.
func (h *HA) setSync(p *Postgres, names string) error {
	if err := h.exec(p, "ALTER SYSTEM SET synchronous_standby_names = '"+names+"'"); err != nil {
		return err
	}
	return h.exec(p, "SELECT pg_reload_conf()")
}

// KillPrimary kills the primary's whole process group at once (SIGKILL:
// a crash, no shutdown checkpoint, every session cut), keeping nothing.
func (h *HA) KillPrimary() {
	h.mu.Lock()
	p := h.nodes[h.primary]
	h.nodes[h.primary] = nil
	h.mu.Unlock()
	if p == nil || p.cmd == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.cmd = nil
	os.RemoveAll(p.dir)
}

// Promote makes the standby the primary: it stops waiting for a
// synchronous standby of its own (it has none until AttachStandby; the
// setting came with pg_basebackup's copy of the old primary's), and
// returns once it takes writes.
func (h *HA) Promote() error {
	h.mu.Lock()
	slot := 1 - h.primary
	s := h.nodes[slot]
	h.mu.Unlock()
	if s == nil {
		return fmt.Errorf("no standby to promote")
	}
	if err := h.exec(s, "ALTER SYSTEM RESET synchronous_standby_names"); err != nil {
		return fmt.Errorf("reset synchronous_standby_names on the standby: %w", err)
	}
	if err := h.exec(s, "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	if err := h.exec(s, "SELECT pg_promote(true, 30)"); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	h.mu.Lock()
	h.primary = slot
	h.mu.Unlock()
	return waitUntil(30*time.Second, "the promoted standby to take writes", func() (bool, error) {
		inRecovery, err := query[bool](s, "SELECT pg_is_in_recovery()")
		return err == nil && !inRecovery, nil
	})
}

// Failover is what an HA manager (Patroni, pg_auto_failover) does when
// the primary dies: kill it, promote the synchronous standby. The cluster
// runs without a standby until AttachStandby.
func (h *HA) Failover() error {
	h.KillPrimary()
	return h.Promote()
}

// Stall makes the primary accept connections and queries but never
// finish a commit: its synchronous standby is named one that does not
// exist (what synchronous_mode_strict does with no standby left).
func (h *HA) Stall() error { return h.setSync(h.Primary(), "nobody_is_here") }

// Unstall names the real standby again (or none): pending commits finish.
func (h *HA) Unstall() error {
	name := ""
	h.mu.Lock()
	if h.nodes[1-h.primary] != nil {
		name = "pg" + strconv.Itoa(1-h.primary)
	}
	h.mu.Unlock()
	return h.setSync(h.Primary(), name)
}

// Stop stops both servers and removes their files.
func (h *HA) Stop() {
	h.mu.Lock()
	nodes := h.nodes
	h.nodes = [2]*Postgres{}
	h.mu.Unlock()
	for _, p := range nodes {
		if p != nil {
			p.Stop()
		}
	}
}

func waitUntil(limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s (%v)", limit, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
