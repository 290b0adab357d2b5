package termsafe

import (
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"refs/heads/main", "refs/heads/main"},
		{"refs/heads/café-ünïcode", "refs/heads/café-ünïcode"},
		{"", ""},
		{"a\x1b[31mred", `a\x1b[31mred`},
		{"tab\there\nnl\rcr\x7f", `tab\x09here\x0anl\x0dcr\x7f`},
		{"csi\u009b2J", `csi\u009b2J`},                     // C1 CSI, UTF-8 encoded
		{"nel\u0085x", `nel\u0085x`},                       // C1 next line
		{"refs/heads/\u202eevil", `refs/heads/\u202eevil`}, // right-to-left override
		{"\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`},
		{"\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`}, // isolates
		{"lrm\u200ertl\u200fzw\u200bj", `lrm\u200ertl\u200fzw\u200bj`},
		{"ls\u2028ps\u2029", `ls\u2028ps\u2029`},
		{"bad\xffbyte\x9b", `bad\xffbyte\x9b`}, // invalid UTF-8, a lone 0x9b too
		{"back\\slash", `back\\slash`},
		{"\ufffd", "\ufffd"}, // a real replacement character is text
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzEscape: the result is valid UTF-8 with nothing a terminal acts on,
// and text needing no escape comes back unchanged.
func FuzzEscape(f *testing.F) {
	f.Add("refs/heads/\u202emain\x9b\xc2\x9b\\")
	f.Fuzz(func(t *testing.T, in string) {
		out := Escape(in)
		if !utf8.ValidString(out) {
			t.Fatalf("Escape(%q) = %q: not UTF-8", in, out)
		}
		for _, r := range out {
			if Unsafe(r) {
				t.Fatalf("Escape(%q) = %q keeps %U", in, out, r)
			}
		}
		if !needsEscape(in) && out != in {
			t.Fatalf("Escape(%q) = %q changed safe text", in, out)
		}
		if needsEscape(in) && out == in {
			t.Fatalf("Escape(%s) changed nothing", strconv.Quote(in))
		}
	})
}
