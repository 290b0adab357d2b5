package gitexec

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzRoot is a repo root for the confinement invariant; nothing is created.
const fuzzRoot = "/srv/gitmesh-fuzz-root"

// checkName asserts what every accepted repository name must satisfy.
func checkName(t *testing.T, input, name string) {
	t.Helper()
	if err := ValidateName(name); err != nil {
		t.Fatalf("%q: accepted name %q fails ValidateName: %v", input, name, err)
	}
	if strings.Contains(name, "..") || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "/") {
		t.Fatalf("%q: accepted name %q holds '..' or starts with '-' or '/'", input, name)
	}
	dir := RepoDir(fuzzRoot, name)
	if filepath.Clean(dir) != dir || !strings.HasPrefix(dir, fuzzRoot+"/") || !strings.HasSuffix(dir, ".git") {
		t.Fatalf("%q: RepoDir(%q) = %q leaves the root", input, name, dir)
	}
	rel, err := filepath.Rel(fuzzRoot, dir)
	if err != nil || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) {
		t.Fatalf("%q: RepoDir(%q) = %q is not below the root", input, name, dir)
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"git-upload-pack 'team/app.git'", "git receive-pack '/team/app.git'", "git-upload-archive app",
		"git-upload-pack '../etc'", "git-upload-pack 'a'; id", "git-upload-pack '--help'", "",
		"git upload-pack 'x'\x00", "git-upload-pack 'a..b'", "git-upload-pack '//x'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmd, err := ParseCommand(s)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrBadName) {
				t.Fatalf("%q: error %v is neither ErrBadCommand nor ErrBadName", s, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r\x00") {
				t.Fatalf("%q: message is not one line: %q", s, err)
			}
			if cmd != (Command{}) {
				t.Fatalf("%q: a result with an error: %+v", s, cmd)
			}
			return
		}
		switch cmd.Verb {
		case UploadPack, ReceivePack, UploadArchive:
		default:
			t.Fatalf("%q: verb %q outside the allow-list", s, cmd.Verb)
		}
		if strings.ContainsAny(s, "\x00\n\r;|&$`\"\\<>(){}*?~") {
			t.Fatalf("%q: accepted a control or shell character", s)
		}
		checkName(t, s, cmd.Repo)
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"team/app", "a", "../x", "a/../b", "a..b", ".git", "x.git", "-x", "a//b", "/a", "caf\u00e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := ValidateName(s); err == nil {
			checkName(t, s, s)
		} else if !errors.Is(err, ErrBadName) {
			t.Fatalf("%q: error %v is not ErrBadName", s, err)
		}
		name, err := NameFromPath(s)
		if err == nil {
			checkName(t, s, name)
		}
	})
}
