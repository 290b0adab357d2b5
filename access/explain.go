package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Rule is one stored grant.
type Rule struct {
	Subject Subject `json:"-"`
	Who     string  `json:"who"` // "user alice" or "group devs"
	Pattern string  `json:"pattern"`
	Level   Level   `json:"-"`
	LevelS  string  `json:"level"`
}

func newRule(name string, group bool, pattern string, level int) Rule {
	s := Subject{Name: name, Group: group}
	return Rule{Subject: s, Who: s.String(), Pattern: pattern, Level: Level(level), LevelS: Level(level).String()}
}

// Revoke removes the grant to who on exactly pattern (as it was granted).
// Other grants that also match the same repositories stay.
func Revoke(ctx context.Context, d *sql.DB, who Subject, pattern string) (Rule, error) {
	q := `DELETE FROM grants g USING users s WHERE g.user_id = s.id AND s.name = $1 AND g.pattern = $2 RETURNING g.level`
	if who.Group {
		q = `DELETE FROM grants g USING groups s WHERE g.group_id = s.id AND s.name = $1 AND g.pattern = $2 RETURNING g.level`
	}
	var level int
	err := d.QueryRowContext(ctx, q, who.Name, pattern).Scan(&level)
	if errors.Is(err, sql.ErrNoRows) {
		return Rule{}, fmt.Errorf("%s has no grant on %s ('gitmesh grants' lists them all)", who, pattern)
	}
	if err != nil {
		return Rule{}, fmt.Errorf("revoke %s from %s: %w", pattern, who, err)
	}
	return newRule(who.Name, who.Group, pattern, level), nil
}

// Rules lists every grant: users first, then groups, by name and pattern.
func Rules(ctx context.Context, d *sql.DB) ([]Rule, error) {
	rows, err := d.QueryContext(ctx, `
		SELECT COALESCE(u.name, g.name), g.name IS NOT NULL, r.pattern, r.level
		FROM grants r
		LEFT JOIN users u ON u.id = r.user_id
		LEFT JOIN groups g ON g.id = r.group_id
		ORDER BY 2, 1, r.pattern`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Rule
	for rows.Next() {
		var (
			name, pattern string
			group         bool
			level         int
		)
		if err := rows.Scan(&name, &group, &pattern, &level); err != nil {
			return nil, err
		}
		out = append(out, newRule(name, group, pattern, level))
	}
	return out, rows.Err()
}

// Explanation says what a user may do with a repository, and why.
type Explanation struct {
	User       string `json:"user"`
	Repo       string `json:"repository"`
	RepoExists bool   `json:"repository_exists"`
	Level      Level  `json:"-"`
	LevelS     string `json:"level"`
	// Matches are the grants that apply, strongest first. The user's level
	// is the strongest of them; no match means no access.
	Matches []Match `json:"matches"`
}

// Match is one grant that applies to the user and repository.
type Match struct {
	Pattern string `json:"pattern"`
	Level   string `json:"level"`
	Group   string `json:"group,omitempty"` // "" for a grant to the user directly
}

// GrantsOf is the access rule, shared by serve (version's lookup query)
// and `access`: the grants r of user $1, direct or through any of the
// user's groups, whose pattern matches repository $2.
const GrantsOf = `grants r
WHERE $2 ~ r.regex
  AND (r.user_id = (SELECT id FROM users WHERE name = $1)
       OR r.group_id IN (SELECT m.group_id FROM group_members m
                         JOIN users u ON u.id = m.user_id WHERE u.name = $1))`

// explainQuery lists the grants that give user $1 access to repository $2.
const explainQuery = `
SELECT r.level, r.pattern, COALESCE(g.name, '')
FROM (SELECT r.* FROM ` + GrantsOf + `) r
LEFT JOIN groups g ON g.id = r.group_id
ORDER BY r.level DESC, g.name NULLS FIRST, r.pattern`

// Explain reports user's access to repo. The repository need not exist
// yet: pattern grants already cover it.
func Explain(ctx context.Context, d *sql.DB, user, repo string) (Explanation, error) {
	e := Explanation{User: user, Repo: repo, Matches: []Match{}}
	var userExists bool
	if err := d.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE name = $1),
		EXISTS (SELECT 1 FROM repositories WHERE name = $2)`, user, repo).Scan(&userExists, &e.RepoExists); err != nil {
		return e, fmt.Errorf("explain access of %s to %s: %w", user, repo, err)
	}
	if !userExists {
		return e, noUser(user)
	}
	rows, err := d.QueryContext(ctx, explainQuery, user, repo)
	if err != nil {
		return e, fmt.Errorf("explain access of %s to %s: %w", user, repo, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			level int
			m     Match
		)
		if err := rows.Scan(&level, &m.Pattern, &m.Group); err != nil {
			return e, err
		}
		m.Level = Level(level).String()
		e.Level = max(e.Level, Level(level))
		e.Matches = append(e.Matches, m)
	}
	e.LevelS = e.Level.String()
	return e, rows.Err()
}
