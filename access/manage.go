package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/lib/pq"

	"gitmesh/db"
	"gitmesh/gitexec"
)

// ErrExists and ErrUnknown describe admin input that names the wrong thing;
// ErrInvalid input that breaks a rule (exit 2).
var (
	ErrExists  = errors.New("already exists")
	ErrUnknown = errors.New("unknown")
	ErrInvalid = errors.New("bad")
)

// ValidateName checks a user, group or device name. "help" is reserved:
// no command takes it as a name (it asks for help).
func ValidateName(kind, name string) error {
	if name == "help" {
		return fmt.Errorf("%w %s name %q: it is reserved; choose another", ErrInvalid, kind, name)
	}
	if !validName(name) {
		return fmt.Errorf("%w %s name %q: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'", ErrInvalid, kind, name)
	}
	return nil
}

// validName reports whether name is 1 to 64 bytes of letters, digits, '.',
// '_' and '-', not starting with '.' or '-'. A loop, not a regexp: serve
// would compile the regexp on every start.
func validName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// IsUniqueViolation reports a duplicate key.
func IsUniqueViolation(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23505"
}

// AddUser creates a user with no access.
func AddUser(ctx context.Context, d *sql.DB, name string) error {
	if err := ValidateName("user", name); err != nil {
		return err
	}
	_, err := d.ExecContext(ctx, `INSERT INTO users (name) VALUES ($1)`, name)
	if IsUniqueViolation(err) {
		return fmt.Errorf("user %s %w", name, ErrExists)
	}
	return err
}

// PatternRegex validates a repository name or glob ("team/*": '*' matches
// any run of characters within one path segment, never a '/') and returns
// the anchored regular expression PostgreSQL matches names against.
func PatternRegex(pattern string) (string, error) {
	if !strings.Contains(pattern, "*") {
		if err := gitexec.ValidateName(pattern); err != nil {
			return "", err
		}
		return "^" + regexp.QuoteMeta(pattern) + "$", nil
	}
	if strings.Contains(pattern, "**") {
		return "", fmt.Errorf("%w: bad pattern %q: '**' is not supported; '*' matches within one path segment, so grant 'team/*' and 'team/*/*' separately", gitexec.ErrBadName, pattern)
	}
	// Validate the glob as a name with each '*' standing for one letter.
	if err := gitexec.ValidateName(strings.ReplaceAll(pattern, "*", "x")); err != nil {
		return "", fmt.Errorf("bad pattern %q: %w", pattern, err)
	}
	parts := strings.Split(pattern, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return "^" + strings.Join(parts, "[^/]*") + "$", nil
}

// Subject is who a grant is for: a user, or every member of a group.
type Subject struct {
	Name  string
	Group bool
}

func (s Subject) String() string {
	if s.Group {
		return "group " + s.Name
	}
	return "user " + s.Name
}

// GrantTo gives a user or group level on a repository or pattern,
// replacing an earlier grant to the same subject on the same pattern. An
// exact name must be an existing repository; a pattern also covers
// repositories created later.
func GrantTo(ctx context.Context, d *sql.DB, who Subject, pattern string, level Level) error {
	if level < Read || level > Admin {
		return fmt.Errorf("grant %s: level %s is not read, write or admin", pattern, level)
	}
	re, err := PatternRegex(pattern)
	if err != nil {
		return err
	}
	if !strings.Contains(pattern, "*") {
		var ok bool
		if err := d.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM repositories WHERE name = $1)`, pattern).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("repository %q is not registered (grant a pattern such as 'team/*' to cover repositories not created yet)", pattern)
		}
	}
	q := grantUserQuery
	if who.Group {
		q = grantGroupQuery
	}
	res, err := d.ExecContext(ctx, q, who.Name, pattern, re, int(level))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return noSubject(who)
	}
	return nil
}

const grantUserQuery = `
	INSERT INTO grants (user_id, pattern, regex, level)
	SELECT id, $2, $3, $4 FROM users WHERE name = $1
	ON CONFLICT (user_id, pattern) WHERE user_id IS NOT NULL
	DO UPDATE SET level = excluded.level, regex = excluded.regex`

const grantGroupQuery = `
	INSERT INTO grants (group_id, pattern, regex, level)
	SELECT id, $2, $3, $4 FROM groups WHERE name = $1
	ON CONFLICT (group_id, pattern) WHERE group_id IS NOT NULL
	DO UPDATE SET level = excluded.level, regex = excluded.regex`

// Users lists user names.
func Users(ctx context.Context, d *sql.DB) ([]string, error) {
	return db.Strings(ctx, d, `SELECT name FROM users ORDER BY name`)
}

// RemoveUser deletes a user with its keys, grants and memberships.
func RemoveUser(ctx context.Context, d *sql.DB, name string) error {
	res, err := d.ExecContext(ctx, `DELETE FROM users WHERE name = $1`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w user %q: 'gitmesh user list' lists the users", ErrUnknown, name)
	}
	return nil
}
