package gitexec

import (
	"errors"
	"strings"
	"testing"
)

// A digests request is repository names, one a line, bounded in number.
func TestReadDigestsRequest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"team/app\n", []string{"team/app"}},
		{"team/app\nteam/other", []string{"team/app", "team/other"}},
	} {
		got, err := ReadDigestsRequest(strings.NewReader(tc.in))
		if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("ReadDigestsRequest(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"../etc\n", "team/app\n/abs\n", "a b\n", "\n", strings.Repeat("x", 5000) + "\n",
		strings.Repeat("r\n", MaxDigestsRepos+1)} {
		if got, err := ReadDigestsRequest(strings.NewReader(in)); err == nil {
			t.Errorf("ReadDigestsRequest(%.30q) = %d names, want an error", in, len(got))
		}
	}
}

func FuzzReadDigestsRequest(f *testing.F) {
	for _, s := range []string{"team/app\n", "a\nb/c\n", "../x\n", "", "\x00\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ReadDigestsRequest(strings.NewReader(s))
		if err != nil {
			if !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrBadName) {
				t.Fatalf("%q: error %v is neither ErrBadCommand nor ErrBadName", s, err)
			}
			return
		}
		if len(names) > MaxDigestsRepos {
			t.Fatalf("%q: %d names, more than %d", s, len(names), MaxDigestsRepos)
		}
		for _, n := range names {
			if err := ValidateName(n); err != nil || strings.ContainsAny(n, " \n") {
				t.Fatalf("%q: accepted name %q: %v", s, n, err)
			}
		}
	})
}
