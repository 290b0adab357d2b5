package hook

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Command is one ref update of a push: "<old> <new> <ref>".
type Command struct{ Old, New, Ref string }

// Result answers one Command: ok when Err is "".
type Result struct {
	Ref string
	Err string
}

// Push is what receive-pack hands proc-receive.
type Push struct {
	Commands []Command
	Atomic   bool
}

// maxPkt is pkt-line's largest packet (LARGE_PACKET_MAX).
const maxPkt = 65520

// readPkt returns one pkt-line's payload; flush is a nil slice, ok false.
func readPkt(r *bufio.Reader) (payload []byte, flush bool, err error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, false, err
	}
	n, err := strconv.ParseUint(string(head[:]), 16, 16)
	if err != nil {
		return nil, false, fmt.Errorf("bad pkt-line length %q", head)
	}
	if n == 0 {
		return nil, true, nil
	}
	if n < 4 || n > maxPkt {
		return nil, false, fmt.Errorf("bad pkt-line length %d", n)
	}
	payload = make([]byte, n-4)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, false, err
	}
	return payload, false, nil
}

func writePkt(w io.Writer, s string) error {
	_, err := fmt.Fprintf(w, "%04x%s", len(s)+4, s)
	return err
}

func writeFlush(w io.Writer) error {
	_, err := io.WriteString(w, "0000")
	return err
}

// ReadPush runs the first half of the proc-receive protocol (version 1):
// version negotiation, then the commands (and push options, which
// gitmesh does not ask for).
func ReadPush(r *bufio.Reader, w io.Writer) (Push, error) {
	var p Push
	first := true
	for {
		line, flush, err := readPkt(r)
		if err != nil {
			return p, fmt.Errorf("proc-receive version: %w", err)
		}
		if flush {
			break
		}
		if first {
			v, caps, _ := strings.Cut(string(line), "\x00")
			if strings.TrimSpace(v) != "version=1" {
				return p, fmt.Errorf("proc-receive: unsupported %q", v)
			}
			p.Atomic = strings.Contains(" "+strings.TrimSpace(caps)+" ", " atomic ")
			first = false
		}
	}
	if first {
		return p, errors.New("proc-receive: no version")
	}
	if err := writePkt(w, "version=1\x00"); err != nil {
		return p, err
	}
	if err := writeFlush(w); err != nil {
		return p, err
	}
	malformed := false
	for {
		line, flush, err := readPkt(r)
		if err != nil {
			return p, fmt.Errorf("proc-receive commands: %w", err)
		}
		if flush {
			if malformed {
				return p, ErrMalformed
			}
			return p, nil
		}
		f := strings.SplitN(strings.TrimSuffix(string(line), "\n"), " ", 3)
		if len(f) != 3 || !objectID(f[0]) || !objectID(f[1]) || f[2] == "" {
			malformed = true
			continue
		}
		// A ref name with a space (or another control byte) would make
		// its "ng <ref> <reason>" line name a different ref: such a
		// command refuses the whole push.
		if strings.IndexFunc(f[2], func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			malformed = true
		}
		p.Commands = append(p.Commands, Command{Old: f[0], New: f[1], Ref: f[2]})
	}
}

// ErrMalformed means a ref command of the push was malformed (a ref name
// with a space, say); ReadPush read every command to the flush and the
// whole push is refused (RefuseAll).
var ErrMalformed = errors.New("proc-receive: malformed command")

// RefuseAll answers every command of a push with reason, naming each ref
// once and only by its first word, so that no answer can be read as
// another ref's; a command left unanswered is rejected by receive-pack.
func RefuseAll(p Push, reason string) []Result {
	var out []Result
	seen := map[string]bool{}
	for _, c := range p.Commands {
		ref, _, _ := strings.Cut(c.Ref, " ")
		if i := strings.IndexFunc(ref, func(r rune) bool { return r < ' ' || r == 0x7f }); i >= 0 {
			ref = ref[:i]
		}
		if ref == "" || seen[ref] {
			continue
		}
		seen[ref] = true
		out = append(out, Result{Ref: ref, Err: reason})
	}
	return out
}

// objectID reports whether s is a SHA-1 or SHA-256 object id in hex.
func objectID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// WriteResults runs the second half: one "ok" or "ng" per ref, then flush.
func WriteResults(w io.Writer, results []Result) error {
	for _, r := range results {
		line := "ok " + r.Ref
		if r.Err != "" {
			reason := strings.Join(strings.Fields(r.Err), " ")
			if reason == "" {
				reason = "failed"
			}
			line = "ng " + r.Ref + " " + reason
		}
		if len(line)+4 > maxPkt {
			line = line[:maxPkt-4]
		}
		if err := writePkt(w, line); err != nil {
			return err
		}
	}
	return writeFlush(w)
}
