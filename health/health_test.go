package health

import (
	"encoding/json"
	"strings"
	"testing"
)

// A report's status is its worst problem, its problems are ordered worst
// first and otherwise as found, and JSON names statuses as monitoring
// systems do. (The exit codes themselves are checked end to end, in
// e2e's TestCheckExitCodes.)
func TestReportOrdersByWorst(t *testing.T) {
	p := func(sev Severity, kind string) Problem { return Problem{Severity: sev, Kind: kind} }
	for _, tt := range []struct {
		name     string
		found    []Problem
		status   Severity
		order    string // kinds, worst first
		jsonText string // the status as JSON names it
	}{
		{"nothing found", nil, OK, "", "ok"},
		{"one warning", []Problem{p(Warning, "lagging")}, Warning, "lagging", "warning"},
		{"a critical found between warnings",
			[]Problem{p(Warning, "lagging"), p(Critical, "frozen"), p(Warning, "unreachable")},
			Critical, "frozen lagging unreachable", "critical"},
		{"criticals keep the order found",
			[]Problem{p(Warning, "not_probed"), p(Critical, "below_quorum"), p(Critical, "frozen"), p(Warning, "lagging")},
			Critical, "below_quorum frozen not_probed lagging", "critical"},
		{"unknown is worse than critical",
			[]Problem{p(Critical, "frozen"), p(Unknown, "unknown")},
			Unknown, "unknown frozen", "unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := Report{Problems: []Problem{}}
			for _, found := range tt.found {
				r.add(found)
			}
			r.sort()
			var kinds []string
			for _, p := range r.Problems {
				kinds = append(kinds, p.Kind)
			}
			if r.Status != tt.status || strings.Join(kinds, " ") != tt.order {
				t.Fatalf("status %v, order %q; want %v, %q", r.Status, kinds, tt.status, tt.order)
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				Status   string
				Problems []struct{ Severity, Kind string }
			}
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("JSON %s: %v", b, err)
			}
			if back.Status != tt.jsonText || back.Problems == nil || len(back.Problems) != len(tt.found) {
				t.Fatalf("JSON %s: want status %q and %d problems (an empty list, not null, when none)", b, tt.jsonText, len(tt.found))
			}
			for i, p := range back.Problems {
				if p.Severity != r.Problems[i].Severity.String() || p.Kind != r.Problems[i].Kind {
					t.Errorf("JSON problem %d: %+v, want %v %s", i, p, r.Problems[i].Severity, r.Problems[i].Kind)
				}
			}
		})
	}
}
