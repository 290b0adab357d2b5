package access

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// User, group and device names: 1 to 64 of [A-Za-z0-9._-], not starting
// with '.' or '-'.
func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"a", true},
		{"_", true},
		{"0", true},
		{"Bob_2.dev-x", true},
		{"a.", true},
		{"a-", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{".alice", false},
		{"-alice", false},
		{"al ice", false},
		{"al/ice", false},
		{"alice\n", false},
		{"\nalice", false},
		{"al\x00ice", false},
		{"alicé", false},
		{"al@ice", false},
		{"al*", false},
		{"help", false}, // reserved: "user add help" asks for help
		{"Help", true},
		{"helpdesk", true},
	}
	for _, tt := range tests {
		err := ValidateName("user", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, not ErrInvalid", tt.name, err)
		}
	}
}

// The byte loop accepts exactly what the regular expression it replaced
// accepted, on every string of up to three bytes over an alphabet that
// holds each class of byte, and on both sides of the length limit.
func TestValidNameMatchesTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)
	alphabet := []string{"a", "Z", "7", "_", ".", "-", "/", " ", "\n", "\x00", "\xff", "é", "*"}
	words, layer := []string{""}, []string{""}
	for n := 0; n < 3; n++ {
		var next []string
		for _, w := range layer {
			for _, a := range alphabet {
				next = append(next, w+a)
			}
		}
		words, layer = append(words, next...), next
	}
	for _, long := range []int{63, 64, 65, 200} {
		words = append(words, strings.Repeat("a", long), "a"+strings.Repeat(".", long-1), "-"+strings.Repeat("a", long-1))
	}
	for _, w := range words {
		if got, want := validName(w), re.MatchString(w); got != want {
			t.Errorf("validName(%q) = %v, the regexp says %v", w, got, want)
		}
	}
}
