package pushlog

import (
	"encoding/json"
	"testing"
	"time"
)

const zero = "0000000000000000000000000000000000000000"

// log --json carries every documented field, action included, and names
// exactly as stored.
func TestEntryJSON(t *testing.T) {
	for _, tc := range []struct {
		old, new, action string
	}{
		{zero, "1111111111111111111111111111111111111111", "create"},
		{"1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222", "update"},
		{"2222222222222222222222222222222222222222", zero, "delete"},
	} {
		e := Entry{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), User: "alice", Device: "a",
			Ref: "refs/heads/\u202eniam\u009b", Old: tc.old, New: tc.new, Version: 7}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"time": "2026-01-02T03:04:05Z", "user": "alice", "device": "a", "ref": e.Ref,
			"old": tc.old, "new": tc.new, "version": float64(7), "action": tc.action}
		if len(got) != len(want) {
			t.Errorf("%s: fields %v, want %v", b, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v", b, k, got[k], v)
			}
		}
	}
}
