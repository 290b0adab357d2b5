package gitexec

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveStaleLocksClearsWhatAKilledGitLeft(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"refs/heads/main.lock", "refs/heads/team/x.lock", "packed-refs.lock", "HEAD.lock", "refs/heads/keep"} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveStaleLocks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 4 {
		t.Fatalf("removed %v, want the four lock files", removed)
	}
	if _, err := os.Stat(filepath.Join(dir, "refs/heads/keep")); err != nil {
		t.Fatalf("a ref was removed: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "refs/heads/*.lock")); len(left) != 0 {
		t.Fatalf("lock files left: %v", left)
	}
}
