package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

const zeroID = "0000000000000000000000000000000000000000"

type logEntry struct {
	User, Device, Ref, Old, New string
	Version                     int64
}

// refsOnly drops entries for HEAD: the write protocol may log HEAD's move
// along with the branch it points to.
func refsOnly(log []logEntry) []logEntry {
	var out []logEntry
	for _, e := range log {
		if strings.HasPrefix(e.Ref, "refs/") {
			out = append(out, e)
		}
	}
	return out
}

func readLog(t *testing.T, c *meshtest.Cluster, args ...string) []logEntry {
	t.Helper()
	var out []logEntry
	if err := json.Unmarshal([]byte(c.MustAdmin(append([]string{"log", "--json"}, args...)...)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every accepted ref update shows up in `gitmesh log`, newest first, with
// user, device, ref, old and new values.
func TestPushLog(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	a, b := c.Devices["a"], c.Devices["b"]
	c.CreateRepo("a", "team/app", "alice", "bob")
	url := meshtest.URL("team/app")
	if got := readLog(t, c, "team/app"); len(got) != 0 {
		t.Fatalf("log of a new repository: %+v", got)
	}

	work := c.Work("alice")
	first := c.Commit(work, "README", "one\n")
	a.MustGit("alice", work, "push", "-q", url, "main")
	second := c.Commit(work, "README", "two\n")
	b.MustGit("bob", work, "push", "-q", url, "main", "main:topic")
	b.MustGit("bob", work, "push", "-q", url, ":topic")

	got := refsOnly(readLog(t, c, "/team/app.git"))
	want := []logEntry{
		{User: "bob", Device: "b", Ref: "refs/heads/topic", Old: second, New: zeroID},
		{User: "bob", Device: "b", Ref: "refs/heads/main", Old: first, New: second},
		{User: "bob", Device: "b", Ref: "refs/heads/topic", Old: zeroID, New: second},
		{User: "alice", Device: "a", Ref: "refs/heads/main", Old: zeroID, New: first},
	}
	if len(got) != len(want) {
		t.Fatalf("log has %d entries, want %d: %+v", len(got), len(want), got)
	}
	prev := int64(1 << 62)
	for i, e := range got {
		if e.Version < 1 || e.Version > prev {
			t.Errorf("log entry %d has version %d; want versions >= 1, newest first: %+v", i, e.Version, got)
		}
		prev = e.Version
		got[i].Version = 0
	}
	// The two refs of bob's first push may be recorded in either order
	// (one transaction or one per ref, as git decides).
	if got[1].Ref > got[2].Ref {
		got[1], got[2] = got[2], got[1]
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("log entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	// The text form: a header, then one line per update, newest first.
	text := c.MustAdmin("log", "team/app")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if !strings.Contains(l, " HEAD ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("log text:\n%s", text)
	}
	for _, w := range []string{"bob", " b ", "delete", "refs/heads/topic", second, zeroID} {
		if !strings.Contains(lines[1], w) {
			t.Errorf("newest log line %q lacks %q", lines[1], w)
		}
	}
	for _, w := range []string{"alice", " a ", "create", "refs/heads/main", first} {
		if !strings.Contains(lines[4], w) {
			t.Errorf("oldest log line %q lacks %q", lines[4], w)
		}
	}
	all := readLog(t, c, "team/app")
	if got := readLog(t, c, "team/app", "--limit", "1"); len(got) != 1 || got[0] != all[0] {
		t.Errorf("log --limit 1 = %+v, want the newest of %+v", got, all)
	}

	// A push that changes nothing (or is refused) logs nothing.
	if r := a.Git("alice", work, "push", "-q", url, "main"); r.Code != 0 {
		t.Fatalf("no-op push: %s", r.Stderr)
	}
	c.User("mallory")
	a.Git("mallory", work, "push", "-q", url, "main:evil")
	if got := readLog(t, c, "team/app"); len(got) != len(all) {
		t.Errorf("no-op and refused pushes were logged: %+v", got)
	}

	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"log", "team/missing"}, 3, `repository "team/missing" is not registered; 'gitmesh repo list' lists the registered ones`},
		{[]string{"log", "../etc"}, 2, "bad repository name"},
		{[]string{"log"}, 2, "takes 1 argument"},
		{[]string{"log", "team/app", "--limit", "-3"}, 2, "--limit takes"},
		{[]string{"log", "team/app", "--limit", "x"}, 2, "--limit takes"},
	} {
		r := c.Admin(tt.args...)
		what := strings.Join(tt.args, " ")
		if r.Code != tt.code || !strings.Contains(r.Stderr, tt.msg) || r.Stdout != "" {
			t.Errorf("gitmesh %s: exit %d, stdout %q, stderr %q; want exit %d saying %q", what, r.Code, r.Stdout, r.Stderr, tt.code, tt.msg)
		}
		oneLine(t, what, r.Stderr)
	}
}
