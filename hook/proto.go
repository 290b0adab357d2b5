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
	for {
		line, flush, err := readPkt(r)
		if err != nil {
			return p, fmt.Errorf("proc-receive commands: %w", err)
		}
		if flush {
			return p, nil
		}
		f := strings.SplitN(strings.TrimSuffix(string(line), "\n"), " ", 3)
		if len(f) != 3 || !objectID(f[0]) || !objectID(f[1]) || f[2] == "" {
			return p, errors.New("proc-receive: malformed command")
		}
		p.Commands = append(p.Commands, Command{Old: f[0], New: f[1], Ref: f[2]})
	}
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
