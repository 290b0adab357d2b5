package e2e

import (
	"fmt"
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
