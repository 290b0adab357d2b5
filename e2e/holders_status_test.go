package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"gitmesh/meshtest"
)

// status, check, metrics and verify speak of holders. A holder placed but
// holding no recorded version yet (the first step of a move, or more
// copies asked for) is listed as lagging, not left out; once it catches
// up it counts towards "N of M devices hold the newest version"; and a
// device that is no longer a holder is no longer listed, even while its
// version row is left behind.
func TestStatusCheckAndMetricsSpeakOfHolders(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.User("alice")
	if r := c.Devices["a"].Run(nil, "repo", "create", "team/app", "--copies", "2"); r.Code != 0 {
		t.Fatalf("repo create --copies 2: exit %d: %s", r.Code, r.Stderr)
	}
	c.MustAdmin("grant", "alice", "team/app", "write")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	waitStatus(t, c, "team/app", "team/app: 2 of 2 devices hold the newest version, quorum 2\n")
	meshtest.WaitDetached(t) // the push's converge is done: nothing catches c up but the sync below

	// c is placed as a third holder, as a move's first step does.
	d := c.DB()
	if _, err := d.Exec(`INSERT INTO holders (repository_id, device_id)
		SELECT r.id, v.id FROM repositories r, devices v WHERE r.name = 'team/app' AND v.name = 'c'`); err != nil {
		t.Fatal(err)
	}
	out := c.MustAdmin("status", "team/app")
	if !regexp.MustCompile(`(?m)^team/app +c +- +2 +no \(no version recorded yet`).MatchString(out) {
		t.Errorf("status does not list holder c as lagging with no version:\n%s", out)
	}
	if !strings.Contains(out, "team/app: 2 of 3 devices hold the newest version, quorum 2\n") {
		t.Errorf("status does not count c among the holders:\n%s", out)
	}
	var rows []struct {
		Device     string `json:"device"`
		Version    int64  `json:"version"`
		Lag        int64  `json:"lag"`
		Holders    int    `json:"holders"`
		HoldNewest int    `json:"hold_newest"`
	}
	js := c.MustAdmin("status", "--json", "team/app")
	if err := json.Unmarshal([]byte(js), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js)
	}
	if len(rows) != 3 || rows[2].Device != "c" || rows[2].Version != -1 || rows[2].Lag != 2 || rows[2].Holders != 3 || rows[2].HoldNewest != 2 {
		t.Errorf("status --json, want c at version -1, lag 2, 2 of 3 holders at the newest:\n%s", js)
	}
	r := c.Admin("check", "--no-probe", "--lag-warn", "0s")
	if r.Code != 1 || !strings.Contains(r.Stdout, "WARNING: team/app on device c has no version recorded yet") {
		t.Errorf("check --lag-warn 0s: exit %d, want 1 (warning) naming c:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	m := scrape(t, c)
	if v := value(t, m, "gitmesh_copy_version", "repository", "team/app", "device", "c"); v != -1 {
		t.Errorf("gitmesh_copy_version of c = %v, want -1", v)
	}
	if v := value(t, m, "gitmesh_copy_version_lag", "repository", "team/app", "device", "c"); v != 2 {
		t.Errorf("gitmesh_copy_version_lag of c = %v, want 2", v)
	}
	if v := value(t, m, "gitmesh_repository_hold_newest", "repository", "team/app"); v != 2 {
		t.Errorf("gitmesh_repository_hold_newest = %v, want 2", v)
	}
	if out := c.MustAdmin("verify", "team/app"); !strings.Contains(out, "team/app on c: no version recorded yet") {
		t.Errorf("verify does not name holder c as not caught up:\n%s", out)
	}

	// c catches up; then b stops being a holder, its version row left.
	if r := c.Devices["c"].Run(nil, "sync", "team/app"); r.Code != 0 {
		t.Fatalf("sync on c: exit %d: %s", r.Code, r.Stderr)
	}
	waitStatus(t, c, "team/app", "team/app: 3 of 3 devices hold the newest version, quorum 2\n")
	if _, err := d.Exec(`DELETE FROM holders WHERE device_id = (SELECT id FROM devices WHERE name = 'b')`); err != nil {
		t.Fatal(err)
	}
	out = c.MustAdmin("status", "team/app")
	if regexp.MustCompile(`(?m)^team/app +b `).MatchString(out) || !strings.Contains(out, "team/app: 2 of 2 devices hold the newest version, quorum 2\n") {
		t.Errorf("status still speaks of b, no longer a holder:\n%s", out)
	}
	if r := c.Admin("check", "--no-probe", "--lag-warn", "0s"); r.Code != 0 {
		t.Errorf("check after b left the holders: exit %d, want 0:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if out := c.MustAdmin("verify", "team/app"); !strings.Contains(out, "team/app: 2 copies match their recorded versions") {
		t.Errorf("verify reads other copies than the holders':\n%s", out)
	}
}

// waitStatus waits until `gitmesh status repo` says want (a push's
// converge records the other holders' versions just after it answers),
// and fails the test after 30 seconds.
func waitStatus(t *testing.T, c *meshtest.Cluster, repo, want string) {
	t.Helper()
	var out string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out = c.MustAdmin("status", repo); strings.Contains(out, want) {
			return
		}
	}
	t.Fatalf("status never said %q within 30s:\n%s", want, out)
}

// Whether unreachable devices refuse pushes depends on each repository's
// holders, not on the devices in all: with five devices and team/app on
// a, b and c, d and e away leave every quorum reachable (a warning), but
// b and c away leave team/app one holder of the two its pushes need
// (critical), as metrics --probe says too.
func TestCheckCountsReachableHolders(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c", "d", "e")
	if r := c.Devices["a"].Run(nil, "repo", "create", "team/app"); r.Code != 0 || strings.TrimSpace(r.Stdout) == "" {
		t.Fatalf("repo create: exit %d: %s", r.Code, r.Stderr)
	}
	if out := c.MustAdmin("status", "team/app"); !strings.Contains(out, "team/app: 3 of 3 devices hold the newest version, quorum 2") ||
		!regexp.MustCompile(`(?m)^team/app +c `).MatchString(out) {
		t.Fatalf("team/app is not on a, b and c:\n%s", out)
	}
	breakURL(t, c, "d")
	breakURL(t, c, "e")
	wantCheck(t, "d and e unreachable", check(t, c), 1, "WARNING: device d is unreachable")
	m := scrapeProbe(t, c)
	if got := value(t, m, "gitmesh_repository_holders_up", "repository", "team/app"); got != 3 {
		t.Errorf("gitmesh_repository_holders_up with d and e away = %v, want 3", got)
	}
	restoreURLs(t, c)
	breakURL(t, c, "b")
	breakURL(t, c, "c")
	wantCheck(t, "b and c unreachable", check(t, c), 2,
		"CRITICAL: device b is unreachable: ")
	wantCheck(t, "b and c unreachable", check(t, c), 2,
		"pushes are refused to 1 repository(ies) whose reachable holders are fewer than the write quorum: team/app)")
	m = scrapeProbe(t, c)
	for name, want := range map[string]float64{"gitmesh_repository_holders_up": 1, "gitmesh_repository_holders": 3, "gitmesh_repository_quorum": 2} {
		if got := value(t, m, name, "repository", "team/app"); got != want {
			t.Errorf("%s with b and c away = %v, want %v", name, got, want)
		}
	}
}

// scrapeProbe is scrape with --probe.
func scrapeProbe(t *testing.T, c *meshtest.Cluster) map[string]*dto.MetricFamily {
	t.Helper()
	out := c.MustAdmin("metrics", "--probe")
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses gitmesh metrics --probe: %v\n%s", err, out)
	}
	return families
}
