package cli

import (
	"strings"
	"testing"
	"time"

	"gitmesh/pushlog"
)

// log's text form escapes what users chose: ref names with C0 or C1
// controls, bidirectional overrides or isolates, or bytes that are not
// UTF-8 reach the terminal as escapes, never raw.
func TestPrintLogEscapes(t *testing.T) {
	zero := strings.Repeat("0", 40)
	one := strings.Repeat("1", 40)
	entries := []pushlog.Entry{
		{Time: time.Unix(0, 0), User: "alice", Device: "a", Ref: "refs/heads/\u202eniam", Old: zero, New: one, Version: 1},
		{Time: time.Unix(0, 0), User: "alice", Device: "a", Ref: "refs/heads/csi\u009b2J", Old: zero, New: one, Version: 1},
		{Time: time.Unix(0, 0), User: "alice", Device: "a", Ref: "refs/heads/esc\x1b[31m", Old: zero, New: one, Version: 1},
		{Time: time.Unix(0, 0), User: "alice", Device: "a", Ref: "refs/heads/iso\u2067x", Old: zero, New: one, Version: 1},
		{Time: time.Unix(0, 0), User: "bob\u202e", Device: "", Ref: "refs/heads/bad\xff", Old: one, New: zero, Version: 2},
	}
	var out strings.Builder
	if err := printLog(&out, entries); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{`refs/heads/\u202eniam`, `refs/heads/csi\u009b2J`, `refs/heads/esc\x1b[31m`,
		`refs/heads/iso\u2067x`, `refs/heads/bad\xff`, `bob\u202e`, "(deleted)", "create", "delete"} {
		if !strings.Contains(got, want) {
			t.Errorf("log text lacks %s:\n%s", want, got)
		}
	}
	for _, raw := range []string{"\u202e", "\u009b", "\x1b", "\u2067", "\xff"} {
		if strings.Contains(got, raw) {
			t.Errorf("log text holds %q raw:\n%s", raw, got)
		}
	}
}
