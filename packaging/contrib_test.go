package packaging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

var (
	alertsFile    = filepath.Join(root, "contrib", "prometheus", "gitmesh-alerts.yml")
	dashboardFile = filepath.Join(root, "contrib", "grafana", "gitmesh-dashboard.json")
)

// The alert rules pass promtool, and name the problems an operator must
// hear of.
func TestAlertRulesPassPromtool(t *testing.T) {
	need(t, "promtool")
	if r := run(".", "promtool", "check", "rules", alertsFile); r.code != 0 {
		t.Fatalf("promtool check rules: exit %d\n%s", r.code, r.out)
	}
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"GitmeshRepositoryFrozen", "GitmeshBelowQuorum", "GitmeshCopiesLagging",
		"GitmeshDeviceUnreachable", "GitmeshHealsRefused", "GitmeshPushFailuresRising"} {
		if !strings.Contains(string(b), "- alert: "+name+"\n") {
			t.Errorf("%s has no alert %s", alertsFile, name)
		}
	}
}

// Every query of the dashboard and every alert rule uses only series that
// the real `gitmesh metrics --probe` prints, on a cluster that has pushed,
// fetched and probed; and the dashboard shows what it promises.
func TestDashboardAndAlertsUseOnlyGitmeshSeries(t *testing.T) {
	printed := printedFamilies(t)
	exprs := map[string][]string{alertsFile: alertExprs(t), dashboardFile: dashboardExprs(t)}
	used := map[string]bool{}
	for file, list := range exprs {
		if len(list) == 0 {
			t.Fatalf("no queries found in %s", file)
		}
		for _, e := range list {
			names := metricNames(e)
			if len(names) == 0 {
				t.Errorf("%s: query %q names no metric", file, e)
			}
			for _, n := range names {
				used[n] = true
				if !printed[n] {
					t.Errorf("%s: query %q uses %s, which gitmesh metrics does not print", file, e, n)
				}
			}
		}
	}
	for _, want := range []string{"gitmesh_copy_version", "gitmesh_copy_version_lag", "gitmesh_pushes_total",
		"gitmesh_push_seconds_total", "gitmesh_fetches_total", "gitmesh_heals_total", "gitmesh_push_lock_waits_total",
		"gitmesh_copy_frozen", "gitmesh_repository_below_quorum", "gitmesh_device_up", "gitmesh_heal_refusals_total"} {
		if !used[want] {
			t.Errorf("neither the dashboard nor the alerts use %s", want)
		}
	}
}

// The checker above finds the metric names of a query, and only those.
func TestMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`sum by (device, result) (rate(gitmesh_pushes_total{result!~"ok|unchanged"}[$__rate_interval]))`:  "gitmesh_pushes_total",
		`time() - max by (repository) (gitmesh_last_sync_timestamp_seconds) > 0.1 * nope_total offset 5m`: "gitmesh_last_sync_timestamp_seconds nope_total",
		`count(x == 1) or vector(0) and on (device) y unless ignoring(a, b) z`:                            "x y z",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// printedFamilies are the metric names `gitmesh metrics --probe` prints on
// a cluster where every kind of event happened: pushes, a staging that
// failed, a catch-up fetch.
func printedFamilies(t *testing.T) map[string]bool {
	t.Helper()
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "c is away for this one\n")
	d := c.DB()
	if _, err := d.Exec(`UPDATE devices SET url = '/nonexistent/c' WHERE name = 'c'`); err != nil {
		t.Fatal(err)
	}
	c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	meshtest.WaitDetached(t)
	if _, err := d.Exec(`UPDATE devices SET url = $1 WHERE name = 'c'`, c.Devices["c"].Root); err != nil {
		t.Fatal(err)
	}
	c.Devices["c"].MustGit("alice", "", "ls-remote", meshtest.URL("team/app")) // c fetches what it missed
	out := c.MustAdmin("metrics", "--probe")
	printed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(out, -1) {
		printed[m[1]] = true
	}
	var names []string
	for n := range printed {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("gitmesh metrics --probe prints %s", strings.Join(names, ", "))
	for _, n := range []string{"gitmesh_last_sync_timestamp_seconds", "gitmesh_device_up", "gitmesh_fetches_total"} {
		if !printed[n] {
			t.Fatalf("the test cluster's metrics lack %s:\n%s", n, out)
		}
	}
	return printed
}

// alertExprs are the rules' expr values (one line, or a | block).
func alertExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		_, e, ok := strings.Cut(l, "expr: ")
		if !ok || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if e = strings.TrimSpace(e); e == "|" || e == ">" {
			indent := len(l) - len(strings.TrimLeft(l, " "))
			var block []string
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent) {
				i++
				block = append(block, strings.TrimSpace(lines[i]))
			}
			e = strings.Join(block, " ")
		}
		out = append(out, e)
	}
	return out
}

// dashboardExprs are the expr of every target of every panel.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "expr" {
					out = append(out, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

var (
	quoted   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	matchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	numbers  = regexp.MustCompile(`\b\d[\w.]*`) // 0.1, 5m
	grouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ident    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*\s*\(?`)
	keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
)

// metricNames are the metric names a PromQL expression selects: its
// identifiers that are not functions, keywords, label names or values, or
// durations.
func metricNames(expr string) []string {
	e := quoted.ReplaceAllString(expr, " ")
	e = matchers.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	e = numbers.ReplaceAllString(e, " ")
	var out []string
	for _, m := range ident.FindAllString(e, -1) {
		if strings.HasSuffix(m, "(") {
			continue // a function or an aggregation
		}
		if n := strings.TrimSpace(m); !keywords[n] {
			out = append(out, n)
		}
	}
	return out
}
