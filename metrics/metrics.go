// Package metrics turns what PostgreSQL records about the cluster (each
// copy's version, sync_log, push_attempts) into Prometheus metrics, for
// node_exporter's textfile collector.
// It reads only; it knows nothing of how the text is collected.
package metrics

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"gitmesh/admin"
	"gitmesh/db"
	"gitmesh/health"
	"gitmesh/version"
)

// PushResults are the push_attempts results, each given a series per
// device (0 when none happened), so rates start from the first scrape.
var PushResults = []string{version.PushOK, version.PushUnchanged, version.PushFrozen,
	version.PushLockTimeout, version.PushNoQuorum, version.PushNotRecorded, version.PushError}

// Probe reports why a device cannot be reached, nil when it can
// (health.Prober.Probe); health.ErrNotProbed when this host cannot tell.
type Probe func(ctx context.Context, dev admin.Device) error

// Write reads the cluster's state from d and writes it to w in the
// Prometheus text format; quorum is the write_quorum setting (0: a
// majority). With probe, every device is probed at once and
// gitmesh_device_up says which answered. Nothing is written when a query
// fails.
func Write(ctx context.Context, d *sql.DB, quorum int, probe Probe, w io.Writer) error {
	pending, err := db.Pending(ctx, d)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("the database lacks migrations %s; run 'gitmesh migrate'", strings.Join(pending, ", "))
	}
	c := &collector{}
	rows, err := admin.Status(ctx, d, "", quorum)
	if err != nil {
		return fmt.Errorf("read versions: %w", err)
	}
	copies(rows, c)
	for _, f := range []func(context.Context, *sql.DB, int, *collector) error{syncs, pushes} {
		if err := f(ctx, d, quorum, c); err != nil {
			return err
		}
	}
	if probe != nil {
		if err := probes(ctx, d, probe, rows, c); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if err := c.writeText(&buf); err != nil {
		return err
	}
	_, err = buf.WriteTo(w)
	return err
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// copies: each holder's copy's version, lag and state, as `status` sees
// them (a holder with no version recorded yet at -1, lagging), and per
// repository the quorum figures.
func copies(rows []admin.CopyStatus, c *collector) {
	ver := c.desc("gitmesh_copy_version", "Recorded version of the repository's copy on the device, a holder; -1 for a holder with none recorded yet (placed, not yet caught up).", "repository", "device")
	lag := c.desc("gitmesh_copy_version_lag", "Versions the copy is behind the repository's newest recorded version.", "repository", "device")
	frozen := c.desc("gitmesh_copy_frozen", "1 when a write on this copy never finished and its writer's session is gone: the repository is frozen for writes.", "repository", "device")
	writing := c.desc("gitmesh_copy_writing", "1 while a write mark is set on this copy (a push in progress, or frozen).", "repository", "device")
	pending := c.desc("gitmesh_copy_pending", "1 when the copy holds its version staged but not yet shown; its next read shows it.", "repository", "device")
	below := c.desc("gitmesh_repository_below_quorum", "1 when fewer devices hold the newest version than the write quorum.", "repository")
	newest := c.desc("gitmesh_repository_hold_newest", "Holders that hold the repository's newest version.", "repository")
	need := c.desc("gitmesh_repository_quorum", "Devices a push must reach to be acknowledged (write_quorum).", "repository")
	held := c.desc("gitmesh_repository_holders", "Devices placed to hold the repository (its holders): the quorum is counted over them.", "repository")
	for i, r := range rows {
		c.add(ver, float64(r.Version), r.Repository, r.Device)
		c.add(lag, float64(r.Lag), r.Repository, r.Device)
		c.add(frozen, b2f(r.Frozen), r.Repository, r.Device)
		c.add(writing, b2f(r.IsWriting), r.Repository, r.Device)
		c.add(pending, b2f(r.Pending), r.Repository, r.Device)
		if i+1 < len(rows) && rows[i+1].Repository == r.Repository {
			continue // the per-repository figures once, from its last row
		}
		c.add(below, b2f(r.BelowQuorum), r.Repository)
		c.add(newest, float64(r.HoldNewest), r.Repository)
		c.add(need, float64(r.Quorum), r.Repository)
		c.add(held, float64(r.Holders), r.Repository)
	}
}

// syncQuery sums sync_log in one pass, per repository and device:
// catch-up fetches, their time and failures, heals, and the last
// successful fetch. It groups by ids first and names the groups after,
// so that only the groups are sorted (by name), not every row. Every
// registered device gets a row. Its cost grows with the rows sync_log
// keeps (log_retention), not with the repositories.
const syncQuery = `
WITH s AS (
  SELECT device_id, repository_id,
         count(*) FILTER (WHERE kind = 'fetch') AS fetches,
         COALESCE(sum(duration_ms) FILTER (WHERE kind = 'fetch'), 0) AS ms,
         count(*) FILTER (WHERE kind = 'fetch' AND result <> 'ok') AS fails,
         count(*) FILTER (WHERE kind = 'heal' AND result LIKE 'ok%') AS heals,
         count(*) FILTER (WHERE kind = 'heal' AND result LIKE 'frozen: %') AS refused,
         max(created_at) FILTER (WHERE kind = 'fetch' AND result = 'ok') AS last
  FROM sync_log GROUP BY device_id, repository_id)
SELECT d.name, COALESCE(r.name, ''), COALESCE(s.fetches, 0), COALESCE(s.ms, 0), COALESCE(s.fails, 0),
       COALESCE(s.heals, 0), COALESCE(s.refused, 0), COALESCE(extract(epoch FROM s.last)::float8, 0)
FROM devices d
LEFT JOIN s ON s.device_id = d.id
LEFT JOIN repositories r ON r.id = s.repository_id
ORDER BY d.name, r.name`

func syncs(ctx context.Context, d *sql.DB, _ int, c *collector) error {
	n := c.desc("gitmesh_fetches_total", "Fetches this device made from a peer to catch up (sync_log, kind fetch).", "device")
	secs := c.desc("gitmesh_fetch_seconds_total", "Time this device spent in those fetches.", "device")
	failed := c.desc("gitmesh_fetch_failures_total", "Those fetches that failed.", "device")
	heals := c.desc("gitmesh_heals_total", "Repairs gitmesh made by itself on this device after a writer died (sync_log, kind heal).", "device")
	refused := c.desc("gitmesh_heal_refusals_total", "Repairs this device could not make: the repository stays frozen until thawed (sync_log, kind heal, frozen).", "device")
	last := c.desc("gitmesh_last_sync_timestamp_seconds", "When this device last fetched the repository from a peer successfully (Unix time).", "repository", "device")
	type sums struct{ count, ms, fails, heals, refused int64 }
	per := map[string]*sums{}
	var devs []string
	rows, err := d.QueryContext(ctx, syncQuery)
	if err != nil {
		return fmt.Errorf("read sync_log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dev, repo string
		var x sums
		var at float64
		if err := rows.Scan(&dev, &repo, &x.count, &x.ms, &x.fails, &x.heals, &x.refused, &at); err != nil {
			return fmt.Errorf("read sync_log: %w", err)
		}
		if per[dev] == nil {
			per[dev] = &sums{}
			devs = append(devs, dev)
		}
		p := per[dev]
		p.count, p.ms, p.fails, p.heals = p.count+x.count, p.ms+x.ms, p.fails+x.fails, p.heals+x.heals
		p.refused += x.refused
		if at > 0 {
			c.add(last, at, repo, dev)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read sync_log: %w", err)
	}
	for _, dev := range devs {
		p := per[dev]
		c.add(n, float64(p.count), dev)
		c.add(secs, float64(p.ms)/1000, dev)
		c.add(failed, float64(p.fails), dev)
		c.add(heals, float64(p.heals), dev)
		c.add(refused, float64(p.refused), dev)
	}
	return nil
}

// pushQuery sums push_attempts per device and result.
const pushQuery = `
SELECT d.name, COALESCE(p.result, ''), count(p.id), COALESCE(sum(p.duration_ms), 0),
       count(p.id) FILTER (WHERE p.lock_wait_ms > 0), COALESCE(sum(p.lock_wait_ms), 0)
FROM devices d LEFT JOIN push_attempts p ON p.device_id = d.id
GROUP BY d.name, p.result ORDER BY d.name, p.result`

func pushes(ctx context.Context, d *sql.DB, _ int, c *collector) error {
	n := c.desc("gitmesh_pushes_total", "Pushes this device took, by how they ended (ok: a version was recorded).", "device", "result")
	secs := c.desc("gitmesh_push_seconds_total", "Time those pushes took, from the first database step to the answer.", "device")
	waits := c.desc("gitmesh_push_lock_waits_total", "Pushes that had to wait for the repository's write lock.", "device")
	waited := c.desc("gitmesh_push_lock_wait_seconds_total", "Time pushes spent waiting for the write lock.", "device")
	type sums struct{ ms, waits, waitMS int64 }
	per := map[string]*sums{}
	counts := map[[2]string]int64{}
	var devs []string
	rows, err := d.QueryContext(ctx, pushQuery)
	if err != nil {
		return fmt.Errorf("read push_attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dev, result string
		var count, ms, nwaits, waitMS int64
		if err := rows.Scan(&dev, &result, &count, &ms, &nwaits, &waitMS); err != nil {
			return fmt.Errorf("read push_attempts: %w", err)
		}
		if per[dev] == nil {
			per[dev] = &sums{}
			devs = append(devs, dev)
		}
		per[dev].ms += ms
		per[dev].waits += nwaits
		per[dev].waitMS += waitMS
		if result != "" {
			counts[[2]string{dev, result}] += count
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read push_attempts: %w", err)
	}
	for _, dev := range devs {
		results := append([]string{}, PushResults...)
		for k := range counts {
			if k[0] == dev && !contains(results, k[1]) {
				results = append(results, k[1]) // one a newer gitmesh wrote
			}
		}
		for _, r := range results {
			c.add(n, float64(counts[[2]string{dev, r}]), dev, r)
		}
		s := per[dev]
		c.add(secs, float64(s.ms)/1000, dev)
		c.add(waits, float64(s.waits), dev)
		c.add(waited, float64(s.waitMS)/1000, dev)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// probes probes every device at once, as `check` does: 1 when it answered,
// 0 when not; no series for a device this host cannot probe (no cluster
// key or known_hosts for an ssh:// device). Per repository, how many of
// its holders answered (copies are status's rows, one per holder), for a
// repository whose holders were all probed: fewer than its quorum, and
// pushes to it are refused (as `check` says, health.Unreachable).
func probes(ctx context.Context, d *sql.DB, probe Probe, copies []admin.CopyStatus, c *collector) error {
	devs, err := admin.Devices(ctx, d)
	if err != nil {
		return fmt.Errorf("read devices: %w", err)
	}
	up := c.desc("gitmesh_device_up", "1 when the device answered a probe (its repo root readable, over ssh with the cluster key for an ssh:// device), 0 when not.", "device")
	holdersUp := c.desc("gitmesh_repository_holders_up", "Holders of the repository that answered the probe; fewer than gitmesh_repository_quorum and pushes to it are refused.", "repository")
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i, dev := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = probe(ctx, dev)
		}()
	}
	wg.Wait()
	answered := map[string]bool{}
	probed := map[string]bool{}
	for i, dev := range devs {
		if !errors.Is(errs[i], health.ErrNotProbed) {
			c.add(up, b2f(errs[i] == nil), dev.Name)
			probed[dev.Name], answered[dev.Name] = true, errs[i] == nil
		}
	}
	n, all := 0, true
	for i, r := range copies {
		n += int(b2f(answered[r.Device]))
		all = all && probed[r.Device]
		if i+1 < len(copies) && copies[i+1].Repository == r.Repository {
			continue
		}
		if all {
			c.add(holdersUp, float64(n), r.Repository)
		}
		n, all = 0, true
	}
	return nil
}
