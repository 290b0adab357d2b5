package gitexec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "app", "team/app", "A/b/C", "x-y_z.1", "v1.0", "app.", "app-", "a.b.c",
		"team/app.gitx", "git", "0", strings.Repeat("a/", MaxSegments-1) + "a",
		"lib.git.gitmesh-new", "team/app.git.d", "a.gitx/b"}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q): %v", n, err)
		}
	}
	bad := []string{"", "/", "/app", "app/", "a//b", ".", "..", "../a", "a/..", "a/../b", "a..b", "...",
		".hidden", "a/.git", "-x", "a/-x", "app.git", "a/b.git", "a.git/b", "a b", "a\tb", "a\\b",
		"a:b", "a;b", "a|b", "a$b", "a`b", "a'b", "a\"b", "a*b", "a?b", "a[b]", "~a", "a~", "a@{0}",
		"a\x00b", "a\nb", "caf\u00e9", "\u0430pp", "a\u2215b", "a\xffb", "%2e%2e",
		strings.Repeat("a/", MaxSegments) + "a", strings.Repeat("x", MaxSegmentLen+1),
		strings.Repeat("abcdefghi/", 20) + "x",
		// Inside gitmesh's working names (issue 19).
		"lib.git.gitmesh-new/sub", "team/app.git.gitmesh-new/x", "a.git.b/c/d"}
	for _, n := range bad {
		err := ValidateName(n)
		if err == nil {
			t.Errorf("ValidateName(%q) accepted it", n)
			continue
		}
		if !errors.Is(err, ErrBadName) {
			t.Errorf("ValidateName(%q): %v is not ErrBadName", n, err)
		}
	}
}

func TestNameFromPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"team/app", "team/app"},
		{"/team/app", "team/app"},
		{"team/app.git", "team/app"},
		{"/team/app.git", "team/app"},
		{"app.git.d", "app.git.d"},
	}
	for _, tt := range tests {
		if got, err := NameFromPath(tt.in); err != nil || got != tt.want {
			t.Errorf("NameFromPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"//team/app", "team/app.git.git", "/.git", ".git", "/", "", "team/app/", "/../x"} {
		if got, err := NameFromPath(in); err == nil {
			t.Errorf("NameFromPath(%q) = %q, want an error", in, got)
		}
	}
}

func TestRepoDir(t *testing.T) {
	if got := RepoDir("/srv/git", "team/app"); got != "/srv/git/team/app.git" {
		t.Fatalf("RepoDir = %s", got)
	}
}

// A symlink anywhere under the root that leads outside it is refused; one
// that stays inside is allowed; missing directories are fine.
func TestConfinedRepoDir(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root + "/team/app.git", root + "/inner/real.git", outside + "/victim.git", outside + "/sub"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		root + "/escape":            outside,                    // a directory on the way
		root + "/team/evil.git":     outside + "/victim.git",    // the repository itself
		root + "/up":                "..",                       // relative, upwards
		root + "/team/rel.git":      "../../outside/victim.git", // relative, to outside
		root + "/abs.git":           "/etc",                     // absolute, elsewhere
		root + "/inner/alias.git":   root + "/inner/real.git",   // stays inside: fine
		root + "/loop":              root + "/loop",             // a loop
		root + "/dangling":          outside + "/missing",       // dangling, outside
		root + "/team/chain.git":    root + "/hop",              // a chain that ends outside
		root + "/hop":               outside + "/victim.git",
		root + "/inner/root-itself": root,
		root + "/via":               outside + "/sub",     // exists, outside...
		outside + "/sub/back":       "../../root/team",    // ...and comes back inside
		outside + "/sub/rel-dangle": "../gone",            // dangling, relative to outside/sub
		root + "/team/rel-dangle":   "../../outside/gone", // dangling, relative, outside
	}
	for link, target := range links {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	ok := []string{"team/app", "team/new", "brand/new/repo", "inner/real", "inner/alias", "inner/root-itself/team/app",
		"via/back/app"} // what counts is where the path finally leads
	for _, name := range ok {
		dir, err := ConfinedRepoDir(root, name)
		if err != nil {
			t.Errorf("ConfinedRepoDir(%s): %v", name, err)
		} else if dir != RepoDir(root, name) {
			t.Errorf("ConfinedRepoDir(%s) = %s, want %s", name, dir, RepoDir(root, name))
		}
	}
	refused := []string{"escape/victim", "escape/sub/new", "team/evil", "up/outside/victim", "team/rel",
		"abs", "dangling/x", "team/chain",
		"via/rel-dangle/x", "team/rel-dangle/x"}
	for _, name := range refused {
		dir, err := ConfinedRepoDir(root, name)
		if err == nil {
			t.Errorf("ConfinedRepoDir(%s) = %s, want a refusal", name, dir)
		} else if !errors.Is(err, ErrBadName) && !strings.Contains(err.Error(), "loop") {
			t.Errorf("ConfinedRepoDir(%s): %v", name, err)
		}
	}
	// A loop is refused too, whatever the error.
	if _, err := ConfinedRepoDir(root, "loop/x"); err == nil {
		t.Errorf("ConfinedRepoDir(loop/x) accepted a symlink loop")
	}
	// The root may itself be reached through a symlink.
	linkedRoot := filepath.Join(base, "linked-root")
	if err := os.Symlink(root, linkedRoot); err != nil {
		t.Fatal(err)
	}
	if _, err := ConfinedRepoDir(linkedRoot, "team/app"); err != nil {
		t.Errorf("ConfinedRepoDir through a linked root: %v", err)
	}
	if _, err := ConfinedRepoDir(linkedRoot, "team/evil"); err == nil {
		t.Errorf("ConfinedRepoDir through a linked root accepted team/evil")
	}
	// Invalid names never reach the file system.
	if _, err := ConfinedRepoDir(root, "../outside/victim"); !errors.Is(err, ErrBadName) {
		t.Errorf("ConfinedRepoDir(../outside/victim): %v", err)
	}
}
