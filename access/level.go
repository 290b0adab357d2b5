// Package access decides who may do what: users, groups, keys and grants.
package access

import "fmt"

// Level is what a grant allows; each level implies the ones below it.
type Level int

// The levels, in order.
const (
	None Level = iota
	Read
	Write
	Admin
)

var levelNames = []string{"none", "read", "write", "admin"}

func (l Level) String() string {
	if l < None || l > Admin {
		return fmt.Sprintf("level(%d)", int(l))
	}
	return levelNames[l]
}

// ParseLevel reads "read", "write" or "admin".
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames[1:] {
		if s == n {
			return Level(i + 1), nil
		}
	}
	return None, fmt.Errorf("unknown access level %q: use read, write or admin", s)
}
