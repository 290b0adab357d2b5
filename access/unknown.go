package access

import "fmt"

// unknownError names a user or group that does not exist and says what to
// do about it; it is an ErrUnknown.
type unknownError struct{ msg string }

func (e unknownError) Error() string { return e.msg }
func (e unknownError) Unwrap() error { return ErrUnknown }

// noUser is the answer for a user name that names no user, where one
// must exist (access, grant, key add, group member add).
func noUser(name string) error {
	return unknownError{fmt.Sprintf("user %q does not exist; add it with 'gitmesh user add %s'", name, name)}
}

// noGroup is noUser for groups.
func noGroup(name string) error {
	return unknownError{fmt.Sprintf("group %q does not exist; add it with 'gitmesh group add %s'", name, name)}
}

// noSubject is noUser or noGroup.
func noSubject(s Subject) error {
	if s.Group {
		return noGroup(s.Name)
	}
	return noUser(s.Name)
}
