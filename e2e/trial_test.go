package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"gitmesh/meshtest"
)

// A repository nobody has pushed to holds nothing that could be lost: it
// is not below the quorum, for status, check and the metrics alike.
func TestAFreshRepositoryIsNotBelowQuorum(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app") // every holder recorded empty at version 0
	st := c.MustAdmin("status", "team/app")
	if strings.Contains(st, "BELOW QUORUM") || !strings.Contains(st, "team/app: 3 of 3 devices hold the newest version, quorum 2 (nothing pushed yet)") {
		t.Errorf("status of a fresh repository:\n%s", st)
	}
	// An adopted copy (not empty) is the only version 0: the other holders have none
	// recorded yet, and are listed lagging, but nothing is below quorum.
	old := c.Devices["a"].Root + "/team/old.git"
	c.LocalGit("", "init", "-q", "--bare", old)
	work := c.Work("alice")
	c.Commit(work, "README", "from before gitmesh\n")
	c.LocalGit(work, "push", "-q", old, "main")
	c.CreateRepo("a", "team/old")
	st = c.MustAdmin("status", "team/old")
	if strings.Contains(st, "BELOW QUORUM") || !strings.Contains(st, "team/old: 1 of 3 devices hold the newest version, quorum 2 (nothing pushed yet)") ||
		!strings.Contains(st, "no version recorded yet") {
		t.Errorf("status of an adopted repository:\n%s", st)
	}
	if r := c.Admin("check", "--no-probe"); r.Code != 0 || !strings.HasPrefix(r.Stdout, "OK:") {
		t.Errorf("check of a fresh repository: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if m := c.MustAdmin("metrics"); !strings.Contains(m, `gitmesh_repository_below_quorum{repository="team/app"} 0`) {
		t.Errorf("metrics of a fresh repository:\n%s", m)
	}
}

// sync on a device whose repo root is gone names the path: admins may see
// paths (serve's users hear only that the server is misconfigured).
func TestSyncNamesAMissingRepoRoot(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	pushed(t, c)
	b := c.Devices["b"]
	if err := os.Rename(b.Root, b.Root+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(b.Root + ".away"); err != nil {
		t.Fatal(err)
	}
	r := b.Run(nil, "sync")
	if r.Code == 0 || !strings.Contains(r.Stderr, "the repo root "+b.Root+" is missing") {
		t.Errorf("sync with its repo root gone: exit %d, %q; want the root's path", r.Code, r.Stderr)
	}
}

// A device being down while others push is expected: the push's catch-up
// logs it at warn, in the singular, and exits 0.
func TestADownDeviceIsAWarning(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	cdev := c.Devices["c"]
	if err := os.Rename(cdev.Root, cdev.Root+".away"); err != nil { // c's disk is not mounted
		t.Fatal(err)
	}
	work := c.Work("alice")
	c.Commit(work, "README", "c is down\n")
	from := logSize(c, "a")
	c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	meshtest.WaitDetached(t) // the push's converge has run
	var found map[string]any
	for _, l := range logLines(t, c, "a", from) {
		if l["op"] == "converge" && strings.Contains(l["message"].(string), "did not catch up") {
			found = l
		}
		if l["level"] == "error" {
			t.Errorf("an error was logged: %v", l)
		}
	}
	want := "c did not catch up on team/app; it will on its next read or sweep"
	if found == nil || found["level"] != "warn" || found["message"] != want {
		t.Fatalf("the catch-up log line: %v; want level warn, %q", found, want)
	}
}

// metrics --probe says which devices answer, as check reaches them; without
// it metrics needs only the database and prints no gitmesh_device_up.
func TestMetricsProbeTheDevices(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	cdev := c.Devices["c"]
	if err := os.Rename(cdev.Root, cdev.Root+".away"); err != nil { // c's disk is not mounted
		t.Fatal(err)
	}
	out := c.MustAdmin("metrics", "--probe")
	var p expfmt.TextParser
	m, err := p.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses gitmesh metrics --probe: %v\n%s", err, out)
	}
	for dev, want := range map[string]float64{"a": 1, "b": 1, "c": 0} {
		if got := value(t, m, "gitmesh_device_up", "device", dev); got != want {
			t.Errorf("gitmesh_device_up of %s: %v, want %v", dev, got, want)
		}
	}
	if out := c.MustAdmin("metrics"); strings.Contains(out, "gitmesh_device_up") {
		t.Errorf("metrics without --probe probed:\n%s", out)
	}
}
