package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lib/pq"
)

// Group is a named set of users; a grant to a group applies to each member.
type Group struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// AddGroup creates an empty group.
func AddGroup(ctx context.Context, d *sql.DB, name string) error {
	if err := ValidateName("group", name); err != nil {
		return err
	}
	_, err := d.ExecContext(ctx, `INSERT INTO groups (name) VALUES ($1)`, name)
	if IsUniqueViolation(err) {
		return fmt.Errorf("group %s %w", name, ErrExists)
	}
	return err
}

// RemoveGroup deletes a group with its memberships and its grants.
func RemoveGroup(ctx context.Context, d *sql.DB, name string) error {
	res, err := d.ExecContext(ctx, `DELETE FROM groups WHERE name = $1`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w group %q: 'gitmesh group list' lists the groups", ErrUnknown, name)
	}
	return nil
}

// Groups lists every group with its members, by name.
func Groups(ctx context.Context, d *sql.DB) ([]Group, error) {
	rows, err := d.QueryContext(ctx, `
		SELECT g.name, COALESCE(array_agg(u.name ORDER BY u.name) FILTER (WHERE u.name IS NOT NULL), '{}')
		FROM groups g
		LEFT JOIN group_members m ON m.group_id = g.id
		LEFT JOIN users u ON u.id = m.user_id
		GROUP BY g.name ORDER BY g.name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		var g Group
		if err := rows.Scan(&g.Name, pq.Array(&g.Members)); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// Members lists a group's members by name.
func Members(ctx context.Context, d *sql.DB, group string) ([]string, error) {
	gs, err := Groups(ctx, d)
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		if g.Name == group {
			return g.Members, nil
		}
	}
	return nil, noGroup(group)
}

// AddMember puts user into group.
func AddMember(ctx context.Context, d *sql.DB, group, user string) error {
	gid, uid, err := groupAndUser(ctx, d, group, user)
	if err != nil {
		return err
	}
	_, err = d.ExecContext(ctx, `INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)`, gid, uid)
	if IsUniqueViolation(err) {
		return fmt.Errorf("user %s is already a member of group %s", user, group)
	}
	return err
}

// RemoveMember takes user out of group.
func RemoveMember(ctx context.Context, d *sql.DB, group, user string) error {
	gid, uid, err := groupAndUser(ctx, d, group, user)
	if err != nil {
		return err
	}
	res, err := d.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = $1 AND user_id = $2`, gid, uid)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %s is not a member of group %s", user, group)
	}
	return nil
}

func groupAndUser(ctx context.Context, d *sql.DB, group, user string) (gid, uid int32, err error) {
	err = d.QueryRowContext(ctx, `SELECT id FROM groups WHERE name = $1`, group).Scan(&gid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, noGroup(group)
	} else if err != nil {
		return 0, 0, err
	}
	err = d.QueryRowContext(ctx, `SELECT id FROM users WHERE name = $1`, user).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, noUser(user)
	}
	return gid, uid, err
}
