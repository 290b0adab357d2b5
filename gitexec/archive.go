package gitexec

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gitmesh/public"
)

// git-upload-archive resolves the tree-ish a client names with git's own
// ref rules and ignores uploadpack.hideRefs, so `git archive --remote`
// could name `refs/gitmesh/stage/heads/main` (or `gitmesh/stage/...`,
// which "refs/%s" expands to) and read a push that was never recorded.
// gitmesh therefore reads the client's request itself, refuses any
// argument naming its namespace, and hands git the same bytes.

// Limits of an archive request: git's own upload-archive takes at most
// 64 arguments; the whole request must fit a pipe's buffer, since it is
// written there before gitmesh becomes git.
const (
	maxArchiveArgs  = 64
	maxArchiveBytes = 60 << 10
)

// archiveErr refuses an archive request as bad input (ErrBadCommand).
func archiveErr(why string) error { return badCommand("git archive request refused: %s", why) }

// ParseArchiveRequest reads the client's archive request from r, pkt-line
// by pkt-line (never past its flush), and returns its bytes as read. It
// refuses a request that names anything under refs/gitmesh/, or that is
// longer than git takes. Anything else git's client would not send (a
// line that is not "argument X", a request cut short) ends the reading:
// git refuses it itself from the bytes read so far.
func ParseArchiveRequest(r io.Reader) ([]byte, error) {
	var raw []byte
	for n := 0; ; n++ {
		var head [4]byte
		if k, _ := io.ReadFull(r, head[:]); k < len(head) {
			return append(raw, head[:k]...), nil
		}
		raw = append(raw, head[:]...)
		size, err := strconv.ParseUint(string(head[:]), 16, 16)
		if err != nil || size == 0 || size < 5 {
			return raw, nil
		}
		if n >= maxArchiveArgs || len(raw)+int(size) > maxArchiveBytes {
			return nil, archiveErr("too many arguments")
		}
		line := make([]byte, size-4)
		k, _ := io.ReadFull(r, line)
		raw = append(raw, line[:k]...)
		arg, ok := strings.CutPrefix(strings.TrimSuffix(string(line[:k]), "\n"), "argument ")
		if !ok || k < len(line) {
			return raw, nil
		}
		if NamesHidden(arg) {
			return nil, archiveErr(Hidden + " is reserved and cannot be read")
		}
	}
}

// NamesHidden reports whether an archive argument could resolve to a ref
// under refs/gitmesh/: the name before any ":path", as itself or under
// "refs/" (git's first two dwim rules; the others add a prefix that is
// not refs/gitmesh/). Options ("--prefix=...") name no ref; a separate
// option value or a path that merely starts with "gitmesh/" is refused
// too, which costs a user little and keeps the rule simple.
func NamesHidden(arg string) bool {
	if strings.HasPrefix(arg, "-") {
		return false
	}
	name, _, _ := strings.Cut(arg, ":")
	name = strings.TrimPrefix(name, "refs/")
	return name == "gitmesh" || strings.HasPrefix(name, "gitmesh/")
}

// ReadArchiveRequest is ParseArchiveRequest of stdin within limit: a
// client that sends no request is not waited for longer.
func ReadArchiveRequest(stdin *os.File, limit time.Duration) ([]byte, error) {
	type result struct {
		raw []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		raw, err := ParseArchiveRequest(stdin)
		done <- result{raw, err}
	}()
	select {
	case r := <-done:
		return r.raw, r.err
	case <-time.After(limit):
		return nil, archiveErr(fmt.Sprintf("none arrived within %s", limit))
	}
}

// ExecArchive replaces this process with upload-archive, whose stdin
// begins with the request gitmesh already read from the client (the
// client sends nothing after it).
func ExecArchive(dir string, env []string, request []byte) error {
	bin, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("find git: %w", err)
	}
	if err := os.Chdir(dir); err != nil {
		return public.Wrap(err, "this device cannot open its copy of the repository; the administrator can find why in gitmesh's log")
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return fmt.Errorf("archive request pipe: %w", err)
	}
	if _, err := syscall.Write(p[1], request); err != nil {
		return fmt.Errorf("archive request pipe: %w", err)
	}
	syscall.Close(p[1])
	if err := syscall.Dup3(p[0], 0, 0); err != nil {
		return fmt.Errorf("archive request pipe: %w", err)
	}
	return syscall.Exec(bin, gitArgs(UploadArchive), env)
}
