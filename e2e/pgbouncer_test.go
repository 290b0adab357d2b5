package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gitmesh/meshtest"
)

// behindBouncer points every device's database_url at a real PgBouncer in
// session mode, as the README recommends for production.
func behindBouncer(t *testing.T, c *meshtest.Cluster, b *meshtest.PgBouncer, extra string) {
	for _, d := range c.Devices {
		d.DBURL = b.URL(c.DBURL)
		d.WriteConfig(extra)
	}
}

// Users clone, push and read after a push through real sshd while every
// gitmesh connection goes through PgBouncer; a read from a current device
// reuses a backend PgBouncer already holds instead of starting one.
func TestClusterThroughPgBouncerInSessionMode(t *testing.T) {
	bouncer := meshtest.StartPgBouncer(t)
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	for n, d := range c.Devices {
		d.DBURL = bouncer.URL(c.DBURL)
		c.SetPeerSettings(n, c.ClusterKey, c.KnownHosts)
	}
	a, b, cc := c.Hosts["a"], c.Hosts["b"], c.Hosts["c"]
	c.CreateRepo("a", "team/app", "alice")

	work := c.Work("alice")
	first := c.Commit(work, "README", "through pgbouncer\n")
	a.MustGit("alice", work, "push", "-q", a.URL("team/app"), "main")
	clone := filepath.Join(c.Dir, "clone-c")
	cc.MustGit("alice", "", "clone", "-q", c.Hosts["c"].URL("team/app"), clone)
	if got := strings.TrimSpace(c.LocalGit(clone, "rev-parse", "HEAD")); got != first {
		t.Fatalf("clone from c through pgbouncer has %s, want %s", got, first)
	}
	second := c.Commit(clone, "README", "pushed to b through pgbouncer\n")
	b.MustGit("alice", clone, "push", "-q", b.URL("team/app"), "main")
	if out := a.MustGit("alice", "", "ls-remote", a.URL("team/app"), "refs/heads/main"); !strings.HasPrefix(out, second) {
		t.Fatalf("a serves %q right after the push to b, want %s", out, second)
	}
	status := statusOf(t, c.Cluster, "team/app")
	for _, dev := range []string{"a", "b"} {
		if r := status[dev]; r.Frozen || r.IsWriting || r.Lag != 0 || r.BelowQuorum || r.HoldNewest < 2 {
			t.Fatalf("status through pgbouncer, device %s: %+v", dev, r)
		}
	}

	meshtest.WaitDetached(t)
	before, err := bouncer.ServerPIDs()
	if err != nil || len(before) == 0 {
		t.Fatalf("pgbouncer holds no PostgreSQL backend after the pushes (%v): the devices did not use it", err)
	}
	if out := a.MustGit("alice", "", "ls-remote", a.URL("team/app"), "refs/heads/main"); !strings.HasPrefix(out, second) {
		t.Fatalf("current a serves %q, want %s", out, second)
	}
	after, err := bouncer.ServerPIDs()
	if err != nil {
		t.Fatal(err)
	}
	for pid := range after {
		if !before[pid] {
			t.Fatalf("a read from current a started PostgreSQL backend %d although pgbouncer held %v: session pooling is not reusing backends", pid, before)
		}
	}
}

