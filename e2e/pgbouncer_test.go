package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

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
	if err := os.WriteFile(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update"), []byte(hook), 0o755); err != nil {
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
	startB := time.Now().Truncate(time.Second)
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
	// status says since when a waiter waits, and claims no time for a
	// holder: PostgreSQL records none, and the session's start (a warm
	// pooled backend's) is not the lock's.
	st := c.MustAdmin("status", "team/app")
	holds := regexp.MustCompile(`(?m)^lock: "gitmesh push \d+ alice@a team/app" \(backend \d+\) holds a lock$`)
	waits := regexp.MustCompile(`(?m)^lock: "gitmesh push \d+ alice@b team/app" \(backend \d+\) waits for a lock since (\S+)$`)
	m := waits.FindStringSubmatch(st)
	if !holds.MatchString(st) || m == nil {
		t.Fatalf("status does not show a's push holding and b's waiting, without a time for the holder:\n%s", st)
	}
	if since, err := time.Parse(time.RFC3339, m[1]); err != nil || since.Before(startB) || since.After(time.Now()) {
		t.Fatalf("b's push waits since %s (%v); it started at %s", m[1], err, startB.Format(time.RFC3339))
	}
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
// holding them, or the repository stays locked for everyone. The dead
// writer's backend lives on for the next client, so its pid stays in
// pg_stat_activity: status, check and metrics must still see the writer
// gone (the one definition heal uses: that backend under the writer's own
// application_name), not a push in progress.
func TestPgBouncerDropsTheLocksOfAKilledServe(t *testing.T) {
	bouncer := meshtest.StartPgBouncer(t)
	c := meshtest.NewCluster(t, "a", "b")
	behindBouncer(t, c, bouncer, "")
	work, _ := pushed(t, c)
	url := meshtest.URL("team/app")
	marker, release := filepath.Join(c.Dir, "in-pre-receive"), filepath.Join(c.Dir, "release")
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })
	hook := fmt.Sprintf("#!/bin/sh\ncat >/dev/null\ntouch %q\ni=0\nwhile [ ! -e %q ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n", marker, release)
	if err := os.WriteFile(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}

	c.Commit(work, "README", "never acknowledged\n")
	push := c.Devices["a"].GitCmd("alice", work, "push", url, "main")
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the push to reach pre-receive", exists(marker))
	if r := statusOf(t, c, "team/app")["a"]; !r.IsWriting || r.Frozen {
		t.Fatalf("status while the push runs: %+v; want writing, not frozen", r)
	}
	db := c.DB()
	var holder int
	if err := db.QueryRow(`SELECT pid FROM pg_locks WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND locktype = 'advisory' AND granted AND classid = x'676d5700'::int`).Scan(&holder); err != nil {
		t.Fatalf("no write lock held while the push is in pre-receive: %v", err)
	}
	var servePID, backend int
	if err := db.QueryRow(`SELECT (write_properties->>'pid')::int, (write_properties->>'backend_pid')::int
		FROM working_copy_versions WHERE is_writing`).Scan(&servePID, &backend); err != nil {
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
	servers, err := bouncer.ServerPIDs()
	if err != nil || !servers[backend] {
		t.Fatalf("pgbouncer no longer holds the dead writer's backend %d (%v, %v): the test does not test what it means to", backend, servers, err)
	}

	if r := statusOf(t, c, "team/app")["a"]; !r.Frozen {
		t.Fatalf("status after the writer was killed behind pgbouncer: %+v; want frozen", r)
	}
	if r := check(t, c, "--no-probe"); r.Code != 2 || !strings.HasPrefix(r.Stdout, "CRITICAL: team/app is frozen") {
		t.Fatalf("check --no-probe after the writer was killed behind pgbouncer: exit %d, want 2 and CRITICAL:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := check(t, c, "--no-probe", "--json")
	var rep checkReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("check --json: %v\n%s%s", err, r.Stdout, r.Stderr)
	}
	frozen := false
	for _, p := range rep.Problems {
		frozen = frozen || (p.Kind == "frozen" && p.Device == "a")
	}
	if r.Code != 2 || rep.Status != "critical" || !frozen {
		t.Fatalf("check --no-probe after the writer was killed behind pgbouncer: exit %d, %+v; want 2, CRITICAL, frozen on a", r.Code, rep)
	}
	if m := c.MustAdmin("metrics"); !strings.Contains(m, `gitmesh_copy_frozen{repository="team/app",device="a"} 1`) {
		t.Fatalf("metrics do not show a frozen:\n%s", m)
	}
}
