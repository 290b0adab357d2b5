package synclog

import "testing"

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ok", "ok"},
		{"", ""},
		{"fetch failed:\nfatal: x", `fetch failed:\nfatal: x`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"tab\there", `tab\there`},
		{"cr\rover", `cr\rover`},
		{`a\nb`, `a\\nb`}, // a literal backslash stays tellable from an escape
		{"bad \xff byte", `bad \xff byte`},
		{"bidi \u202e gnirts", `bidi \u202e gnirts`},
		{"line\u2028sep", `line\u2028sep`},
		{"del\x7f", `del\x7f`},
		{"café ✓", "café ✓"},
	} {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"ok", "a\nb", "\x1b[2J", "\xff\xfe", "\u202e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range Escape(s) {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' || r == '\u202e' {
				t.Fatalf("Escape(%q) keeps control character %U", s, r)
			}
		}
	})
}
