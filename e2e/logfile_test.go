package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// Every line of gitmesh's log file is a JSON object that names each field
// once: a push and a catch-up log the repository and the user once each.
func TestLogFileLinesNameEachFieldOnce(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.Commit(work, "README", "two\n")
	c.Devices["b"].MustGit("alice", work, "push", "-q", url, "main") // b catches up, then pushes
	c.Devices["a"].MustGit("alice", "", "ls-remote", url)            // a catches up

	recorded := 0
	for _, dev := range []string{"a", "b"} {
		b, err := os.ReadFile(c.Devices[dev].Log)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if err := onceEach(line); err != nil {
				t.Errorf("%s: log line %s: %v", dev, line, err)
				continue
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(line), &obj); err != nil {
				t.Fatal(err)
			}
			if obj["message"] == "recorded push" {
				recorded++
				if obj["repo"] != "team/app" || obj["user"] != "alice" || obj["verb"] != "git-receive-pack" {
					t.Errorf("%s: push line without repo, user and verb: %s", dev, line)
				}
			}
			if obj["op"] != nil && obj["repo"] != "team/app" {
				t.Errorf("%s: %v line without repo: %s", dev, obj["op"], line)
			}
		}
	}
	if recorded != 2 {
		t.Errorf("found %d 'recorded push' lines, want 2", recorded)
	}
}

// onceEach reads one JSON object and fails on a key given twice.
func onceEach(line string) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(line)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		k := tok.(string)
		if seen[k] {
			return fmt.Errorf("field %q twice", k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
	}
	return nil
}
