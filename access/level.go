// Package access decides who may do what: users, groups, keys and grants.
// It reads and writes its tables through database/sql; it knows
// nothing of locks, versions or how git is run.
package access

import "fmt"

// Level is what a grant allows; each level implies the ones below it.
type Level int

// The levels, in order. Read allows fetch, clone and archive; Write adds
// push. Admin implies Write: serve treats it exactly as Write, and it marks
// the people who own a repository (the level that future SSH-side
// repository administration will require). Administering gitmesh itself
// (grants, devices, thaw) needs the database, not a grant.
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
