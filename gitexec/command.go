// Package gitexec parses the command sshd hands to gitmesh, applies the
// repository path rules and runs the git binaries.
// It knows git and the command line, not
// PostgreSQL, locks or versions.
package gitexec

import (
	"errors"
	"fmt"
	"strings"
)

// Verb is one of the git services gitmesh serves.
type Verb string

// The allowed verbs, named as git's own binaries.
const (
	UploadPack    Verb = "git-upload-pack"
	ReceivePack   Verb = "git-receive-pack"
	UploadArchive Verb = "git-upload-archive"
)

// SyncRequest is the cluster key's request that a device catch up on a
// repository now (sent by a writer after its push); never a user's.
const SyncRequest Verb = "gitmesh-sync"

// StageVerb is the cluster key's staging push of many refs: git's
// receive-pack (as for git-receive-pack from a peer) with the refs
// written unsynced and the filesystem synced once before it reports
// (gitexec.PushStage). Never a user's.
const StageVerb Verb = "gitmesh-stage"

// DigestsRequest is the cluster key's request for the refs digests of many
// repositories' copies at once (verify's one request per peer; see
// ReadDigestsRequest); it takes no argument: the names come on stdin.
const DigestsRequest Verb = "gitmesh-digests"

// IsWrite reports whether the verb changes the repository.
func (v Verb) IsWrite() bool { return v == ReceivePack }

// Command is a parsed SSH_ORIGINAL_COMMAND.
type Command struct {
	Verb Verb
	Repo string // normalised repository name, e.g. "team/app"
	// User and Protocol are set for a user's request passed on by a
	// device that holds no copy (gitmesh-as, see PassOnCommand): the user
	// to serve it as, and the client's GIT_PROTOCOL ("" for none).
	User, Protocol string
	// HTTP is set for a smart HTTP request passed on (gitmesh-as-http).
	HTTP HTTPMode
}

// PassedOn reports whether the command is a user's request passed on.
func (c Command) PassedOn() bool { return c.User != "" }

// ErrBadCommand marks every rejection of SSH_ORIGINAL_COMMAND.
var ErrBadCommand = errors.New("bad command")

// MaxCommandLen bounds SSH_ORIGINAL_COMMAND; git never sends more than a verb
// and a short path.
const MaxCommandLen = 1024

// verbs is the whole allow-list, in the style of git's shell.c.
var verbs = map[string]Verb{
	"git-upload-pack":    UploadPack,
	"git-receive-pack":   ReceivePack,
	"git-upload-archive": UploadArchive,
	"git upload-pack":    UploadPack,
	"git receive-pack":   ReceivePack,
	"git upload-archive": UploadArchive,
}

func badCommand(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadCommand}, args...)...)
}

// ParseCommand parses SSH_ORIGINAL_COMMAND: an allowed verb, one space and one
// repository path, single-quoted as git sends it or bare.
func ParseCommand(s string) (Command, error) {
	return parse(s, verbs)
}

// clusterVerbs are what the cluster key may run: git's verbs, a staging
// push of many refs and a sync request.
var clusterVerbs = map[string]Verb{"gitmesh-sync": SyncRequest, "gitmesh-stage": StageVerb}

func init() {
	for k, v := range verbs {
		clusterVerbs[k] = v
	}
}

// ParseClusterCommand parses the command a peer device sends: a fetch,
// a staging push, a sync request, or a user's request passed on
// (gitmesh-as USER PROTOCOL VERB 'REPO.git', or gitmesh-as-http with a
// mode, see PassOnCommand).
func ParseClusterCommand(s string) (Command, error) {
	for verb, http := range map[string]bool{PassOnVerb: false, PassOnHTTPVerb: true} {
		rest, ok := strings.CutPrefix(s, verb+" ")
		if !ok {
			continue
		}
		if len(s) > MaxCommandLen {
			return Command{}, badCommand("command is longer than %d bytes", MaxCommandLen)
		}
		if i := strings.IndexFunc(s, isControl); i >= 0 {
			return Command{}, badCommand("command contains a control character")
		}
		return parsePassedOn(rest, http)
	}
	if s == string(DigestsRequest) {
		return Command{Verb: DigestsRequest}, nil
	}
	return parse(s, clusterVerbs)
}

func parse(s string, verbs map[string]Verb) (Command, error) {
	if s == "" {
		return Command{}, badCommand("interactive login is not allowed; this key only serves git fetch and push")
	}
	if len(s) > MaxCommandLen {
		return Command{}, badCommand("command is longer than %d bytes", MaxCommandLen)
	}
	if i := strings.IndexFunc(s, isControl); i >= 0 {
		return Command{}, badCommand("command contains a control character")
	}
	word, rest := splitVerb(s)
	verb, ok := verbs[word]
	if ok && strings.TrimSpace(rest) == "" {
		return Command{}, badCommand("the repository path is missing: %s needs one, as in %s 'team/app.git'", word, word)
	}
	if !ok {
		return Command{}, badCommand("unknown command %s; only git-upload-pack, git-receive-pack and git-upload-archive with one repository are allowed", quoteForUser(word))
	}
	arg, err := unquote(rest)
	if err != nil {
		return Command{}, err
	}
	name, err := NameFromPath(arg)
	if err != nil {
		return Command{}, err
	}
	return Command{Verb: verb, Repo: name}, nil
}

// splitVerb splits "git-x ARG" or "git x ARG" into the verb and ARG.
func splitVerb(s string) (verb, rest string) {
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		return s, ""
	}
	if s[:i] == "git" {
		j := strings.IndexByte(s[i+1:], ' ')
		if j < 0 {
			return s, ""
		}
		i += 1 + j
	}
	return s[:i], s[i+1:]
}

// unquote accepts 'path' (no quote inside) or a bare path.
func unquote(a string) (string, error) {
	if strings.HasPrefix(a, "'") {
		if len(a) < 2 || !strings.HasSuffix(a, "'") || strings.Count(a, "'") != 2 {
			return "", badCommand("the repository path is not quoted the way git quotes it")
		}
		return a[1 : len(a)-1], nil
	}
	if strings.ContainsAny(a, "'\"\\") {
		return "", badCommand("the repository path is not quoted the way git quotes it")
	}
	return a, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// quoteForUser renders untrusted text on one line, shortened.
func quoteForUser(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}
