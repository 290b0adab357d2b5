package e2e

import (
	"encoding/json"
	"testing"

	"gitmesh/meshtest"
)

// status --json carries every field the README documents: "writer" is
// null when no write is marked, not missing.
func TestStatusJSONWriterIsNullWhenIdle(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	c.WaitConverged("team/app")

	var rows []map[string]json.RawMessage
	out := c.MustAdmin("status", "--json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if len(rows) != 2 {
		t.Fatalf("status --json has %d rows, want 2:\n%s", len(rows), out)
	}
	documented := []string{"repository", "device", "version", "lag", "is_writing", "frozen", "pending",
		"writer", "updated_at", "holders", "hold_newest", "quorum", "below_quorum", "moving"}
	for _, row := range rows {
		for _, k := range documented {
			if _, ok := row[k]; !ok {
				t.Errorf("status --json row lacks %q:\n%s", k, out)
			}
		}
		if w, ok := row["writer"]; ok && string(w) != "null" {
			t.Errorf("idle copy has writer %s, want null", w)
		}
		if m, ok := row["moving"]; ok && string(m) != "null" {
			t.Errorf("a repository nobody moves has moving %s, want null", m)
		}
	}
}
