package db

import (
	"context"
	"fmt"
	"io/fs"
	"sort"

	schema "gitmesh/sql"
)

// Pending lists the embedded migrations the database has not applied:
// all of them on a database `gitmesh migrate` never ran on.
func Pending(ctx context.Context, q Queryer) ([]string, error) {
	names, err := fs.Glob(schema.Files, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	exists, err := tableExists(ctx, q, "schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	if !exists {
		return names, nil // `gitmesh migrate` never ran here
	}
	applied, err := Strings(ctx, q, `SELECT name FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	done := map[string]bool{}
	for _, n := range applied {
		done[n] = true
	}
	var out []string
	for _, n := range names {
		if !done[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

func tableExists(ctx context.Context, q Queryer, name string) (bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, name)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var ok bool
	if rows.Next() {
		err = rows.Scan(&ok)
	}
	return ok, err
}
