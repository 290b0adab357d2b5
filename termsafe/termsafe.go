// Package termsafe makes text from users safe to print on a terminal: ref
// names, user names and key comments reach an operator's screen through
// `gitmesh log`, `thaw` and `key list`, and a control character or a
// right-to-left override in them must not move the cursor, recolour the
// screen or disguise what is printed.
// It knows nothing else of gitmesh.
package termsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every character a terminal could act on spelt as
// a Go-style escape: C0 and C1 controls and DEL (\x1b, \u009b), Unicode
// format characters such as the bidirectional overrides and isolates
// (\u202e, \u2066) and zero-width characters, line and paragraph
// separators, and each byte that is not valid UTF-8 (\xff). A backslash
// becomes \\, so the escaped text reads back unambiguously. Text with none
// of these is returned unchanged.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < utf8.RuneSelf && Unsafe(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case Unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Unsafe reports whether a terminal may act on r rather than show it:
// controls (Cc, which holds C0, DEL and C1), format characters (Cf: the
// bidirectional marks, embeddings, overrides and isolates, zero-width
// characters) and the line and paragraph separators.
func Unsafe(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == '\\' || Unsafe(r) || r == utf8.RuneError && n == 1 {
			return true
		}
		i += n
	}
	return false
}
