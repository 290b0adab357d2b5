package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// receive.denyDeletes and receive.denyNonFastForwards hold however git
// spells true (yes, on, 1, a bare key): gitmesh validates proc-receive
// refs itself and must refuse what receive-pack would, never let the
// policy fail open. Nothing moves on any device.
func TestReceiveDenySettingsHoldInEverySpelling(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	work, acked := pushed(t, c)
	url := meshtest.URL("team/app")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main:refs/heads/keep")
	config := filepath.Join(c.Devices["a"].Root, "team/app.git", "config")
	base, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	c.LocalGit(work, "commit", "-q", "--amend", "-m", "rewritten: not a descendant of main")
	rewritten := strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD"))

	for _, spelling := range []string{"\tdenyDeletes = yes\n\tdenyNonFastForwards = on\n", "\tdenyDeletes = 1\n\tdenyNonFastForwards = True\n", "\tdenyDeletes\n\tdenyNonFastForwards\n"} {
		if err := os.WriteFile(config, append(append([]byte{}, base...), "[receive]\n"+spelling...), 0o644); err != nil {
			t.Fatal(err)
		}
		what := strings.ReplaceAll(strings.TrimSpace(spelling), "\n\t", ", ")
		if r := c.Devices["a"].Git("alice", work, "push", url, ":refs/heads/keep"); r.Code == 0 || !strings.Contains(r.Stderr, "deletion prohibited") {
			t.Errorf("with %s a deletion was not refused: exit %d\n%s", what, r.Code, r.Stderr)
		}
		if r := c.Devices["a"].Git("alice", work, "push", "--force", url, "main"); r.Code == 0 || !strings.Contains(r.Stderr, "non-fast-forward") {
			t.Errorf("with %s a forced non-fast-forward push was not refused: exit %d\n%s", what, r.Code, r.Stderr)
		}
		for _, dev := range []string{"a", "b"} {
			out := c.Devices[dev].MustGit("alice", "", "ls-remote", url)
			if !strings.Contains(out, acked+"\trefs/heads/keep") || !strings.Contains(out, acked+"\trefs/heads/main") || strings.Contains(out, rewritten) {
				t.Fatalf("with %s, %s serves:\n%s\nwant keep and main at %s", what, dev, out, acked)
			}
		}
	}
}
