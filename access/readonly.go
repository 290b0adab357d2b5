package access

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// ReadOnlyError refuses a push by a user who may read the repository: such
// a user may know it exists, so the answer says why and who can help
// (users without read get the not-found answer instead).
type ReadOnlyError struct {
	Repo   string
	Admins []string // users with admin on the repository, by name
}

// shownAdmins bounds the names a refusal lists.
const shownAdmins = 5

func (e *ReadOnlyError) Error() string {
	msg := fmt.Sprintf("you may read %s but not push to it; ", e.Repo)
	if len(e.Admins) == 0 {
		return msg + "ask a gitmesh administrator for write access"
	}
	names := e.Admins
	more := ""
	if len(names) > shownAdmins {
		more = fmt.Sprintf(" and %d more", len(names)-shownAdmins)
		names = names[:shownAdmins]
	}
	return msg + fmt.Sprintf("ask an administrator of %s (users with admin on it: %s%s) for write access",
		e.Repo, strings.Join(names, ", "), more)
}

// adminsQuery lists the users with admin on repository $1, directly or
// through a group.
const adminsQuery = `
SELECT DISTINCT u.name FROM grants r
JOIN users u ON u.id = r.user_id
   OR u.id IN (SELECT m.user_id FROM group_members m WHERE m.group_id = r.group_id)
WHERE $1 ~ r.regex AND r.level >= $2
ORDER BY u.name`

// ReadOnly is the refusal of a push to repo by a user who may only read it.
func ReadOnly(ctx context.Context, q *sql.DB, repo string) error {
	rows, err := q.QueryContext(ctx, adminsQuery, repo, int(Admin))
	if err != nil {
		return fmt.Errorf("list administrators of %s: %w", repo, err)
	}
	defer rows.Close()
	e := &ReadOnlyError{Repo: repo}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("list administrators of %s: %w", repo, err)
		}
		e.Admins = append(e.Admins, name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list administrators of %s: %w", repo, err)
	}
	return e
}
