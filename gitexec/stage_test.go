package gitexec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestValidRefName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"refs/heads/main", true},
		{"refs/tags/v1.0", true},
		{"refs/heads/feature/x-y_z", true},
		{"refs/heads/ünïcode", true},
		{"refs/heads/bad\xff", false},
		{"refs/gitmesh/stage/heads/main", false},
		{"refs/gitmesh", false},
		{"refs/foo", false},
		{"refs/heads", false},
		{"refs/foo/bar", true},
		{"HEAD", false},
		{"refs/", false},
		{"refs/heads/a..b", false},
		{"refs/heads/a@{1}", false},
		{"refs/heads/a b", false},
		{"refs/heads/a~1", false},
		{"refs/heads/a^", false},
		{"refs/heads/a:b", false},
		{"refs/heads/a?", false},
		{"refs/heads/a*", false},
		{"refs/heads/a[", false},
		{"refs/heads/a\\b", false},
		{"refs/heads/a\x01", false},
		{"refs/heads/a\x7f", false},
		{"refs/heads/.hidden", false},
		{"refs/heads/x.lock", false},
		{"refs/heads/x.lock/y", false},
		{"refs/heads/", false},
		{"refs/heads/x.", false},
		{"refs/heads//x", false},
		{"refs/heads/" + strings.Repeat("x", 1100), false},
	} {
		if why := ValidRefName(tc.name); (why == "") != tc.ok {
			t.Errorf("ValidRefName(%q) = %q, want ok %v", tc.name, why, tc.ok)
		}
	}
}

func TestStageAndShowCommands(t *testing.T) {
	have := RefSet{"refs/heads/a": "1", "refs/heads/b": "2", "refs/tags/t": "3"}
	want := RefSet{"refs/heads/a": "1", "refs/heads/b": "4", "refs/heads/c": "5"}
	if got, exp := StageCommands(have, want), []string{
		"update refs/gitmesh/stage/heads/b 4",
		"update refs/gitmesh/stage/heads/c 5",
		"delete refs/gitmesh/stage/tags/t",
	}; !reflect.DeepEqual(got, exp) {
		t.Errorf("StageCommands: %q, want %q", got, exp)
	}
	if got, exp := ShowCommands(have, want), []string{
		"update refs/heads/b 4 2",
		"create refs/heads/c 5",
		"delete refs/tags/t 3",
	}; !reflect.DeepEqual(got, exp) {
		t.Errorf("ShowCommands: %q, want %q", got, exp)
	}
	if got := ShowCommands(want, want); len(got) != 0 {
		t.Errorf("ShowCommands of equal sets: %q", got)
	}
}

