package bench

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"gitmesh/admin"
	"gitmesh/meshtest"
)

// Placement at scale (issue 21): 9 devices in 3 zones, 10,000
// repositories with 3 copies each, placed by gitmesh's own rule
// (admin.Place, as `repo create` calls it), with a history behind them.
const (
	scaleDevices = 9
	scaleRepos   = 10000
	scaleCopies  = 3
	// scaleGoal is what each admin command should take at this scale.
	scaleGoal = 2 * time.Second
)

// BenchmarkPlacementScale builds that cluster once and runs, each as its
// own sub-benchmark: the placement spread (max minus min copies per
// device, after one more repository made by a real `repo create`), and
// the wall time of `gitmesh status`, `status --json`, `check --no-probe`
// and `metrics`, each with its ratio against the 2 s goal and the floor
// every admin command pays (`device list`: process start, config,
// connection, one small query).
func BenchmarkPlacementScale(b *testing.B) {
	c, spread := placedCluster(b)
	a := c.Devices["a"]
	b.Run("spread", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
		}
		if spread[0]-spread[1] > 1 {
			b.Errorf("copies per device from %d to %d: placement should keep them within 1", spread[1], spread[0])
		}
		b.ReportMetric(float64(spread[0]-spread[1]), "spread-copies")
		b.ReportMetric(float64(spread[0]), "max-copies")
		b.ReportMetric(float64(spread[1]), "min-copies")
	})
	for _, cmd := range [][]string{
		{"status"},
		{"status", "--json"},
		{"check", "--no-probe"},
		{"metrics"},
	} {
		name := strings.Join(cmd, "")
		b.Run(strings.ReplaceAll(name, "--", "-"), func(b *testing.B) {
			var took, floor []time.Duration
			for i := 0; i < b.N && i < 5; i++ {
				floor = append(floor, timeAdmin(b, a, "device", "list"))
				took = append(took, timeAdmin(b, a, cmd...))
			}
			b.StopTimer()
			m := median(took)
			b.ReportMetric(float64(m.Milliseconds()), "ms/cmd")
			b.ReportMetric(float64(median(floor).Milliseconds()), "floor-ms")
			b.ReportMetric(float64(m)/float64(scaleGoal), "of-goal")
			if m > scaleGoal {
				b.Logf("gitmesh %s took %s at %d repositories x %d copies, over the %s goal", strings.Join(cmd, " "), m, scaleRepos, scaleCopies, scaleGoal)
			}
		})
	}
}

