package metrics

import (
	"bufio"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// The text exposition format (version 0.0.4) is written here rather than
// with client_golang and expfmt: linking those (with protobuf and
// net/http) into the one gitmesh binary slowed the start of every
// `gitmesh serve` by milliseconds, the fast path included, for a command
// run once a minute. The tests read the output with Prometheus's own
// parser.

// family is one metric: its HELP, its TYPE (counter for a name ending
// in _total, gauge otherwise) and its series.
type family struct {
	name, help string
	labels     []string
	series     []series
}

type series struct {
	values []string // one per label
	v      float64
}

// collector gathers families read beforehand, so that a query that fails
// fails the command and nothing is written.
type collector struct{ families []*family }

// desc declares a metric.
func (c *collector) desc(name, help string, labels ...string) *family {
	f := &family{name: name, help: help, labels: labels}
	c.families = append(c.families, f)
	return f
}

// add gives f one series.
func (c *collector) add(f *family, v float64, values ...string) {
	f.series = append(f.series, series{values: values, v: v})
}

func (f *family) kind() string {
	if strings.HasSuffix(f.name, "_total") {
		return "counter"
	}
	return "gauge"
}

// writeText writes every family that has a series, families by name and
// series by label values, as Prometheus's own encoder orders them.
func (c *collector) writeText(w io.Writer) error {
	fams := append([]*family{}, c.families...)
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })
	b := bufio.NewWriter(w)
	for _, f := range fams {
		if len(f.series) == 0 {
			continue
		}
		b.WriteString("# HELP " + f.name + " " + helpEscaper.Replace(f.help) + "\n")
		b.WriteString("# TYPE " + f.name + " " + f.kind() + "\n")
		// Most families arrive in order (status's rows are sorted): a
		// check is one pass, a sort many.
		if !sort.SliceIsSorted(f.series, func(i, j int) bool { return less(f.series[i].values, f.series[j].values) }) {
			sort.SliceStable(f.series, func(i, j int) bool { return less(f.series[i].values, f.series[j].values) })
		}
		for _, s := range f.series {
			b.WriteString(f.name)
			if len(f.labels) > 0 {
				b.WriteByte('{')
				for i, l := range f.labels {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(l + `="` + labelEscaper.Replace(s.values[i]) + `"`)
				}
				b.WriteByte('}')
			}
			b.WriteString(" " + formatValue(s.v) + "\n")
		}
	}
	return b.Flush()
}

// less orders label values as their join with NUL separators would,
// without building the strings (a scrape of 10,000 repositories sorts
// hundreds of thousands of series).
func less(a, b []string) bool {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