// A copy's staged refs are invisible to its digest and shown only by
// ShowCommands: stage, read, show, read again, with real git.
func TestStageThenShowWithGit(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "r.git")
	g := Git{}
	if err := g.InitBare(ctx, dir); err != nil {
		t.Fatal(err)
	}
	blob := func(s string) string {
		cmd := exec.Command("git", "-C", dir, "hash-object", "-w", "--stdin")
		cmd.Stdin = strings.NewReader(s)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	x, y := blob("x"), blob("y")
	if err := g.UpdateRefs(ctx, dir, []string{"update refs/tags/x " + x}, false); err != nil {
		t.Fatal(err)
	}
	before, err := g.RefsDigest(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	visible, staged, err := g.ReadRefs(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := RefSet{"refs/tags/y": y}
	if err := g.UpdateRefs(ctx, dir, StageCommands(staged, want), false); err != nil {
		t.Fatal(err)
	}
	if after, _ := g.RefsDigest(ctx, dir); after != before {
		t.Fatal("staging changed the digest of the visible refs")
	}
	visible, staged, _ = g.ReadRefs(ctx, dir)
	if !reflect.DeepEqual(staged, want) || !reflect.DeepEqual(visible, RefSet{"refs/tags/x": x}) {
		t.Fatalf("after staging: visible %v, staged %v", visible, staged)
	}
	if err := g.UpdateRefs(ctx, dir, ShowCommands(visible, staged), false); err != nil {
		t.Fatal(err)
	}
	visible, _, _ = g.ReadRefs(ctx, dir)
	if !reflect.DeepEqual(visible, want) {
		t.Fatalf("after showing: visible %v, want %v", visible, want)
	}
	head, _ := Head(dir)
	if got, _ := g.RefsDigest(ctx, dir); got != want.Digest(head) {
		t.Fatal("the shown refs' digest is not the staged set's")
	}
}

// A copy is never created under a missing repo root: an unmounted disk
// must not turn into an empty one.
func TestInitCopyNeedsTheRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repos")
	g := Git{}
	if err := g.InitCopy(context.Background(), root, filepath.Join(root, "team", "app.git")); !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "the repo root "+root+" is missing") {
		t.Fatalf("InitCopy under a missing root: %v, want ErrNoRoot", err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("the missing root was created: %v", err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "team", "app.git")
	if err := g.InitCopy(context.Background(), root, dir); err != nil || !Exists(dir) {
		t.Fatalf("InitCopy under an existing root: %v, exists %v", err, Exists(dir))
	}
}

// Configs reads a copy's settings, a bare key as true, and says when it
// cannot read them instead of answering "none set".
func TestConfigs(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "r.git")
	g := Git{}
	if err := g.InitBare(ctx, dir); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config")
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("[receive]\n\tdenyDeletes\n\tdenyNonFastForwards = yes\n\tother = x\n")
	f.Close()
	got, err := g.Configs(ctx, dir, `^receive\.deny(deletes|nonfastforwards)$`)
	want := map[string]string{"receive.denydeletes": "true", "receive.denynonfastforwards": "yes"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Configs = %v, %v; want %v", got, err, want)
	}
	if got, err := g.Configs(ctx, dir, `^nothing\.`); err != nil || len(got) != 0 {
		t.Fatalf("Configs of nothing set = %v, %v; want none and no error", got, err)
	}
	if err := os.WriteFile(config, []byte("[receive\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := g.Configs(ctx, dir, `^receive\.`); err == nil {
		t.Fatalf("Configs of a broken config file = %v and no error: a policy read from it would be off", got)
	}
}

func TestConfigBool(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
		ok   bool
	}{
		{"true", true, true}, {"True", true, true}, {"yes", true, true}, {"ON", true, true}, {"1", true, true}, {"-1", true, true},
		{"false", false, true}, {"no", false, true}, {"off", false, true}, {"0", false, true}, {"", false, true},
		{"maybe", false, false}, {"tru", false, false},
	} {
		got, err := ConfigBool(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ConfigBool(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// PackRefs moves loose refs into packed-refs without changing a ref or
// the digest, and LooseRefs sees them go (stopping at its limit).
func TestPackRefsKeepsTheRefsAndTheirDigest(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "r.git")
	var g Git
	if err := g.InitBare(ctx, dir); err != nil {
		t.Fatal(err)
	}
	commit, err := exec.Command("git", "-C", dir, "commit-tree", "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "-m", "x").Output()
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(commit))
	var cmds []string
	for _, n := range []string{"refs/heads/a", "refs/heads/b/c", "refs/tags/v1", Stage + "heads/a"} {
		cmds = append(cmds, "create "+n+" "+id)
	}
	if err := g.UpdateRefs(ctx, dir, cmds, false); err != nil {
		t.Fatal(err)
	}
	if n := LooseRefs(dir, 100); n != 4 {
		t.Fatalf("LooseRefs = %d, want 4", n)
	}
	if n := LooseRefs(dir, 2); n != 2 {
		t.Fatalf("LooseRefs with limit 2 = %d, want 2", n)
	}
	before, err := g.RefsDigest(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	refs, _ := g.Refs(ctx, dir)
	if err := g.PackRefs(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if n := LooseRefs(dir, 100); n != 0 {
		t.Errorf("LooseRefs after packing = %d, want 0", n)
	}
	after, _ := g.RefsDigest(ctx, dir)
	packed, _ := g.Refs(ctx, dir)
	if after != before || packed != refs {
		t.Errorf("packing changed the refs:\n%s\nto\n%s", refs, packed)
	}
}

// RefSet.Digest is the digest of the set's lines, whatever the order of
// names and objects, and HEAD counts only when it names a ref there:
// recorded digests keep verifying.
func TestRefSetDigestIsTheDigestOfItsLines(t *testing.T) {
	sets := []RefSet{
		{},
		{"refs/heads/main": "bbbb"},
		{"refs/heads/main": "bbbb", "refs/heads/a": "cccc", "refs/tags/v1": "aaaa", "refs/heads/z/y": "bbbb"},
	}
	big := RefSet{}
	for i := 0; i < 2000; i++ {
		big[fmt.Sprintf("refs/heads/b%05d", (i*7919)%2000)] = fmt.Sprintf("%040x", (i*104729)%997)
	}
	sets = append(sets, big)
	for i, r := range sets {
		for _, head := range []string{"", "refs/heads/main", "refs/heads/none"} {
			if got, want := r.Digest(head), Digest(r.Lines(), head); got != want {
				t.Errorf("set %d, HEAD %q: Digest %s, want %s", i, head, got, want)
			}
		}
	}
	// The recorded format: sorted "<object> <ref>" lines, then HEAD.
	sum := sha256.Sum256([]byte("aaaa refs/heads/z\nbbbb refs/heads/main\nHEAD refs/heads/main\n"))
	if got := (RefSet{"refs/heads/main": "bbbb", "refs/heads/z": "aaaa"}).Digest("refs/heads/main"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("digest %s is not the recorded format's %x", got, sum)
	}
	if a, b := (RefSet{"refs/heads/main": "bbbb"}).Digest("refs/heads/main"), (RefSet{"refs/heads/main": "bbbb"}).Digest("refs/heads/none"); a == b {
		t.Errorf("HEAD naming a ref there and HEAD naming none give one digest")
	}
}
