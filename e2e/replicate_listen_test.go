package e2e

import (
	"regexp"
	"testing"

	"gitmesh/meshtest"
)

// replicate's LISTEN connection is opened like every other gitmesh
// connection (db.Listen: the dead-peer dialer, connect_timeout and
// application_name), so pg_stat_activity and status name it.
func TestReplicateListensUnderItsOwnName(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	pushed(t, c)
	startReplicate(t, c, "b")
	db := c.DB()
	var app string
	waitFor(t, "replicate's LISTEN connection", func() bool {
		return db.QueryRow(`SELECT application_name FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN "gitmesh_versions"'`).Scan(&app) == nil
	})
	if !regexp.MustCompile(`^gitmesh replicate [0-9]+$`).MatchString(app) {
		t.Fatalf("replicate's LISTEN connection is named %q; want \"gitmesh replicate <pid>\"", app)
	}
}
