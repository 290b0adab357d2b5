package gitexec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func pkts(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%04x%s", len(l)+4, l)
	}
	return b.String() + "0000"
}

func TestParseArchiveRequest(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		refused  bool
	}{
		{"branch", pkts("argument --format=tar", "argument main", "argument README"), false},
		{"prefix option", pkts("argument --prefix=gitmesh/", "argument main"), false},
		{"path after a branch", pkts("argument main:docs", "argument src"), false},
		{"stage by full name", pkts("argument refs/gitmesh/stage/heads/main"), true},
		{"stage by short name", pkts("argument gitmesh/stage/heads/main"), true},
		{"stage with a path", pkts("argument refs/gitmesh/stage/heads/main:README"), true},
		{"stage with a suffix", pkts("argument --format=zip", "argument gitmesh/stage/heads/main^{tree}"), true},
		{"the namespace itself", pkts("argument refs/gitmesh"), true},
		{"newline-terminated", pkts("argument gitmesh/stage/heads/main\n"), true},
		{"too many", pkts(strings.Split(strings.Repeat("argument x,", 65), ",")[:65]...), true},
	} {
		raw, err := ParseArchiveRequest(strings.NewReader(tc.in + "trailing bytes stay unread"))
		if tc.refused {
			if !errors.Is(err, ErrBadCommand) || raw != nil {
				t.Errorf("%s: got %q, %v; want a refusal", tc.name, raw, err)
			}
			continue
		}
		if err != nil || string(raw) != tc.in {
			t.Errorf("%s: got %q, %v; want the request as read", tc.name, raw, err)
		}
	}
	// What git's client would not send is passed on as read, for git to refuse.
	for _, in := range []string{"", "00", "zzzz", "0009hello", "000aargu"} {
		raw, err := ParseArchiveRequest(strings.NewReader(in))
		if err != nil || !bytes.Equal(raw, []byte(in)) {
			t.Errorf("%q: got %q, %v; want it passed on", in, raw, err)
		}
	}
}

func FuzzParseArchiveRequest(f *testing.F) {
	f.Add(pkts("argument main", "argument README"))
	f.Add(pkts("argument gitmesh/stage/heads/main"))
	f.Fuzz(func(t *testing.T, in string) {
		raw, err := ParseArchiveRequest(strings.NewReader(in))
		if err != nil {
			return
		}
		if !strings.HasPrefix(in, string(raw)) || len(raw) > maxArchiveBytes {
			t.Fatalf("passed on %q, not a prefix of the input within the bound", raw)
		}
		// Every complete "argument" packet passed on names no hidden ref.
		for rest := string(raw); len(rest) >= 4; {
			var size int
			if _, err := fmt.Sscanf(rest[:4], "%04x", &size); err != nil || size < 5 || size > len(rest) {
				break
			}
			if arg, ok := strings.CutPrefix(strings.TrimSuffix(rest[4:size], "\n"), "argument "); ok && NamesHidden(arg) {
				t.Fatalf("passed on a request naming refs/gitmesh/: %q", raw)
			}
			rest = rest[size:]
		}
	})
}
