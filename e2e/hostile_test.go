package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// serveAs runs `gitmesh serve USER` on device d as sshd would, with
// SSH_ORIGINAL_COMMAND set to cmd and extra environment.
func serveAs(d *meshtest.Device, user, cmd string, env ...string) meshtest.Result {
	return d.Run(append([]string{"SSH_ORIGINAL_COMMAND=" + cmd}, env...), "serve", user)
}

// gitSpy puts a git wrapper first on a PATH that records every run in a
// file before running the real git. It returns the PATH setting for serve
// and a function that reports (and forgets) what ran.
func gitSpy(t *testing.T) (pathEnv string, ran func() string) {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	script := "#!/bin/sh\necho \"git $*\" >> '" + mark + "'\nexec '" + real + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + ":" + os.Getenv("PATH"), func() string {
		b, _ := os.ReadFile(mark)
		os.Remove(mark)
		return string(b)
	}
}

// dbState renders what a serve run could change in the database.
func dbState(t *testing.T, c *meshtest.Cluster) string {
	t.Helper()
	var s string
	err := c.DB().QueryRow(`SELECT concat_ws(' | ',
		(SELECT count(*) FROM repositories), (SELECT count(*) FROM push_log), (SELECT count(*) FROM sync_log),
		(SELECT count(*) FROM grants), (SELECT count(*) FROM users),
		(SELECT string_agg(concat_ws(':', repository_id, device_id, version, is_writing, refs_digest, updated_at), ',' ORDER BY id)
		 FROM working_copy_versions))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// oneLine checks serve's stderr: exactly one line, "gitmesh: ..." and short.
func oneLine(t *testing.T, what, stderr string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.HasPrefix(stderr, "gitmesh: ") || len(stderr) > 400 {
		t.Errorf("%s: stderr is not one clear line: %q", what, stderr)
	}
}

// Every corpus entry, run through the real binary as user alice (who may
// write team/app): the expected exit, one clear line on stderr, nothing on
// stdout, no file created or changed under the device (repo root, config,
// scripts) or in serve's working directory, the database unchanged, and no
// git process started.
func TestHostileCorpusAgainstServe(t *testing.T) {
	corpus, err := meshtest.LoadHostile("../testdata/hostile-commands.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	c := meshtest.NewCluster(t, "a")
	a := c.Devices["a"]
	c.CreateRepo("a", "team/app", "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	a.MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	pathEnv, ran := gitSpy(t)

	// The spy works: a good command runs git through it.
	if r := serveAs(a, "alice", "git-upload-pack 'team/app'", pathEnv); !strings.Contains(ran(), "upload-pack") {
		t.Fatalf("the git spy did not see a good fetch (exit %d, %s)", r.Code, r.Stderr)
	}

	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	skipLogs := func(p string) bool { return strings.HasSuffix(p, ".log") }
	snap := func() (map[string]string, map[string]string) {
		dev, err := meshtest.Snapshot(c.Dir, skipLogs)
		if err != nil {
			t.Fatal(err)
		}
		here, err := meshtest.Snapshot(cwd, nil)
		if err != nil {
			t.Fatal(err)
		}
		return dev, here
	}
	devBefore, hereBefore := snap()
	stateBefore := dbState(t, c)
	_, ownedErr := os.Lstat("/tmp/owned")
	ran2 := 0
	for _, h := range corpus {
		if strings.ContainsRune(h.Cmd, 0) {
			continue // an environment cannot carry NUL; the parser test covers these
		}
		ran2++
		r := serveAs(a, "alice", h.Cmd, pathEnv)
		if r.Code != h.Exit {
			t.Errorf("%s: exit %d, want %d (stderr %q)", h, r.Code, h.Exit, r.Stderr)
		}
		if !onlyRefusal(r) {
			t.Errorf("%s: wrote on stdout more than its refusal: %q", h, r.Stdout)
		}
		oneLine(t, h.String(), r.Stderr)
		if !strings.Contains(r.Stderr, h.Stderr) {
			t.Errorf("%s: stderr %q does not say %q", h, r.Stderr, h.Stderr)
		}
		if g := ran(); g != "" {
			t.Errorf("%s: started git: %s", h, g)
		}
	}
	if ran2 < 100 {
		t.Fatalf("only %d corpus entries ran against serve", ran2)
	}
	devAfter, hereAfter := snap()
	if d := meshtest.SnapshotDiff(devBefore, devAfter); len(d) > 0 {
		t.Errorf("the hostile corpus changed files under the cluster:\n%s", meshtest.SnapshotString(d))
	}
	if d := meshtest.SnapshotDiff(hereBefore, hereAfter); len(d) > 0 {
		t.Errorf("the hostile corpus changed files in serve's working directory:\n%s", meshtest.SnapshotString(d))
	}
	if s := dbState(t, c); s != stateBefore {
		t.Errorf("the hostile corpus changed the database:\nbefore %s\nafter  %s", stateBefore, s)
	}
	if _, err := os.Lstat("/tmp/owned"); err == nil && ownedErr != nil {
		t.Errorf("the hostile corpus created /tmp/owned")
	}
}
