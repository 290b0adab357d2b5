package e2e

import (
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
