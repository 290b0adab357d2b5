// Package schema holds gitmesh's PostgreSQL migrations, applied in name order.
// It holds SQL text only.
package schema

import "embed"

// Files holds the *.sql migrations.
//
//go:embed *.sql
var Files embed.FS
