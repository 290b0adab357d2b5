// Package health checks the cluster the way a monitoring system asks:
// a list of problems, each warning or critical, and an overall status
// with Nagios's exit codes.
// It reads status; it changes nothing and knows nothing of Nagios's transport.
package health

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"gitmesh/admin"
	"gitmesh/db"
)

// Severity orders statuses; its value is the Nagios exit code.
type Severity int

// The Nagios statuses.
const (
	OK Severity = iota
	Warning
	Critical
	Unknown
)

func (s Severity) String() string {
	return [...]string{"ok", "warning", "critical", "unknown"}[s]
}

// MarshalText writes the status as its name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Problem is one thing an operator should look at.
type Problem struct {
	Severity   Severity `json:"severity"`
	Kind       string   `json:"kind"` // database, frozen, below_quorum, lagging, unreachable, not_probed, migrations, moving, disk_tasks
	Repository string   `json:"repository,omitempty"`
	Device     string   `json:"device,omitempty"`
	Message    string   `json:"message"`
}

// Report is the outcome of a check: the worst severity and every problem,
// the worst first.
type Report struct {
	Status   Severity  `json:"status"`
	Problems []Problem `json:"problems"`
	// Devices and Repositories are how many were checked.
	Devices      int `json:"devices"`
	Repositories int `json:"repositories"`
}

// Options are what a check needs besides the database.
type Options struct {
	Quorum  int           // write_quorum setting; 0 a majority
	LagWarn time.Duration // a copy behind for longer than this is a warning
	// Probe, when set, probes every device; Probe reports why a device
	// cannot be reached, nil when it can.
	Probe func(ctx context.Context, dev admin.Device) error
	// WriteProbe bounds the probe write that tells a database that
	// answers but does not commit (connect_timeout); 0 is db.DefaultStep.
	WriteProbe time.Duration
}

// Check runs every check. An error means the database could not be read:
// the status is then unknown.
func Check(ctx context.Context, d *sql.DB, o Options) (Report, error) {
	r := Report{Problems: []Problem{}}
	if done, err := r.database(ctx, d, o.WriteProbe); done || err != nil {
		return r, err
	}
	pending, err := db.Pending(ctx, d)
	if err != nil {
		return r, err
	}
	if len(pending) > 0 {
		r.add(Problem{Severity: Critical, Kind: "migrations",
			Message: fmt.Sprintf("the database lacks migrations %s; run 'gitmesh migrate'", strings.Join(pending, ", "))})
	}
	copies, err := r.copies(ctx, d, o)
	if err == nil {
		err = r.lagging(ctx, d, o.LagWarn)
	}
	if err == nil {
		err = r.stuck(ctx, d, o.LagWarn)
	}
	if err == nil {
		err = r.devices(ctx, d, o, copies)
	}
	if err != nil && len(pending) == 0 {
		return r, err
	}
	// An old schema explains a failed query: report that, not unknown.
	r.sort()
	return r, nil
}

