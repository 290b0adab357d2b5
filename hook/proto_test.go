package hook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

const (
	zero = "0000000000000000000000000000000000000000"
	one  = "1111111111111111111111111111111111111111"
	two  = "2222222222222222222222222222222222222222"

	// versionAnswer is serve's half of the version negotiation: version 1,
	// no capabilities (so receive-pack sends no push options).
	versionAnswer = "000eversion=1\x00" + "0000"
)

// pkt frames s as one pkt-line.
func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

const flush = "0000"

// readPkts decodes a whole stream of pkt-lines; a flush is "0000".
func readPkts(t *testing.T, b []byte) []string {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	var out []string
	for {
		payload, isFlush, err := readPkt(r)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("decoding %q: %v", b, err)
		}
		if isFlush {
			out = append(out, flush)
		} else {
			out = append(out, string(payload))
		}
	}
}

func TestReadPush(t *testing.T) {
	cmds := pkt(zero+" "+one+" refs/heads/main") + flush
	tests := []struct {
		name string
		in   string
		want Push
	}{
		{"no capabilities, as git sends it",
			pkt("version=1\n") + flush + cmds,
			Push{Commands: []Command{{zero, one, "refs/heads/main"}}}},
		{"atomic",
			pkt("version=1\x00atomic\n") + flush + cmds,
			Push{Commands: []Command{{zero, one, "refs/heads/main"}}, Atomic: true}},
		{"atomic and push-options",
			pkt("version=1\x00atomic push-options\n") + flush + cmds,
			Push{Commands: []Command{{zero, one, "refs/heads/main"}}, Atomic: true}},
		{"push-options only is ignored",
			pkt("version=1\x00push-options\n") + flush + cmds,
			Push{Commands: []Command{{zero, one, "refs/heads/main"}}}},
		{"push-options before atomic",
			pkt("version=1\x00push-options atomic") + flush + cmds,
			Push{Commands: []Command{{zero, one, "refs/heads/main"}}, Atomic: true}},
		{"a capability that only starts with atomic",
			pkt("version=1\x00atomicity\n") + flush + cmds,
			Push{Commands: []Command{{zero, one, "refs/heads/main"}}}},
		{"later lines of the version block ignored",
			pkt("version=1\n") + pkt("agent=git/9\n") + pkt("version=2\n") + flush + cmds,
			Push{Commands: []Command{{zero, one, "refs/heads/main"}}}},
		{"several commands, with and without newline",
			pkt("version=1\x00atomic\n") + flush +
				pkt(zero+" "+one+" refs/heads/main") +
				pkt(one+" "+two+" refs/tags/v1\n") +
				pkt(two+" "+zero+" refs/heads/old") + flush,
			Push{Commands: []Command{
				{zero, one, "refs/heads/main"},
				{one, two, "refs/tags/v1"},
				{two, zero, "refs/heads/old"},
			}, Atomic: true}},
		{"no commands",
			pkt("version=1\n") + flush + flush,
			Push{}},
		{"upper-case pkt length",
			"000Dversion=1" + flush + cmds,
			Push{Commands: []Command{{zero, one, "refs/heads/main"}}}},
		{"bytes after the last flush are left unread",
			pkt("version=1\n") + flush + cmds + "garbage",
			Push{Commands: []Command{{zero, one, "refs/heads/main"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := ReadPush(bufio.NewReader(strings.NewReader(tt.in)), &out)
			if err != nil {
				t.Fatalf("ReadPush(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReadPush(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if out.String() != versionAnswer {
				t.Errorf("ReadPush answered %q, want %q", out.String(), versionAnswer)
			}
		})
	}
}

// failWriter fails every write.
type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestReadPushErrors(t *testing.T) {
	version := pkt("version=1\x00atomic\n") + flush
	tests := []struct {
		name     string
		in       string
		is       error  // the error wraps this, if set
		msg      string // the error says this
		answered bool   // serve already sent its version
	}{
		{name: "empty", in: "", is: io.EOF, msg: "proc-receive version"},
		{name: "truncated length", in: "00", is: io.ErrUnexpectedEOF},
		{name: "length not hex", in: "zzzzversion=1", msg: `bad pkt-line length "zzzz"`},
		{name: "length with a sign", in: "+00aversion=1", msg: "bad pkt-line length"},
		{name: "length with a space", in: " 00aversion=1", msg: "bad pkt-line length"},
		{name: "delim packet", in: "0001", msg: "bad pkt-line length 1"},
		{name: "response-end packet", in: "0002", msg: "bad pkt-line length 2"},
		{name: "length 3", in: "0003", msg: "bad pkt-line length 3"},
		{name: "longer than LARGE_PACKET_MAX", in: "fff1" + strings.Repeat("x", 0xfff1), msg: "bad pkt-line length 65521"},
		{name: "truncated payload", in: "0010version=1", is: io.ErrUnexpectedEOF},
		{name: "version block without flush", in: pkt("version=1\n"), is: io.EOF},
		{name: "version 2", in: pkt("version=2\n") + flush, msg: `unsupported "version=2`},
		{name: "version 10", in: pkt("version=10\x00atomic") + flush, msg: "unsupported"},
		{name: "no version= prefix", in: pkt("1\n") + flush, msg: "unsupported"},
		{name: "empty first packet", in: "0004" + flush, msg: `unsupported ""`},
		{name: "atomic outside the capability list", in: pkt("version=1 atomic\n") + flush, msg: "unsupported"},
		{name: "no commands flush", in: version + pkt(zero+" "+one+" refs/heads/main"), is: io.EOF, answered: true,
			msg: "proc-receive commands"},
		{name: "truncated command", in: version + "0040" + zero, is: io.ErrUnexpectedEOF, answered: true},
		{name: "bad length among the commands", in: version + "00x0", msg: "bad pkt-line length", answered: true},
		{name: "command with two fields", in: version + pkt(zero+" "+one) + flush, msg: "malformed command", answered: true},
		{name: "command with one field", in: version + pkt("refs/heads/main\n") + flush, msg: "malformed command", answered: true},
		{name: "no version line", in: flush + pkt(zero+" "+one+" refs/heads/main") + flush, msg: "no version"},
		{name: "blank command", in: version + pkt("  ") + flush, msg: "malformed command", answered: true},
		{name: "old value not an object id", in: version + pkt("xyz "+one+" refs/heads/main") + flush, msg: "malformed command", answered: true},
		{name: "no ref name", in: version + pkt(zero+" "+one+" ") + flush, msg: "malformed command", answered: true},
		{name: "empty command", in: version + "0004" + flush, msg: "malformed command", answered: true},
		{name: "ref name with a space", in: version + pkt(zero+" "+one+" refs/heads/s2 x") + flush, is: ErrMalformed, answered: true},
		{name: "ref name with a tab", in: version + pkt(zero+" "+one+" refs/heads/s2\tx") + flush, is: ErrMalformed, answered: true},
		{name: "ref name with a control byte", in: version + pkt(zero+" "+one+" refs/heads/s\x01") + flush, is: ErrMalformed, answered: true},
		{name: "ref name with DEL", in: version + pkt(zero+" "+one+" refs/heads/s\x7f") + flush, is: ErrMalformed, answered: true},
		{name: "ref name with a trailing space", in: version + pkt(zero+" "+one+" refs/heads/s2 ") + flush, is: ErrMalformed, answered: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := ReadPush(bufio.NewReader(strings.NewReader(tt.in)), &out)
			if err == nil {
				t.Fatalf("ReadPush(%.80q) = %+v, want an error", tt.in, got)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("ReadPush(%.80q): %v, want an error wrapping %v", tt.in, err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ReadPush(%.80q): %q, want it to say %q", tt.in, err, tt.msg)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("ReadPush(%.80q): error %q is not one line", tt.in, err)
			}
			// Before a good version block, serve must not answer: receive-pack
			// then sees the hook fail and rejects every ref.
			want := ""
			if tt.answered {
				want = versionAnswer
			}
			if out.String() != want {
				t.Errorf("ReadPush(%.80q) answered %q, want %q", tt.in, out.String(), want)
			}
		})
	}

	t.Run("answer cannot be written", func(t *testing.T) {
		boom := errors.New("boom")
		in := version + pkt(zero+" "+one+" refs/heads/main") + flush
		if _, err := ReadPush(bufio.NewReader(strings.NewReader(in)), failWriter{boom}); !errors.Is(err, boom) {
			t.Errorf("ReadPush = %v, want an error wrapping %v", err, boom)
		}
	})
}

func TestWriteResults(t *testing.T) {
	long := strings.Repeat("x", maxPkt)
	tests := []struct {
		name    string
		results []Result
		want    []string // payloads, then the flush
	}{
		{"none", nil, []string{flush}},
		{"ok", []Result{{Ref: "refs/heads/main"}}, []string{"ok refs/heads/main", flush}},
		{"ng", []Result{{Ref: "refs/heads/main", Err: "no"}}, []string{"ng refs/heads/main no", flush}},
		{"several, in order",
			[]Result{{Ref: "refs/heads/a"}, {Ref: "refs/heads/b", Err: "stale info"}, {Ref: "refs/tags/v1"}},
			[]string{"ok refs/heads/a", "ng refs/heads/b stale info", "ok refs/tags/v1", flush}},
		{"reason with newlines on one line",
			[]Result{{Ref: "refs/heads/main", Err: "cannot record the push:\nthe database is gone\n"}},
			[]string{"ng refs/heads/main cannot record the push: the database is gone", flush}},
		{"reason with CR, tabs and runs of blanks",
			[]Result{{Ref: "refs/heads/main", Err: "  a\r\n\tb   c \v\f d  "}},
			[]string{"ng refs/heads/main a b c d", flush}},
		{"long reason cut to one packet",
			[]Result{{Ref: "refs/heads/main", Err: long}},
			[]string{("ng refs/heads/main " + long)[:maxPkt-4], flush}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := WriteResults(&out, tt.results); err != nil {
				t.Fatalf("WriteResults: %v", err)
			}
			got := readPkts(t, out.Bytes())
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("WriteResults(%+v) = %.200q, want %.200q", tt.results, got, tt.want)
			}
			for _, p := range got[:len(got)-1] {
				if strings.ContainsAny(p, "\n\r") {
					t.Errorf("status line %q spans lines", p)
				}
			}
		})
	}

	t.Run("a whitespace-only reason is still ng", func(t *testing.T) {
		var out bytes.Buffer
		if err := WriteResults(&out, []Result{{Ref: "refs/heads/main", Err: "\n"}}); err != nil {
			t.Fatal(err)
		}
		if got := readPkts(t, out.Bytes()); len(got) != 2 || !strings.HasPrefix(got[0], "ng refs/heads/main") {
			t.Errorf("WriteResults = %q, want one ng line and the flush", got)
		}
	})

	t.Run("write error", func(t *testing.T) {
		boom := errors.New("boom")
		for _, results := range [][]Result{nil, {{Ref: "refs/heads/main"}}} {
			if err := WriteResults(failWriter{boom}, results); !errors.Is(err, boom) {
				t.Errorf("WriteResults(%+v) = %v, want %v", results, err, boom)
			}
		}
	})
}

// TestProtocolRoundTrip runs both halves against each other over a pipe,
// as receive-pack and serve do: each side blocks until the other has
// spoken.
func TestProtocolRoundTrip(t *testing.T) {
	gitR, serveW := io.Pipe()
	serveR, gitW := io.Pipe()
	done := make(chan error, 1)
	var push Push
	go func() {
		var err error
		push, err = ReadPush(bufio.NewReader(serveR), serveW)
		if err == nil {
			err = WriteResults(serveW, []Result{{Ref: push.Commands[0].Ref}, {Ref: push.Commands[1].Ref, Err: "no\nway"}})
		}
		serveW.CloseWithError(err)
		done <- err
	}()

	git := bufio.NewReader(gitR)
	io.WriteString(gitW, pkt("version=1\x00atomic\n")+flush)
	if got := readN(t, git, 2); !reflect.DeepEqual(got, []string{"version=1\x00", flush}) {
		t.Fatalf("version answer %q", got)
	}
	io.WriteString(gitW, pkt(zero+" "+one+" refs/heads/main")+pkt(one+" "+two+" refs/heads/dev")+flush)
	if got := readN(t, git, 3); !reflect.DeepEqual(got, []string{"ok refs/heads/main", "ng refs/heads/dev no way", flush}) {
		t.Fatalf("report %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := Push{Atomic: true, Commands: []Command{{zero, one, "refs/heads/main"}, {one, two, "refs/heads/dev"}}}
	if !reflect.DeepEqual(push, want) {
		t.Errorf("serve read %+v, want %+v", push, want)
	}
}

func readN(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for range n {
		payload, isFlush, err := readPkt(r)
		if err != nil {
			t.Fatalf("after %q: %v", out, err)
		}
		if isFlush {
			out = append(out, flush)
		} else {
			out = append(out, string(payload))
		}
	}
	return out
}

// A malformed command among good ones: every command is read to the
// flush, and the refusal names each ref once, by its first word only, so
// no "ng" line can be read as refusing (or leave unanswered) another ref.
func TestMalformedPushIsRefusedWhole(t *testing.T) {
	in := pkt("version=1\n") + flush +
		pkt(zero+" "+one+" refs/heads/s2") + pkt(zero+" "+one+" refs/heads/s2 x") +
		pkt(zero+" "+two+" refs/heads/other") + flush + "after"
	r := bufio.NewReader(strings.NewReader(in))
	p, err := ReadPush(r, io.Discard)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("ReadPush = %v, want ErrMalformed", err)
	}
	if len(p.Commands) != 3 {
		t.Fatalf("ReadPush read %d commands, want all 3: %+v", len(p.Commands), p.Commands)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "after" {
		t.Errorf("ReadPush left %q unread, want the bytes after the flush", rest)
	}
	var out bytes.Buffer
	if err := WriteResults(&out, RefuseAll(p, "malformed")); err != nil {
		t.Fatal(err)
	}
	want := []string{"ng refs/heads/s2 malformed", "ng refs/heads/other malformed", flush}
	if got := readPkts(t, out.Bytes()); !reflect.DeepEqual(got, want) {
		t.Errorf("answer %q, want %q", got, want)
	}
}
