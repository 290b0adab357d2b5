package access

import (
	"errors"
	"regexp"
	"testing"

	"gitmesh/gitexec"
)

// Patterns: '*' matches within one segment and never crosses '/'.
func TestPatternRegex(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{"team/app", []string{"team/app"}, []string{"team/apps", "xteam/app", "team/app/x", "team", "team/ap"}},
		{"team/*", []string{"team/app", "team/a.b", "team/x-y"}, []string{"team", "team/sub/app", "other/app", "teamx/app"}},
		{"*", []string{"app", "team"}, []string{"team/app"}},
		{"*/*", []string{"team/app"}, []string{"app", "a/b/c"}},
		{"team/*/app", []string{"team/x/app"}, []string{"team/app", "team/x/y/app"}},
		{"te*m/a*p", []string{"team/app", "tem/ap", "teeem/axxp"}, []string{"team/apps", "te/m/app"}},
		{"v1.0", []string{"v1.0"}, []string{"v1x0"}}, // '.' is literal
		{"a*", []string{"a", "abc"}, []string{"a/b", "ba"}},
	}
	for _, tt := range tests {
		re, err := PatternRegex(tt.pattern)
		if err != nil {
			t.Errorf("PatternRegex(%q): %v", tt.pattern, err)
			continue
		}
		rx := regexp.MustCompile(re)
		for _, n := range tt.match {
			if !rx.MatchString(n) {
				t.Errorf("pattern %q (%s) does not match %q", tt.pattern, re, n)
			}
		}
		for _, n := range tt.noMatch {
			if rx.MatchString(n) {
				t.Errorf("pattern %q (%s) matches %q", tt.pattern, re, n)
			}
		}
	}
	for _, bad := range []string{"", "team/**", "**", "../*", "team/../*", ".*", "team/.*", "-*", "*.git", "team/*/",
		"/team/*", "team//*", "team/*?", "team/[ab]", "team/app;", "te am/*", "team/*\n"} {
		if re, err := PatternRegex(bad); err == nil {
			t.Errorf("PatternRegex(%q) = %s, want a refusal", bad, re)
		} else if !errors.Is(err, gitexec.ErrBadName) {
			t.Errorf("PatternRegex(%q): %v is not a bad name", bad, err)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for _, s := range []string{"read", "write", "admin"} {
		l, err := ParseLevel(s)
		if err != nil || l.String() != s {
			t.Errorf("ParseLevel(%q) = %v, %v", s, l, err)
		}
	}
	for _, s := range []string{"", "none", "READ", "owner", "rw"} {
		if _, err := ParseLevel(s); err == nil {
			t.Errorf("ParseLevel(%q) accepted it", s)
		}
	}
	if !(Read < Write && Write < Admin) {
		t.Fatal("levels out of order: each must imply the ones below")
	}
}
