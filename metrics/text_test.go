package metrics

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
)

// What writeText writes, Prometheus's own parser reads back exactly:
// escapes in HELP and label values, counters and gauges, special values.
func TestTextParsesWithPrometheus(t *testing.T) {
	c := &collector{}
	g := c.desc("x_gauge", "a help with \\ and\nnewline", "repository", "device")
	n := c.desc("x_things_total", "a counter", "device")
	c.desc("x_empty", "no series: left out")
	c.add(g, 1.5, `we"ird\name`+"\n", "b")
	c.add(g, 1796225746.514335, "team/app", "a")
	c.add(g, math.Inf(1), "z", "a")
	c.add(n, 42, "a")
	var buf bytes.Buffer
	if err := c.writeText(&buf); err != nil {
		t.Fatal(err)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, buf.String())
	}
	if _, ok := fams["x_empty"]; ok || len(fams) != 2 {
		t.Fatalf("families %v, want x_gauge and x_things_total only", fams)
	}
	gf := fams["x_gauge"]
	if gf.GetHelp() != "a help with \\ and\nnewline" || gf.GetType().String() != "GAUGE" || len(gf.Metric) != 3 {
		t.Fatalf("x_gauge: %v", gf)
	}
	got := map[string]float64{}
	for _, m := range gf.Metric {
		got[m.Label[0].GetValue()+"|"+m.Label[1].GetValue()] = m.Gauge.GetValue()
	}
	want := map[string]float64{`we"ird\name` + "\n|b": 1.5, "team/app|a": 1796225746.514335, "z|a": math.Inf(1)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("series %q = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	cf := fams["x_things_total"]
	if cf.GetType().String() != "COUNTER" || cf.Metric[0].Counter.GetValue() != 42 {
		t.Errorf("x_things_total: %v", cf)
	}
}
