package gitexec

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gitmesh/hook"
)

// durableHelper, set in the environment, makes this test binary run one
// ref transaction (see TestHelperRefTransaction) instead of the tests, so
// that strace can watch it and every git it starts.
const durableHelper = "GITMESH_TEST_DURABLE_HELPER"

// TestHelperRefTransaction is not a test: run by traceRefTransaction, it
// performs the step named in durableHelper ("update N DIR", "push DIR URL
// BATCH HOOKS", "fetch DIR URL") and exits.
func TestHelperRefTransaction(t *testing.T) {
	spec := os.Getenv(durableHelper)
	if spec == "" {
		return
	}
	f := strings.Fields(spec)
	ctx := context.Background()
	var err error
	switch f[0] {
	case "update":
		var n int
		fmt.Sscan(f[1], &n)
		var cmds []string
		for i := 0; i < n; i++ {
			cmds = append(cmds, fmt.Sprintf("update %sheads/b%04d HEAD", Stage, i))
		}
		err = Git{}.UpdateRefs(ctx, f[2], cmds, false)
	case "push":
		err = Git{StageHooks: f[4]}.PushStage(ctx, f[1], f[2], true, f[3] == "batch")
	case "fetch":
		err = Git{}.FetchToStage(ctx, f[1], f[2], true)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// traceRefTransaction runs spec (see TestHelperRefTransaction) under
// strace -f and returns its syncs and renames, in order, each with the
// path of its file (-y).
func traceRefTransaction(t *testing.T, spec string) []string {
	t.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatal("strace is missing: run 'apt-get install -y strace' (scripts/setup.sh)")
	}
	out := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command("strace", "-f", "-y", "-qq", "-o", out, "-e", "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2",
		os.Args[0], "-test.run=^TestHelperRefTransaction$")
	cmd.Env = append(os.Environ(), durableHelper+"="+spec)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", spec, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "= 0") {
			calls = append(calls, line)
		}
	}
	return calls
}

var (
	refFsync  = regexp.MustCompile(`(fsync|fdatasync)\(\d+<[^>]*/refs/`)
	refRename = regexp.MustCompile(`rename(at2?)?\(.*/refs/gitmesh/stage/heads/b`)
	syncfs    = regexp.MustCompile(`syncfs\(\d+<`)
)

// syncs counts the fsyncs of ref files and the syncfs calls in calls,
// and tells whether a syncfs came after the last rename of a staged ref
// into place (the transaction's commit).
func syncs(calls []string) (refFsyncs, syncfses int, syncedAfterCommit bool) {
	lastRename, lastSyncfs := -1, -1
	for i, c := range calls {
		switch {
		case refFsync.MatchString(c):
			refFsyncs++
		case syncfs.MatchString(c):
			syncfses++
			lastSyncfs = i
		case refRename.MatchString(c):
			lastRename = i
		}
	}
	return refFsyncs, syncfses, lastRename >= 0 && lastSyncfs > lastRename
}

// A ref transaction is on disk when it returns: a few refs with git's own
// fsync of each ref file, many with the refs unsynced and one syncfs of
// the filesystem after the transaction committed (which also covers the
// renames git's per-file fsync leaves out). The peer's staging
// receive-pack of many refs syncs through gitmesh's hook before it
// reports, and a catch-up fetch syncs once after its refs are in place.
// Watched with strace, so the test fails if a sync step goes missing.
func TestRefTransactionsAreSynced(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	src, dst := filepath.Join(base, "src.git"), filepath.Join(base, "dst.git")
	g := Git{}
	for _, d := range []string{src, dst} {
		if err := g.InitBare(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := exec.Command("git", "-C", src, "hash-object", "-t", "tree", "-w", "--stdin").Output()
	if err != nil {
		t.Fatal(err)
	}
	commit, err := exec.Command("git", "-C", src, "-c", "user.name=t", "-c", "user.email=t@t",
		"commit-tree", "-m", "x", strings.TrimSpace(string(tree))).Output()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "-C", src, "update-ref", "HEAD", strings.TrimSpace(string(commit))).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	hooks, err := hook.StageDir(base)
	if err != nil {
		t.Fatal(err)
	}
	few, many := BatchSyncRefs-1, 3*BatchSyncRefs
	for _, tc := range []struct {
		name, spec         string
		refFsyncs, syncfss int // -1: at least one
	}{
		{"a few refs", fmt.Sprintf("update %d %s", few, src), few, 0},
		{"many refs", fmt.Sprintf("update %d %s", many, src), 0, 1},
		// src now stages many refs: push them all to the peer.
		{"staging push of many refs", fmt.Sprintf("push %s %s batch %s", src, dst, hooks), 0, 1},
		{"catch-up fetch", fmt.Sprintf("fetch %s %s", filepath.Join(base, "new.git"), dst), 0, 1},
	} {
		if strings.HasPrefix(tc.spec, "fetch") {
			if err := g.InitBare(ctx, filepath.Join(base, "new.git")); err != nil {
				t.Fatal(err)
			}
		}
		calls := traceRefTransaction(t, tc.spec)
		fs, sfs, after := syncs(calls)
		if fs != tc.refFsyncs || sfs != tc.syncfss || sfs > 0 && !after {
			t.Errorf("%s: %d fsyncs of ref files and %d syncfs (after the commit: %v), want %d and %d after it; trace:\n%s",
				tc.name, fs, sfs, after, tc.refFsyncs, tc.syncfss, strings.Join(calls, "\n"))
		}
	}
	_, staged, err := g.ReadRefs(ctx, dst)
	if err != nil || len(staged) != many {
		t.Fatalf("the peer holds %d staged refs (%v), want %d", len(staged), err, many)
	}
}
