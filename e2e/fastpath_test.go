package e2e

import (
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// A read from a current device costs one PostgreSQL connection and, on it,
// one query round trip: the startup message, one write holding Parse,
// Bind, Describe, Execute and Sync (lib/pq's binary_parameters, set by
// db.Open), and Terminate. A second query, a second connection or a
// prepared statement's extra round trip shows here first.
func TestFastPathUsesOneConnectionAndOneRoundTrip(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	proxy := proxiedDevice(t, c, "a", "")
	_, acked := pushed(t, c) // a holds the newest version
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	a := c.Devices["a"]
	url := meshtest.URL("team/app")

	proxy.ResetStats()
	out := a.MustGit("alice", "", "ls-remote", url, "refs/heads/main")
	st := proxy.Stats()
	if !strings.HasPrefix(out, acked) {
		t.Fatalf("a served %q, want %s", out, acked)
	}
	t.Logf("ls-remote against current a: %d connection(s), %d client writes to PostgreSQL", st.Conns, st.Bursts)
	if st.Conns != 1 || st.Bursts > 3 {
		t.Fatalf("ls-remote against current a: %d connections, %d client writes to PostgreSQL; want 1 connection and at most 3 writes (startup, one query, terminate)",
			st.Conns, st.Bursts)
	}
}

// Through PgBouncer in session mode (the README's recommendation for a
// device that answers many small reads) a read from a current device is
// still one connection and one query round trip, and PgBouncer answers it
// with a PostgreSQL backend it already holds: no backend starts per read.
// lib/pq asks the server for transaction_read_only (extra queries) when
// the startup does not report it, which PgBouncer must pass on.
func TestFastPathThroughPgBouncerIsOneRoundTripOnAPooledBackend(t *testing.T) {
	bouncer := meshtest.StartPgBouncer(t)
	c := meshtest.NewCluster(t, "a", "b")
	_, acked := pushed(t, c)
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	proxy := meshtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", bouncer.Port))
	a := c.Devices["a"]
	u, err := neturl.Parse(bouncer.URL(c.DBURL))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = proxy.Addr
	a.DBURL = u.String()
	a.WriteConfig("")
	url := meshtest.URL("team/app")
	a.MustGit("alice", "", "ls-remote", url) // the bouncer opens its backend

	before, err := bouncer.ServerPIDs()
	if err != nil || len(before) == 0 {
		t.Fatalf("pgbouncer holds no backend after a read through it (%v)", err)
	}
	proxy.ResetStats()
	for i := 0; i < 3; i++ {
		if out := a.MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, acked) {
			t.Fatalf("a served %q through pgbouncer, want %s", out, acked)
		}
	}
	st := proxy.Stats()
	t.Logf("3 ls-remote against current a through pgbouncer: %d connection(s), %d client writes", st.Conns, st.Bursts)
	if st.Conns != 3 || st.Bursts > 9 {
		t.Fatalf("3 ls-remote through pgbouncer: %d connections, %d client writes; want 3 connections and at most 9 writes (startup, one query, terminate each)",
			st.Conns, st.Bursts)
	}
	after, err := bouncer.ServerPIDs()
	if err != nil {
		t.Fatal(err)
	}
	for pid := range after {
		if !before[pid] {
			t.Fatalf("a read through pgbouncer started PostgreSQL backend %d although it held %v", pid, before)
		}
	}
}

// `gitmesh sync` on a device whose copies are all current reads their
// state in one statement, however many repositories there are: its round
// trips to PostgreSQL do not grow with the repositories, and it still
// names each one. A copy that is behind is still brought up to date.
func TestSyncWithNothingToDoIsOneQuery(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	proxy := proxiedDevice(t, c, "a", "")
	syncRoundTrips := func() (int, string) {
		t.Helper()
		proxy.ResetStats()
		r := c.Devices["a"].Run(nil, "sync")
		if r.Code != 0 {
			t.Fatalf("sync: exit %d: %s", r.Code, r.Stderr)
		}
		return proxy.Stats().Bursts, r.Stdout
	}
	c.CreateRepo("a", "team/r0", "alice")
	few, _ := syncRoundTrips()
	for i := 1; i < 12; i++ {
		c.CreateRepo("a", fmt.Sprintf("team/r%d", i), "alice")
	}
	many, out := syncRoundTrips()
	// One of slack: a message may reach the proxy in two reads.
	if many > few+1 {
		t.Fatalf("sync with nothing to do: %d round trips for 1 repository, %d for 12; want no growth", few, many)
	}
	if n := strings.Count(out, ": current on a\n"); n != 12 {
		t.Fatalf("sync named %d repositories as current, want 12:\n%s", n, out)
	}
	// b never held them: its sync fetches every one.
	r := c.Devices["b"].Run(nil, "sync")
	if r.Code != 0 || strings.Count(r.Stdout, ": current on b\n") != 12 {
		t.Fatalf("sync on b: exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(c.Devices["b"].Root, "team/r5.git", "HEAD")); err != nil {
		t.Fatalf("b has no copy of team/r5 after sync: %v", err)
	}
}
