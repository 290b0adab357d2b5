package gitexec

import (
	"errors"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// Every entry of the hostile corpus is refused by the parser (exit 2), or
// parses to a valid name confined below the root that the database does not
// know (exit 3). The e2e tests run the same corpus against the binary.
func TestHostileCorpus(t *testing.T) {
	corpus, err := meshtest.LoadHostile("../testdata/hostile-commands.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(corpus) < 100 {
		t.Fatalf("the hostile corpus holds %d entries, want at least 100", len(corpus))
	}
	seen := map[string]int{}
	for _, h := range corpus {
		if prev, dup := seen[h.Cmd]; dup {
			t.Errorf("%s repeats line %d", h, prev)
		}
		seen[h.Cmd] = h.Line
		cmd, err := ParseCommand(h.Cmd)
		switch h.Exit {
		case 2:
			if err == nil {
				t.Errorf("%s: accepted as %+v", h, cmd)
				continue
			}
			if !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrBadName) {
				t.Errorf("%s: %v is not a bad command or name", h, err)
			}
			if !strings.Contains(err.Error(), h.Stderr) {
				t.Errorf("%s: %q does not say %q", h, err, h.Stderr)
			}
		case 3:
			if err != nil {
				t.Errorf("%s: %v, want it parsed to %s", h, err, h.Repo)
				continue
			}
			if cmd.Repo != h.Repo {
				t.Errorf("%s: parsed to %s, want %s", h, cmd.Repo, h.Repo)
			}
			checkName(t, h.Cmd, cmd.Repo)
		default:
			t.Errorf("%s: exit %d is not an outcome of the parser (2) or of an unknown name (3)", h, h.Exit)
		}
	}
}