// database reports a database reached only as a read-only standby (no
// primary: nothing else can be checked, done) and one whose commits stall:
// a probe write must finish within limit.
func (r *Report) database(ctx context.Context, d *sql.DB, limit time.Duration) (done bool, err error) {
	pctx, cancel := db.Bound(ctx, limit)
	defer cancel()
	// A commit that wrote WAL waits for synchronous replication; a bare
	// transaction id writes none. A temporary table dropped at commit
	// writes only catalog rows, touching nothing of gitmesh's.
	_, err = d.ExecContext(pctx, `CREATE TEMPORARY TABLE gitmesh_check_probe (x int) ON COMMIT DROP`)
	if stall := db.Stalled(pctx, "a probe write", limit); stall != nil {
		r.add(Problem{Severity: Critical, Kind: "database",
			Message: stall.Error() + "; pushes fail until it commits again (reads still work)"})
		return false, nil
	}
	if db.IsReadOnly(err) {
		r.add(Problem{Severity: Critical, Kind: "database",
			Message: "the coordination database is reached only as a read-only standby (" + oneLine(err.Error()) + "); promote a standby or list the primary in database_url; pushes and catch-ups fail until then"})
		return true, nil
	}
	return false, err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (r *Report) add(p Problem) {
	r.Problems = append(r.Problems, p)
	r.Status = max(r.Status, p.Severity)
}

func (r *Report) sort() {
	sort.SliceStable(r.Problems, func(i, j int) bool { return r.Problems[i].Severity > r.Problems[j].Severity })
}

// copies reports frozen copies and repositories below the quorum, as
// `status` computes them, and returns status's rows.
func (r *Report) copies(ctx context.Context, d *sql.DB, o Options) ([]admin.CopyStatus, error) {
	rows, err := admin.Status(ctx, d, "", o.Quorum)
	if err != nil {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	for i, c := range rows {
		if c.Frozen {
			who := "a write"
			if c.Writer != nil {
				who = fmt.Sprintf("a push by %s started %s", c.Writer.User, c.Writer.Started.UTC().Format(time.RFC3339))
			}
			r.add(Problem{Severity: Critical, Kind: "frozen", Repository: c.Repository, Device: c.Device,
				Message: fmt.Sprintf("%s is frozen for writes: %s on device %s never finished; see 'gitmesh status %s'",
					c.Repository, who, c.Device, c.Repository)})
		}
		if i+1 < len(rows) && rows[i+1].Repository == c.Repository {
			continue
		}
		r.Repositories++
		if c.BelowQuorum {
			r.add(Problem{Severity: Critical, Kind: "below_quorum", Repository: c.Repository,
				Message: fmt.Sprintf("%s: only %d of %d devices hold the newest version, fewer than the write quorum of %d",
					c.Repository, c.HoldNewest, c.Holders, c.Quorum)})
		}
	}
	return rows, nil
}

// lagQuery lists the holders' copies behind their repository's newest
// version, with how long: since the first version they lack was recorded
// (its push log time, found through push_log_version; a version made by
// thaw has none, so the time the copies holding newer versions were last
// updated stands in), or since the copy's device was placed as a holder
// if that is later. A holder with no version recorded yet (just placed)
// lags every version from -1. Times are the database's, so no clock skew
// enters. One pass over holders and versions finds the lagging copies;
// only those probe push_log, each by index.
const lagQuery = `
WITH copy AS (
  SELECT h.repository_id, h.device_id, h.created_at AS placed, COALESCE(v.version, -1) AS version,
         max(v.version) OVER (PARTITION BY h.repository_id) AS newest
  FROM holders h LEFT JOIN working_copy_versions v USING (repository_id, device_id))
SELECT r.name, d.name, c.version, c.newest - c.version,
       extract(epoch FROM now() - GREATEST(c.placed, COALESCE(
           (SELECT min(p.created_at) FROM push_log p WHERE p.repository_id = c.repository_id AND p.version > c.version),
           (SELECT min(o.updated_at) FROM working_copy_versions o WHERE o.repository_id = c.repository_id AND o.version > c.version))))::float8
FROM copy c
JOIN repositories r ON r.id = c.repository_id
JOIN devices d ON d.id = c.device_id
WHERE c.version < c.newest
ORDER BY r.name, d.name`

// lagging runs lagQuery with JIT compilation off (admin.ReadTx): the
// planner cannot know how few copies lag and prices a probe of push_log
// for a third of them, which at 10,000 repositories crosses
// jit_above_cost and spent more time compiling (0.07-0.15 s) than the
// query takes.
func (r *Report) lagging(ctx context.Context, d *sql.DB, limit time.Duration) error {
	tx, err := admin.ReadTx(ctx, d)
	if err != nil {
		return fmt.Errorf("read lagging copies: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, lagQuery)
	if err != nil {
		return fmt.Errorf("read lagging copies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var repo, dev string
		var at, behind int64
		var secs float64
		if err := rows.Scan(&repo, &dev, &at, &behind, &secs); err != nil {
			return fmt.Errorf("read lagging copies: %w", err)
		}
		since := time.Duration(secs * float64(time.Second))
		if since <= limit {
			continue
		}
		since = since.Round(time.Second)
		what := fmt.Sprintf("%s on device %s is %d version(s) behind the newest", repo, dev, behind)
		if at < 0 {
			what = fmt.Sprintf("%s on device %s has no version recorded yet (a holder placed, not yet caught up), %d version(s) behind the newest", repo, dev, behind)
		}
		r.add(Problem{Severity: Warning, Kind: "lagging", Repository: repo, Device: dev,
			Message: fmt.Sprintf("%s, for %s (more than %s); a read there, 'gitmesh sync' on it or 'gitmesh replicate' catches it up",
				what, since, limit)})
	}
	return rows.Err()
}

// devices probes every device at once. Unreachable devices are critical
// when some repository is left with fewer reachable holders than its
// write quorum (pushes to it are refused), and a warning otherwise;
// copies are status's rows, one per holder.
func (r *Report) devices(ctx context.Context, d *sql.DB, o Options, copies []admin.CopyStatus) error {
	devs, err := admin.Devices(ctx, d)
	if err != nil {
		return fmt.Errorf("read devices: %w", err)
	}
	r.Devices = len(devs)
	if o.Probe == nil {
		return nil
	}
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i, dev := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = o.Probe(ctx, dev)
		}()
	}
	wg.Wait()
	down := map[string]bool{}
	for i, err := range errs {
		switch {
		case errors.Is(err, ErrNotProbed):
			errs[i] = nil // not known to be down; said once below
			r.add(Problem{Severity: Warning, Kind: "not_probed", Device: devs[i].Name,
				Message: fmt.Sprintf("device %s was not probed: %v; set them, or pass --no-probe", devs[i].Name, err)})
		case err != nil:
			down[devs[i].Name] = true
		}
	}
	cut := Unreachable(copies, down)
	sev, why := Warning, fmt.Sprintf("%d of %d devices reachable; every repository keeps the write quorum of its holders", len(devs)-len(down), len(devs))
	if len(cut) > 0 {
		names := strings.Join(cut[:min(3, len(cut))], ", ")
		if len(cut) > 3 {
			names += ", ..."
		}
		sev, why = Critical, fmt.Sprintf("%d of %d devices reachable; pushes are refused to %d repository(ies) whose reachable holders are fewer than the write quorum: %s",
			len(devs)-len(down), len(devs), len(cut), names)
	}
	for i, err := range errs {
		if err != nil {
			r.add(Problem{Severity: sev, Kind: "unreachable", Device: devs[i].Name,
				Message: fmt.Sprintf("device %s is unreachable: %v (%s)", devs[i].Name, err, why)})
		}
	}
	return nil
}

// Unreachable lists, in name order, the repositories of copies (status's
// rows, one per holder) whose holders not down are fewer than their write
// quorum: the one count check and metrics use.
func Unreachable(copies []admin.CopyStatus, down map[string]bool) []string {
	var out []string
	up := 0
	for i, c := range copies {
		if !down[c.Device] {
			up++
		}
		if i+1 < len(copies) && copies[i+1].Repository == c.Repository {
			continue
		}
		if up < c.Quorum {
			out = append(out, c.Repository)
		}
		up = 0
	}
	return out
}

// stuckQuery lists, older than $1 seconds, the moves in progress (a
// mover killed, or one that could neither finish nor undo) and each
// device's disk tasks (copies to remove or rename, left while it was
// down or its disk failed).
const stuckQuery = `
SELECT 'moving', r.name, COALESCE(f.name, ''), t.name, m.step, m.started_at, 1
FROM moves m JOIN repositories r ON r.id = m.repository_id
LEFT JOIN devices f ON f.id = m.from_device JOIN devices t ON t.id = m.to_device
WHERE m.updated_at < now() - make_interval(secs => $1)
UNION ALL
SELECT 'disk_tasks', '', '', d.name, '', min(k.created_at), count(*)
FROM disk_tasks k JOIN devices d ON d.id = k.device_id
GROUP BY d.name HAVING min(k.created_at) < now() - make_interval(secs => $1)
ORDER BY 1, 2, 4`

// stuck warns of moves left in progress and disk tasks left undone for
// longer than limit, each with the command that finishes it.
func (r *Report) stuck(ctx context.Context, d *sql.DB, limit time.Duration) error {
	rows, err := d.QueryContext(ctx, stuckQuery, limit.Seconds())
	if err != nil {
		return fmt.Errorf("read moves and disk tasks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, repo, from, dev, step string
		var since time.Time
		var n int
		if err := rows.Scan(&kind, &repo, &from, &dev, &step, &since, &n); err != nil {
			return fmt.Errorf("read moves and disk tasks: %w", err)
		}
		at := since.UTC().Format(time.RFC3339)
		if kind == "moving" && from == "" {
			r.add(Problem{Severity: Warning, Kind: kind, Repository: repo, Device: dev,
				Message: fmt.Sprintf("%s: adding a copy on %s has been in progress since %s (%s); run the 'gitmesh repo copies %s N' that started it again to finish it",
					repo, dev, at, step, repo)})
			continue
		}
		if kind == "moving" {
			r.add(Problem{Severity: Warning, Kind: kind, Repository: repo, Device: dev,
				Message: fmt.Sprintf("%s: a move of a copy from %s to %s has been in progress since %s (%s); run 'gitmesh repo move %s --from %s --to %s' again to finish it",
					repo, from, dev, at, step, repo, from, dev)})
			continue
		}
		r.add(Problem{Severity: Warning, Kind: kind, Device: dev,
			Message: fmt.Sprintf("device %s has %d cop%s to remove or rename since %s (it was down?); it does them when 'gitmesh sync' or 'gitmesh replicate' runs there",
				dev, n, map[bool]string{true: "y", false: "ies"}[n == 1], at)})
	}
	return rows.Err()
}
