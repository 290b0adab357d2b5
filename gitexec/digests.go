package gitexec

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The digests request (gitmesh-digests) is verify's read of every copy a
// peer holds, in one ssh session instead of one per repository. The
// request is repository names on stdin, one a line; the answer is one line
// per name, in order:
//
//	ok <visible digest> <staged digest> <name>
//	missing <name>      (not registered, or no copy on this device)
//	unreadable <name>   (the reason is in the peer's log)
//
// It reads only: one query for which names are registered, then one git
// for-each-ref and the HEAD file per copy (CopyRefSets).

// MaxDigestsRepos bounds the names in one digests request.
const MaxDigestsRepos = 10000

// CopyDigest is one copy's answer to a digests request.
type CopyDigest struct {
	Visible, Staged string
	Err             error // nil when read
}

// ErrDigestsUnsupported is an old peer's answer to a digests request.
var ErrDigestsUnsupported = errors.New("the device's gitmesh is too old to answer verify's digests request; upgrade it")

// ReadDigestsRequest reads and checks a digests request's names: at most
// MaxDigestsRepos, each a valid repository name.
func ReadDigestsRequest(in io.Reader) ([]string, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), MaxNameLen+2)
	var names []string
	for sc.Scan() {
		if len(names) == MaxDigestsRepos {
			return nil, badCommand("a digests request may name at most %d repositories", MaxDigestsRepos)
		}
		if err := ValidateName(sc.Text()); err != nil {
			return nil, err
		}
		names = append(names, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, badCommand("read the digests request: %v", err)
	}
	return names, nil
}

// WriteDigest writes one line of a digests answer for name (checked by
// ReadDigestsRequest): visible and staged digests, or what went wrong.
func WriteDigest(w io.Writer, name string, d CopyDigest, missing bool) error {
	var err error
	switch {
	case missing:
		_, err = fmt.Fprintf(w, "missing %s\n", name)
	case d.Err != nil:
		_, err = fmt.Fprintf(w, "unreadable %s\n", name)
	default:
		_, err = fmt.Fprintf(w, "ok %s %s %s\n", d.Visible, d.Staged, name)
	}
	return err
}

// PeerDigests asks the device behind the ssh:// base URL for the digests
// of its copies of repos (at most MaxDigestsRepos), in one ssh session
// over the shared connection, bounded by the fetch timeout. A name the
// answer leaves out, or a line it cannot parse, is an error for that name.
func (g Git) PeerDigests(ctx context.Context, base string, repos []string) (map[string]CopyDigest, error) {
	if len(repos) > MaxDigestsRepos {
		return nil, fmt.Errorf("%d repositories in one digests request, at most %d", len(repos), MaxDigestsRepos)
	}
	if g.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.Timeout)
		defer cancel()
	}
	cmd, err := g.clusterCommand(ctx, base, func(string) string { return string(DigestsRequest) })
	if err != nil {
		return nil, err
	}
	cmd.Stdin = strings.NewReader(strings.Join(repos, "\n") + "\n")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = runTied(cmd)
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return nil, fmt.Errorf("digests request: timed out after %s", g.Timeout)
	case err != nil && strings.Contains(stderr.String(), "unknown command"):
		return nil, ErrDigestsUnsupported
	case err != nil:
		if reason := failureReason(stderr.String()); reason != "" {
			return nil, fmt.Errorf("digests request: %s", reason)
		}
		return nil, fmt.Errorf("digests request: %v", err)
	}
	out := make(map[string]CopyDigest, len(repos))
	for _, line := range strings.Split(stdout.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "ok":
			out[f[3]] = CopyDigest{Visible: f[1], Staged: f[2]}
		case len(f) == 2 && f[0] == "missing":
			out[f[1]] = CopyDigest{Err: errors.New("the device holds no copy")}
		case len(f) == 2 && f[0] == "unreadable":
			out[f[1]] = CopyDigest{Err: errors.New("the device cannot read its copy (see its log)")}
		}
	}
	for _, r := range repos {
		if _, ok := out[r]; !ok {
			out[r] = CopyDigest{Err: errors.New("the device's answer left the copy out")}
		}
	}
	return out, nil
}
