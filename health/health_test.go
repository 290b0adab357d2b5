package health

import (
	"encoding/json"
	"testing"
)

// The report's status is its worst problem, problems worst first, and
// JSON names statuses as monitoring systems do.
func TestReportOrdersByWorst(t *testing.T) {
	var r Report
	r.add(Problem{Severity: Warning, Kind: "lagging"})
	r.add(Problem{Severity: Critical, Kind: "frozen"})
	r.add(Problem{Severity: Warning, Kind: "unreachable"})
	r.sort()
	if r.Status != Critical || int(r.Status) != 2 {
		t.Fatalf("status %v (%d), want critical (2)", r.Status, r.Status)
	}
	var kinds []string
	for _, p := range r.Problems {
		kinds = append(kinds, p.Kind)
	}
	if got := kinds; len(got) != 3 || got[0] != "frozen" || got[1] != "lagging" || got[2] != "unreachable" {
		t.Fatalf("order %v, want frozen first, warnings after in the order found", got)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Status   string
		Problems []struct{ Severity string }
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Status != "critical" || back.Problems[1].Severity != "warning" {
		t.Fatalf("JSON %s: %v", b, err)
	}
	for s, want := range map[Severity]int{OK: 0, Warning: 1, Critical: 2, Unknown: 3} {
		if int(s) != want {
			t.Errorf("%v is %d, want Nagios's %d", s, s, want)
		}
	}
}
