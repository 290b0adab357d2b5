package version

import (
	"context"
	"database/sql"
	"fmt"
)

// restQuery lists every repository device holds, with whether device's copy of it is
// at rest: recorded at the newest version, shown (not pending), and no
// copy of the repository marked as writing. A copy at rest whose
// directory exists needs no catch-up and no heal.
const restQuery = `
SELECT r.name,
       COALESCE(max(v.version) FILTER (WHERE v.device_id = d.id) = max(v.version)
                AND NOT bool_or(v.refs_pending AND v.device_id = d.id)
                AND NOT bool_or(v.is_writing), false)
FROM repositories r
JOIN holders h ON h.repository_id = r.id
JOIN devices d ON d.id = h.device_id AND d.name = $1
LEFT JOIN working_copy_versions v ON v.repository_id = r.id
GROUP BY r.name
ORDER BY r.name`

// Rest is a repository and whether this device's copy is at rest.
type Rest struct {
	Repo   string
	AtRest bool
}

// AtRest reads, in one statement, every repository and whether device's
// copy of it is at rest (restQuery). An unregistered device gets
// ErrNoDevice.
func AtRest(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, device string) ([]Rest, error) {
	rows, err := q.QueryContext(ctx, restQuery, device)
	if err != nil {
		return nil, fmt.Errorf("read copies at rest: %w", err)
	}
	defer rows.Close()
	var out []Rest
	for rows.Next() {
		var r Rest
		if err := rows.Scan(&r.Repo, &r.AtRest); err != nil {
			return nil, fmt.Errorf("read copies at rest: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
