package admin

import (
	"errors"
	"strings"
	"testing"
)

const (
	sha1 = "1111111111111111111111111111111111111111"
	sha2 = "2222222222222222222222222222222222222222"
)

// A source that cannot be read is said to be unreadable, not taken for a
// copy without refs: that would list every ref of the other as lost.
func TestPrintDiffUnreadableSource(t *testing.T) {
	var out strings.Builder
	loser := copyRefs{device: "b", refs: map[string]string{"refs/heads/main": sha1}}
	winner := copyRefs{device: "a", err: errors.New("exit status 128")}
	if n := printDiff(&out, "team/app", loser, winner); n != 1 {
		t.Errorf("printDiff counted %d problems, want 1", n)
	}
	got := out.String()
	if strings.Contains(got, "would discard") || !strings.Contains(got, "cannot read the copy of team/app on a") {
		t.Fatalf("printDiff with an unreadable source:\n%s", got)
	}
}

// Ref names reach the operator's terminal escaped: no control character,
// C1 control, bidirectional override or invalid UTF-8 gets through raw.
func TestPrintDiffEscapesRefNames(t *testing.T) {
	var out strings.Builder
	loser := copyRefs{device: "b", refs: map[string]string{
		"refs/heads/\u202eniam":   sha1,
		"refs/heads/csi\u009b2J":  sha1,
		"refs/heads/bad\xff":      sha1,
		"refs/heads/\u2066iso":    sha1,
		"refs/heads/plain-branch": sha1,
	}}
	winner := copyRefs{device: "a", refs: map[string]string{"refs/heads/plain-branch": sha2}}
	if n := printDiff(&out, "team/app", loser, winner); n != 5 {
		t.Errorf("printDiff counted %d refs, want 5", n)
	}
	got := out.String()
	for _, want := range []string{`refs/heads/\u202eniam`, `refs/heads/csi\u009b2J`, `refs/heads/bad\xff`, `refs/heads/\u2066iso`,
		"refs/heads/plain-branch " + sha1 + " (becomes " + sha2} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s:\n%s", want, got)
		}
	}
	for _, raw := range []string{"\u202e", "\u009b", "\xff", "\u2066"} {
		if strings.Contains(got, raw) {
			t.Errorf("output holds %q raw:\n%s", raw, got)
		}
	}
}
