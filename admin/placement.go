package admin

import (
	"context"
	"fmt"
	"sort"

	"gitmesh/access"
)

// Candidate is a device placement may choose, with how many copies it
// holds now.
type Candidate struct {
	ID     int32
	Name   string
	Zone   string
	Copies int
}

// candidatesQuery lists every device with its zone and number of copies.
const candidatesQuery = `
SELECT d.id, d.name, d.zone, count(h.repository_id)
FROM devices d LEFT JOIN holders h ON h.device_id = d.id
GROUP BY d.id ORDER BY d.name`

// Candidates reads every device with its zone and copies.
func Candidates(ctx context.Context, q queryer) ([]Candidate, error) {
	rows, err := q.QueryContext(ctx, candidatesQuery)
	if err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	defer rows.Close()
	var out []Candidate
	for rows.Next() {
		var c Candidate
		if err := rows.Scan(&c.ID, &c.Name, &c.Zone, &c.Copies); err != nil {
			return nil, fmt.Errorf("read devices: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Place chooses n devices from cands to join have (the devices already
// holding the repository): a zone none of the chosen or held devices is
// in first, as Spokes spreads over data centres; then the fewest copies;
// then the name, so that the same state gives the same answer. It returns
// fewer than n when cands run out.
func Place(cands, have []Candidate, n int) []Candidate {
	used := map[string]bool{}
	taken := map[int32]bool{}
	for _, h := range have {
		used[h.Zone] = true
		taken[h.ID] = true
	}
	left := make([]Candidate, 0, len(cands))
	for _, c := range cands {
		if !taken[c.ID] {
			left = append(left, c)
		}
	}
	var out []Candidate
	for len(out) < n && len(left) > 0 {
		sort.SliceStable(left, func(i, j int) bool {
			a, b := left[i], left[j]
			if used[a.Zone] != used[b.Zone] {
				return !used[a.Zone]
			}
			if a.Copies != b.Copies {
				return a.Copies < b.Copies
			}
			return a.Name < b.Name
		})
		out = append(out, left[0])
		used[left[0].Zone] = true
		left = left[1:]
	}
	return out
}

// CheckCopies refuses a number of copies placement cannot give: below 1,
// or above the registered devices when asked for explicitly.
func CheckCopies(n, devices int, explicit bool) error {
	if n < 1 {
		return fmt.Errorf("%w number of copies %d: a repository needs at least one", access.ErrInvalid, n)
	}
	if explicit && n > devices {
		return fmt.Errorf("%w number of copies %d: only %d devices are registered", access.ErrInvalid, n, devices)
	}
	return nil
}