// A push's session advisory lock lives on its PgBouncer client connection:
// while one push holds the write lock, a push through another device waits
// for it, and both land once it is released.
func TestAdvisoryLocksHoldThroughPgBouncer(t *testing.T) {
	bouncer := meshtest.StartPgBouncer(t)
	c := meshtest.NewCluster(t, "a", "b")
	behindBouncer(t, c, bouncer, "")
	pushed(t, c)
	url := meshtest.URL("team/app")
	marker, release := filepath.Join(c.Dir, "in-pre-receive"), filepath.Join(c.Dir, "release")
	hook := fmt.Sprintf("#!/bin/sh\ncat >/dev/null\ntouch %q\ni=0\nwhile [ ! -e %q ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n", marker, release)
	if err := os.WriteFile(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}

	works, heads := map[string]string{}, map[string]string{}
	for _, d := range []string{"a", "b"} {
		works[d] = filepath.Join(c.Dir, "w-"+d)
		c.Devices[d].MustGit("alice", "", "clone", "-q", url, works[d])
		heads[d] = c.Commit(works[d], d+".txt", d+"\n")
	}
	pushA := c.Devices["a"].GitCmd("alice", works["a"], "push", url, "main:refs/heads/from-a")
	var errA strings.Builder
	pushA.Stderr = &errA
	if err := pushA.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the push to a to reach pre-receive", exists(marker))

	db := c.DB()
	var holderPID int
	var app string
	err := db.QueryRow(`SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.locktype = 'advisory' AND l.granted AND l.classid = x'676d5700'::int`).Scan(&holderPID, &app)
	if err != nil {
		t.Fatalf("no write lock held while the push to a is in pre-receive: %v", err)
	}
	servers, err := bouncer.ServerPIDs()
	if err != nil || !servers[holderPID] {
		t.Fatalf("the write lock is held by backend %d, not one of pgbouncer's %v (%v)", holderPID, servers, err)
	}
	if !strings.HasPrefix(app, "gitmesh ") || !strings.Contains(app, "team/app") {
		t.Fatalf("the write lock's holder is named %q through pgbouncer; want gitmesh's application_name", app)
	}

	pushB := c.Devices["b"].GitCmd("alice", works["b"], "push", url, "main:refs/heads/from-b")
	var errB strings.Builder
	pushB.Stderr = &errB
	if err := pushB.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the push to b to wait for a lock", func() bool {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_locks WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND locktype = 'advisory' AND NOT granted`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := finish(t, pushA); err != nil {
		t.Fatalf("push to a: %v: %s", err, errA.String())
	}
	if err := finish(t, pushB); err != nil {
		t.Fatalf("push to b after waiting for a's lock: %v: %s", err, errB.String())
	}
	for _, reader := range []string{"a", "b"} {
		out := c.Devices[reader].MustGit("alice", "", "ls-remote", url)
		for _, d := range []string{"a", "b"} {
			if !strings.Contains(out, heads[d]+"\trefs/heads/from-"+d) {
				t.Fatalf("%s does not serve from-%s=%s:\n%s", reader, d, heads[d], out)
			}
		}
	}
}

// PgBouncer keeps a backend after its client leaves; its server_reset_query
// (DISCARD ALL) must drop the advisory locks of a gitmesh killed while
// holding them, or the repository stays locked for everyone.
func TestPgBouncerDropsTheLocksOfAKilledServe(t *testing.T) {
	bouncer := meshtest.StartPgBouncer(t)
	c := meshtest.NewCluster(t, "a", "b")
	behindBouncer(t, c, bouncer, "")
	work, _ := pushed(t, c)
	url := meshtest.URL("team/app")
	marker, release := filepath.Join(c.Dir, "in-pre-receive"), filepath.Join(c.Dir, "release")
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })
	hook := fmt.Sprintf("#!/bin/sh\ncat >/dev/null\ntouch %q\ni=0\nwhile [ ! -e %q ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n", marker, release)
	if err := os.WriteFile(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}

	c.Commit(work, "README", "never acknowledged\n")
	push := c.Devices["a"].GitCmd("alice", work, "push", url, "main")
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the push to reach pre-receive", exists(marker))
	db := c.DB()
	var holder int
	if err := db.QueryRow(`SELECT pid FROM pg_locks WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND locktype = 'advisory' AND granted AND classid = x'676d5700'::int`).Scan(&holder); err != nil {
		t.Fatalf("no write lock held while the push is in pre-receive: %v", err)
	}
	var servePID int
	if err := db.QueryRow(`SELECT (write_properties->>'pid')::int FROM working_copy_versions WHERE is_writing`).Scan(&servePID); err != nil {
		t.Fatalf("no write mark while the push is in pre-receive: %v", err)
	}
	if err := syscall.Kill(servePID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	finish(t, push)
	waitFor(t, "the killed serve's write lock to be released", func() bool {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_locks WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND locktype = 'advisory' AND granted`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}
