package meshtest

import (
	"time"
)

// WaitConverged waits until every registered device shows the newest
// version of repo (recorded, not merely staged) and no write is in
// progress, and fails the test after 30 seconds. It returns that version.
func (c *Cluster) WaitConverged(repo string) int64 {
	c.T.Helper()
	d := c.DB()
	var v int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var lagging int
		err := d.QueryRow(`
			SELECT (SELECT count(*) FROM devices dv WHERE NOT EXISTS (
			          SELECT 1 FROM working_copy_versions w
			          WHERE w.repository_id = r.id AND w.device_id = dv.id AND NOT w.refs_pending AND NOT w.is_writing
			            AND w.version = (SELECT max(version) FROM working_copy_versions m WHERE m.repository_id = r.id))),
			       (SELECT max(version) FROM working_copy_versions m WHERE m.repository_id = r.id)
			FROM repositories r WHERE r.name = $1`, repo).Scan(&lagging, &v)
		if err == nil && lagging == 0 {
			return v
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("%s did not converge on every device within 30s (%d lagging, err %v)", repo, lagging, err)
		}
	}
}
