package hook

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// FuzzReadPush feeds ReadPush arbitrary bytes, as a broken or hostile
// peer on the socket could. It must never panic, answer only a complete
// version negotiation, and return commands that encode back to themselves.
func FuzzReadPush(f *testing.F) {
	cmd := pkt(zero + " " + one + " refs/heads/main")
	for _, s := range []string{
		"",
		flush,
		pkt("version=1\n") + flush + cmd + flush,
		pkt("version=1\x00atomic push-options\n") + flush + cmd + pkt(one+" "+two+" refs/tags/v1\n") + flush,
		pkt("version=1\x00push-options") + flush + flush,
		pkt("version=2\n") + flush + cmd + flush,
		pkt("version=1\n") + pkt("agent=x") + flush + pkt("a b") + flush,
		pkt("version=1\n") + flush + pkt("  ") + flush,
		pkt("version=1\n") + flush + cmd,
		"0001" + flush, "0003", "fff0", "fff1", "ffff", "zzzz", "00", "0010version=1",
		"0004" + flush,
		pkt("version=1\n") + flush + "0004" + flush,
		pkt("version=1\n") + flush + pkt("a b c\n\n") + flush,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		push, err := ReadPush(bufio.NewReader(bytes.NewReader(in)), &out)
		if o := out.String(); o != "" && o != versionAnswer {
			t.Fatalf("%q: answered %q", in, o)
		}
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("%q: error %q is not one line", in, err)
			}
			return
		}
		if out.String() != versionAnswer {
			t.Fatalf("%q: accepted without answering the version", in)
		}
		if push.Atomic && !bytes.Contains(in, []byte("atomic")) {
			t.Fatalf("%q: atomic without asking", in)
		}
		// Encoded again the way git does, the commands read back the same.
		var again strings.Builder
		again.WriteString(pkt("version=1\n") + flush)
		for _, c := range push.Commands {
			if strings.Contains(c.Old, " ") || strings.Contains(c.New, " ") {
				t.Fatalf("%q: a field holds a blank: %+v", in, c)
			}
			again.WriteString(pkt(c.Old + " " + c.New + " " + c.Ref + "\n"))
		}
		again.WriteString(flush)
		back, err := ReadPush(bufio.NewReader(strings.NewReader(again.String())), &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%q: re-encoded %q: %v", in, again.String(), err)
		}
		if !reflect.DeepEqual(back.Commands, push.Commands) {
			t.Fatalf("%q: read %+v, re-encoded read %+v", in, push.Commands, back.Commands)
		}
		// Whatever serve answers for these refs is well-formed pkt-lines.
		reason := string(in[:min(len(in), 200)]) // bounded: one reason per command
		results := make([]Result, len(push.Commands))
		for i, c := range push.Commands {
			results[i] = Result{Ref: c.Ref, Err: reason}
		}
		var report bytes.Buffer
		if err := WriteResults(&report, results); err != nil {
			t.Fatal(err)
		}
		if got := readPkts(t, report.Bytes()); len(got) != len(results)+1 || got[len(got)-1] != flush {
			t.Fatalf("%q: report %q is not %d lines and a flush", in, got, len(results))
		}
	})
}
