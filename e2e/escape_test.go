package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// Ref names a user chose reach an operator's terminal escaped, in log and
// thaw alike: a right-to-left override, a C1 control (CSI, U+009B) or an
// isolate is printed as an escape, never raw. log --json keeps them exact.
func TestLogAndThawEscapeRefNames(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	refs := map[string]string{ // as pushed -> as printed
		"refs/heads/\u202eniam":  `refs/heads/\u202eniam`,
		"refs/heads/csi\u009b2J": `refs/heads/csi\u009b2J`,
		"refs/tags/\u2066iso":    `refs/tags/\u2066iso`,
	}
	for ref := range refs {
		c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main:"+ref)
	}

	text := c.MustAdmin("log", "team/app")
	for ref, printed := range refs {
		if strings.Contains(text, ref) || !strings.Contains(text, printed) {
			t.Errorf("log text shows %q raw or lacks %s:\n%s", ref, printed, text)
		}
	}
	var entries []map[string]any
	if err := json.Unmarshal([]byte(c.MustAdmin("log", "--json", "team/app")), &entries); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		ref, _ := e["ref"].(string)
		seen[ref] = true
		if e["action"] != "create" {
			t.Errorf("log --json entry %v: action %v, want create", e, e["action"])
		}
	}
	for ref := range refs {
		if !seen[ref] {
			t.Errorf("log --json lacks %q exactly: %v", ref, entries)
		}
	}

	// A write on b left a stray ref with such a name; thaw lists it escaped.
	c.Devices["b"].MustGit("alice", "", "ls-remote", url)
	stray := "refs/heads/\u202estray\u009b"
	freeze(t, c, "team/app", "b", work)
	c.LocalGit(work, "push", "-q", filepath.Join(c.Devices["b"].Root, "team/app.git"), "main:"+stray)
	r := c.Admin("thaw", "team/app", "--demote", "b")
	if r.Code == 0 || !strings.Contains(r.Stdout, `would discard on b: refs/heads/\u202estray\u009b`) {
		t.Fatalf("thaw of a stray ref: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, raw := range []string{"\u202e", "\u009b", "\u2066"} {
		if strings.Contains(r.Stdout+r.Stderr, raw) {
			t.Errorf("thaw prints %q raw:\n%s%s", raw, r.Stdout, r.Stderr)
		}
	}
}

// sync-log prints with the same escaping as log and thaw: a zero-width
// space or joiner hidden in a recorded result (a peer's error text) is
// shown as an escape, as are controls and bidirectional overrides.
func TestSyncLogEscapesLikeLog(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	pushed(t, c)
	const result = "fetch failed: x\u200by\u200dz \u202eevil\x1b[2J"
	if _, err := c.DB().Exec(`INSERT INTO sync_log (repository_id, device_id, from_device, from_version, to_version, duration_ms, result, kind)
		SELECT r.id, d.id, NULL, 0, 0, 1, $1, 'fetch' FROM repositories r, devices d WHERE r.name = 'team/app' AND d.name = 'b'`, result); err != nil {
		t.Fatal(err)
	}
	text := c.MustAdmin("sync-log", "team/app")
	want := `fetch failed: x\u200by\u200dz \u202eevil\x1b[2J`
	if !strings.Contains(text, want) || strings.ContainsAny(text, "\u200b\u200d\u202e\x1b") {
		t.Fatalf("sync-log shows a hidden character raw or lacks %s:\n%s", want, text)
	}
}
