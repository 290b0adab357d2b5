package gitexec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Limits on repository names.
const (
	MaxNameLen    = 200
	MaxSegmentLen = 100
	MaxSegments   = 8
)

// ErrBadName marks a repository name outside the rules.
var ErrBadName = errors.New("bad repository name")

func badName(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadName}, args...)...)
}

// NameFromPath turns the path a git client sends ("/team/app.git",
// "team/app") into a normalised repository name ("team/app").
func NameFromPath(p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, ".git")
	if err := ValidateName(p); err != nil {
		return "", err
	}
	return p, nil
}

// ValidateName checks a normalised repository name: segments of
// [A-Za-z0-9._-] separated by "/", none starting with "." or "-", none
// holding ".." or ending in ".git", no directory part holding ".git.",
// bounded in length and depth. A valid
// name is always a relative path that stays below the repo root, and no
// repository's directory can lie inside another's.
func ValidateName(name string) error {
	if name == "" {
		return badName("the repository name is empty")
	}
	if len(name) > MaxNameLen {
		return badName("the repository name is longer than %d bytes", MaxNameLen)
	}
	segs := strings.Split(name, "/")
	if len(segs) > MaxSegments {
		return badName("the repository name has more than %d parts", MaxSegments)
	}
	for i, s := range segs {
		if err := validateSegment(s); err != nil {
			return err
		}
		// gitmesh's working names are "<name>.git.<suffix>" beside a
		// copy (a missing copy is rebuilt in "lib.git.gitmesh-new"): no
		// repository may live inside a directory named so.
		if i < len(segs)-1 && strings.Contains(s, ".git.") {
			return badName("a directory part of the repository name holds \".git.\", which gitmesh keeps for its working names")
		}
	}
	return nil
}

func validateSegment(s string) error {
	switch {
	case s == "":
		return badName("the repository name has an empty part")
	case len(s) > MaxSegmentLen:
		return badName("a part of the repository name is longer than %d bytes", MaxSegmentLen)
	case s[0] == '.' || s[0] == '-':
		return badName("a part of the repository name starts with %q", s[:1])
	case strings.Contains(s, ".."):
		return badName("the repository name contains \"..\"")
	case strings.HasSuffix(s, ".git"):
		return badName("a part of the repository name ends in .git")
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return badName("the repository name may only hold letters, digits, '.', '_', '-' and '/'")
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// RepoDir is where a device keeps the bare copy of a valid name.
func RepoDir(root, name string) string {
	return filepath.Join(root, filepath.FromSlash(name)+".git")
}

// ConfinedRepoDir returns RepoDir after checking that no symlink on the way
// leads outside root. A missing directory is fine: it may be created.
func ConfinedRepoDir(root, name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	dir := RepoDir(root, name)
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("repo root %s: %w", root, err)
	}
	real, err := evalExisting(dir)
	if err != nil {
		return "", err
	}
	if real != realRoot && !strings.HasPrefix(real, realRoot+string(filepath.Separator)) {
		return "", badName("the repository path leads outside the repository root")
	}
	return dir, nil
}

// evalExisting resolves symlinks in the longest existing prefix of p. A
// dangling symlink is followed to where it points (so that a link to a
// missing directory outside the root is caught before anything creates
// that directory), at most maxLinks times.
func evalExisting(p string) (string, error) {
	return evalExistingN(p, 0)
}

const maxLinks = 40

func evalExistingN(p string, links int) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err == nil {
		return real, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if st, lerr := os.Lstat(p); lerr == nil && st.Mode()&os.ModeSymlink != 0 {
		if links >= maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			// Relative to the link's real directory, which exists.
			dir, err := filepath.EvalSymlinks(filepath.Dir(p))
			if err != nil {
				return "", err
			}
			target = filepath.Join(dir, target)
		}
		return evalExistingN(target, links+1)
	}
	parent := filepath.Dir(p)
	if parent == p {
		return p, nil
	}
	realParent, err := evalExistingN(parent, links)
	if err != nil {
		return "", err
	}
	return filepath.Join(realParent, filepath.Base(p)), nil
}
