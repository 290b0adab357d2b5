package meshtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Hostile is one entry of testdata/hostile-commands.jsonl: an
// SSH_ORIGINAL_COMMAND value and what serve must answer. The file's header
// describes the format.
type Hostile struct {
	Line   int    `json:"-"`
	Cmd    string `json:"cmd"`
	Exit   int    `json:"exit"`
	Stderr string `json:"stderr"`
	Repo   string `json:"repo"`
	Why    string `json:"why"`
}

func (h Hostile) String() string { return fmt.Sprintf("line %d (%s) %q", h.Line, h.Why, h.Cmd) }

// LoadHostile reads a hostile corpus: one JSON object per line, blank lines
// and lines starting with # ignored, unknown fields refused.
func LoadHostile(path string) ([]Hostile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Hostile
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		h := Hostile{Line: n}
		if err := dec.Decode(&h); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if h.Exit == 0 || h.Why == "" || h.Stderr == "" || (h.Exit == 3) != (h.Repo != "") {
			return nil, fmt.Errorf("%s:%d: an entry needs exit (non-zero), stderr and why, and repo exactly when exit is 3", path, n)
		}
		out = append(out, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