// placedCluster is the 9-device cluster with scaleRepos repositories
// t/rNNNNN placed by admin.Place in name order, the last of them by
// `gitmesh repo create` itself, so the command agrees with the loop; it
// returns the max and min copies per device. The rows go in with a few
// set-based statements (directories are not made: status, check
// --no-probe and metrics read only the database). Each repository i has
// 1 + i%5 versions, each with its push_log row, push_attempts row and
// sync_log fetches by the other holders; one copy in 50 lags one version
// (for an hour, so check warns), one repository in 1,000 is frozen, and
// ten holders were just placed and have no recorded version yet.
func placedCluster(b *testing.B) (*meshtest.Cluster, [2]int) {
	b.Helper()
	names := make([]string, scaleDevices)
	for i := range names {
		names[i] = string(rune('a' + i))
	}
	c := meshtest.NewCluster(b, names...)
	d := c.DB()
	ctx := context.Background()
	if _, err := d.Exec(`UPDATE devices SET zone = 'z' || ((id - 1) % 3)`); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	cands, err := admin.Candidates(ctx, d)
	if err != nil {
		b.Fatal(err)
	}
	var repos []string
	var devs []int64
	for i := 0; i < scaleRepos-1; i++ {
		name := fmt.Sprintf("t/r%05d", i)
		for _, p := range admin.Place(cands, nil, scaleCopies) {
			repos, devs = append(repos, name), append(devs, int64(p.ID))
			for j := range cands {
				if cands[j].ID == p.ID {
					cands[j].Copies++
				}
			}
		}
	}
	mustExec(b, d, `INSERT INTO repositories (name) SELECT format('t/r%s', lpad(i::text, 5, '0')) FROM generate_series(0, $1 - 2) i`, scaleRepos)
	mustExec(b, d, `INSERT INTO holders (repository_id, device_id, created_at)
		SELECT r.id, p.device_id, now() - interval '6 hours' FROM unnest($1::text[], $2::int[]) p(name, device_id) JOIN repositories r ON r.name = p.name`,
		pq.Array(repos), pq.Array(devs))
	// The repository's number of versions, from its name.
	const top = `(1 + substr(r.name, 4)::int % 5)`
	mustExec(b, d, `INSERT INTO working_copy_versions (repository_id, device_id, version, refs_digest, updated_at)
		SELECT h.repository_id, h.device_id, `+top+`, 'digest', now() - interval '2 hours'
		FROM holders h JOIN repositories r ON r.id = h.repository_id`)
	mustExec(b, d, `INSERT INTO push_log (repository_id, device_id, user_name, ref, old_value, new_value, version, created_at)
		SELECT r.id, (SELECT min(device_id) FROM holders h WHERE h.repository_id = r.id), 'alice', 'refs/heads/main',
		       repeat('0', 40), repeat('1', 40), v, now() - interval '1 hour' * (6 - v)
		FROM repositories r CROSS JOIN LATERAL generate_series(1, `+top+`) v`)
	mustExec(b, d, `INSERT INTO push_attempts (repository_id, device_id, user_name, duration_ms, lock_wait_ms, result, created_at)
		SELECT p.repository_id, p.device_id, p.user_name, 200, p.id % 7, 'ok', p.created_at FROM push_log p`)
	mustExec(b, d, `INSERT INTO sync_log (repository_id, device_id, from_device, from_version, to_version, duration_ms, result, created_at)
		SELECT p.repository_id, h.device_id, p.device_id, p.version - 1, p.version, 30, 'ok', p.created_at + interval '1 second'
		FROM push_log p JOIN holders h ON h.repository_id = p.repository_id AND h.device_id <> p.device_id`)
	// One copy in 50 lags a version: its repository's newest push is an
	// hour old.
	mustExec(b, d, `UPDATE working_copy_versions SET version = version - 1 WHERE id % 50 = 0`)
	mustExec(b, d, `UPDATE working_copy_versions SET is_writing = true,
		write_properties = '{"user": "alice", "device": "a", "pid": 1, "started": "2026-01-01T00:00:00Z"}'
		WHERE id % 3000 = 1`)
	mustExec(b, d, `DELETE FROM working_copy_versions WHERE id % 3000 = 2`)
	mustExec(b, d, `VACUUM ANALYZE`) // as autovacuum would soon: the commands meet a settled database
	b.Logf("filled %d repositories x %d copies in %s", scaleRepos-1, scaleCopies, time.Since(start).Round(time.Millisecond))

	last := fmt.Sprintf("t/r%05d", scaleRepos-1)
	if r := c.Devices["a"].Run(nil, "repo", "create", last); r.Code != 0 {
		b.Fatalf("repo create %s: exit %d: %s", last, r.Code, r.Stderr)
	}
	rows, err := d.Query(`SELECT count(h.repository_id) FROM devices d LEFT JOIN holders h ON h.device_id = d.id GROUP BY d.id`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	spread := [2]int{0, 1 << 30}
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			b.Fatal(err)
		}
		spread = [2]int{max(spread[0], n), min(spread[1], n)}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if want := scaleRepos * scaleCopies; spread[1]*scaleDevices > want || spread[0]*scaleDevices < want {
		b.Fatalf("copies per device from %d to %d: not %d copies over %d devices", spread[1], spread[0], want, scaleDevices)
	}
	return c, spread
}

func mustExec(b *testing.B, d *sql.DB, query string, args ...any) {
	b.Helper()
	if _, err := d.Exec(query, args...); err != nil {
		b.Fatalf("%s: %v", strings.Fields(query)[0], err)
	}
}

// timeAdmin runs a gitmesh admin command on dev and times it; check's
// warning and critical exits (1, 2) are its report, not a failure.
func timeAdmin(b *testing.B, dev *meshtest.Device, args ...string) time.Duration {
	b.Helper()
	start := time.Now()
	r := dev.Run(nil, args...)
	took := time.Since(start)
	if r.Code != 0 && !(args[0] == "check" && r.Code <= 2) || r.Stdout == "" {
		b.Fatalf("gitmesh %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return took
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
