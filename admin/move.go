package admin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gitmesh/access"
	"gitmesh/db"
	"gitmesh/lock"
	"gitmesh/version"
)

// Mover moves copies of repositories between devices while reads and
// pushes go on (docs/DESIGN.md, "Moving a copy"). A move's whole state is
// its row in the moves table: a mover killed at any step leaves the move
// to be finished by running it again, or by any move, copies, drain or
// rebalance touching that repository.
type Mover struct {
	DB *sql.DB
	// Node is this device: it asks the others to catch up and to tidy,
	// and its LockTimeout and Git.Timeout (fetch_timeout) bound each step.
	Node *version.Node
	// Say prints one line for the operator per step done.
	Say func(format string, args ...any)
}

// CatchUpError means a device placed to receive a copy could not bring
// it to the newest version (it is down, or no up-to-date copy could be
// fetched). Undone says whether its placement was rolled back (the
// repository stays where it was) or the move is left in progress, to be
// resumed by running it again. Nothing acknowledged is lost either way.
type CatchUpError struct {
	Repo, Device string
	Why          string
	Undone       bool
}

func (e *CatchUpError) Error() string {
	if e.Undone {
		return fmt.Sprintf("device %s could not catch up on %s (%s); the move was undone and %s stays where it was: try again once %s is reachable",
			e.Device, e.Repo, e.Why, e.Repo, e.Device)
	}
	return fmt.Sprintf("device %s could not catch up on %s (%s); the move is left in progress ('gitmesh status %s' shows it): run it again once %s is reachable",
		e.Device, e.Repo, e.Why, e.Repo, e.Device)
}

// QuorumShortError refuses to take a copy away while too few of the
// holders that would remain hold the newest version.
type QuorumShortError struct {
	Repo      string
	Have, Of  int
	Need      int
	Lagging   []string
	Resumable bool
}

func (e *QuorumShortError) Error() string {
	left := "nothing was changed"
	if e.Resumable {
		left = fmt.Sprintf("the move is left in progress ('gitmesh status %s' shows it): run it again", e.Repo)
	}
	return fmt.Sprintf("only %d of the %d devices that would hold %s have its newest version (%d needed; behind: %s), and they could not catch up now; %s once they are reachable",
		e.Have, e.Of, e.Repo, e.Need, strings.Join(e.Lagging, ", "), left)
}

// pendingMove is a row of the moves table.
type pendingMove struct {
	RepoID  int32
	From    int32 // 0: a copy added (copies raised), or its device removed
	To      int32
	Step    string
	Started time.Time
}

// Move moves repo's copy on device from to device to: to becomes a
// holder, catches up, then from stops being one and removes its copy.
func (m *Mover) Move(ctx context.Context, repo, from, to string) error {
	bctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	if err := CheckRepo(bctx, m.DB, repo); err != nil {
		return err
	}
	for _, d := range []string{from, to} {
		if err := CheckDevice(bctx, m.DB, d); err != nil {
			return err
		}
	}
	if from == to {
		return fmt.Errorf("%w move: --from and --to are both %s; name two different devices", access.ErrInvalid, from)
	}
	fromID, err := m.deviceID(ctx, from)
	if err != nil {
		return err
	}
	toID, err := m.deviceID(ctx, to)
	if err != nil {
		return err
	}
	if p, err := m.pending(ctx, repo); err != nil {
		return err
	} else if p != nil {
		if p.From == fromID && p.To == toID {
			m.Say("%s: resuming the move from %s to %s started %s (%s)", repo, from, to, p.Started.UTC().Format(time.RFC3339), p.Step)
			return m.run(ctx, repo, *p)
		}
		if err := m.Resume(ctx, repo); err != nil {
			return err
		}
	}
	names, err := m.holderNames(ctx, repo)
	if err != nil {
		return err
	}
	holdsFrom, holdsTo := contains(names, from), contains(names, to)
	switch {
	case !holdsFrom && holdsTo && m.lastMoved(ctx, repo, fromID, toID):
		// Done already (a mover killed after its last step, run again):
		// make sure from was asked to remove its copy.
		m.tidy(ctx, repo, fromID, from)
		m.Say("%s: already on %s and not on %s; nothing to do", repo, to, from)
		return nil
	case !holdsFrom:
		return fmt.Errorf("%w move: device %s holds no copy of %s (its holders: %s)", access.ErrInvalid, from, repo, strings.Join(names, ", "))
	case holdsTo:
		return fmt.Errorf("%w move: device %s already holds a copy of %s; choose a device that does not (its holders: %s)", access.ErrInvalid, to, repo, strings.Join(names, ", "))
	}
	p, err := m.begin(ctx, repo, fromID, toID)
	if err != nil {
		return err
	}
	m.Say("%s: %s added as a holder; catching up", repo, to)
	return m.run(ctx, repo, p)
}

// Resume finishes the move in progress on repo, if any.
func (m *Mover) Resume(ctx context.Context, repo string) error {
	p, err := m.pending(ctx, repo)
	if err != nil || p == nil {
		return err
	}
	m.Say("%s: finishing the move started %s (%s) first", repo, p.Started.UTC().Format(time.RFC3339), p.Step)
	return m.run(ctx, repo, *p)
}

// ResumeAll finishes every move in progress, reporting each failure and
// going on; it returns how many failed.
func (m *Mover) ResumeAll(ctx context.Context, report func(repo string, err error)) int {
	bctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	repos, err := db.Strings(bctx, m.DB, `SELECT r.name FROM moves mv JOIN repositories r ON r.id = mv.repository_id ORDER BY r.name`)
	cancel()
	if err != nil {
		report("", fmt.Errorf("read the moves in progress: %w", err))
		return 1
	}
	failed := 0
	for _, r := range repos {
		if err := m.Resume(ctx, r); err != nil {
			report(r, err)
			failed++
		}
	}
	return failed
}

// Add places one more copy of repo on device to (a move from nowhere).
func (m *Mover) Add(ctx context.Context, repo string, to int32, toName string) error {
	p, err := m.begin(ctx, repo, 0, to)
	if err != nil {
		return err
	}
	m.Say("%s: %s added as a holder; catching up", repo, toName)
	return m.run(ctx, repo, p)
}

// begin is the move's first step, one transaction: to becomes a holder
// and the moves row records the move.
func (m *Mover) begin(ctx context.Context, repo string, from, to int32) (pendingMove, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	tx, err := m.DB.BeginTx(ctx, nil)
	if err != nil {
		return pendingMove{}, fmt.Errorf("begin the move of %s: %w", repo, err)
	}
	defer tx.Rollback()
	p := pendingMove{From: from, To: to, Step: "catching-up"}
	// The repository's row serialises the admin changes to its holders.
	if err := tx.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = $1 FOR UPDATE`, repo).Scan(&p.RepoID); errors.Is(err, sql.ErrNoRows) {
		return pendingMove{}, &UnknownRepoError{Repo: repo}
	} else if err != nil {
		return pendingMove{}, fmt.Errorf("begin the move of %s: %w", repo, err)
	}
	var busy bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM moves WHERE repository_id = $1)`, p.RepoID).Scan(&busy); err != nil {
		return pendingMove{}, fmt.Errorf("begin the move of %s: %w", repo, err)
	}
	if busy {
		return pendingMove{}, fmt.Errorf("%w move: another move of %s began meanwhile; run the command again to finish it", access.ErrInvalid, repo)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO holders (repository_id, device_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, p.RepoID, to)
	if err != nil {
		return pendingMove{}, fmt.Errorf("add the new holder of %s: %w", repo, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return pendingMove{}, fmt.Errorf("%w move: that device became a holder of %s meanwhile; nothing was changed", access.ErrInvalid, repo)
	}
	if err := tx.QueryRowContext(ctx, `INSERT INTO moves (repository_id, from_device, to_device, step)
		VALUES ($1, NULLIF($2, 0), $3, $4) RETURNING started_at`, p.RepoID, from, to, p.Step).Scan(&p.Started); err != nil {
		return pendingMove{}, fmt.Errorf("record the move of %s: %w", repo, err)
	}
	if err := tx.Commit(); err != nil {
		return pendingMove{}, fmt.Errorf("record the move of %s: %w", repo, err)
	}
	return p, nil
}

// run does a recorded move's remaining steps: the new holder catches up
// (or, if it cannot, its placement is undone), then the old one is
// dropped under the write lock and asked to remove its copy.
func (m *Mover) run(ctx context.Context, repo string, p pendingMove) error {
	to, err := m.device(ctx, p.To)
	if err != nil {
		return err
	}
	if err := m.syncDevice(ctx, to, repo); err != nil {
		return m.undo(ctx, repo, p, to, err)
	}
	var from version.Device
	if p.From != 0 {
		if from, err = m.device(ctx, p.From); err != nil {
			return err
		}
		m.step(ctx, p.RepoID, "removing "+from.Name)
	}
	result := fmt.Sprintf("moved from %s to %s", from.Name, to.Name)
	if p.From == 0 {
		result = "copy added on " + to.Name
	}
	err = m.settle(ctx, repo, p, from.ID, to.ID, result)
	var short *QuorumShortError
	var cu *CatchUpError
	switch {
	case errors.As(err, &short):
		short.Resumable = true
		return err
	case errors.As(err, &cu):
		return m.undo(ctx, repo, p, to, errors.New(cu.Why))
	case err != nil:
		return err
	}
	if p.From == 0 {
		m.Say("%s: %s holds the newest version", repo, to.Name)
		return nil
	}
	m.tidy(ctx, repo, from.ID, from.Name)
	m.Say("moved %s from %s to %s", repo, from.Name, to.Name)
	return nil
}

// undo rolls back the placement of a device that could not catch up: it
// stops being a holder (under the same rule as any removal), and removes
// whatever copy it made once it can. If even that cannot be done now, the
// move stays in progress.
func (m *Mover) undo(ctx context.Context, repo string, p pendingMove, to version.Device, cause error) error {
	why := cause.Error()
	m.step(ctx, p.RepoID, "undoing")
	err := m.settle(ctx, repo, p, to.ID, 0, fmt.Sprintf("move to %s undone: %s could not catch up (%s)", to.Name, to.Name, why))
	if err != nil {
		m.Node.Log.Warn().Err(err).Str("repo", repo).Str("device", to.Name).Msg("undo a move")
		m.step(ctx, p.RepoID, "catching-up")
		return &CatchUpError{Repo: repo, Device: to.Name, Why: why}
	}
	m.tidy(ctx, repo, to.ID, to.Name)
	return &CatchUpError{Repo: repo, Device: to.Name, Why: why, Undone: true}
}

// Drop takes device id's copy of repo away (fewer copies): never below a
// quorum of the remaining holders at the newest version.
func (m *Mover) Drop(ctx context.Context, repo string, id int32, name string) error {
	repoID, err := m.repoID(ctx, repo)
	if err != nil {
		return err
	}
	if err := m.settle(ctx, repo, pendingMove{RepoID: repoID}, id, 0, fmt.Sprintf("copy on %s removed (fewer copies)", name)); err != nil {
		return err
	}
	m.tidy(ctx, repo, id, name)
	m.Say("%s: %s no longer holds a copy", repo, name)
	return nil
}

// settle is a move's last step, under the repository's write lock (no
// push in flight: pushes read the holders under it) and the read locks
// of its holders (no catch-up in flight, of the dropped copy or from
// it): need (when set) must hold the newest version, and so must a
// quorum of the holders that remain (the lagging ones are asked to catch
// up first); then one transaction drops the device (its holder row, its
// recorded copy, a disk task to remove its copy), ends the move (p.To
// set) and logs to sync_log.
func (m *Mover) settle(ctx context.Context, repo string, p pendingMove, drop, need int32, result string) error {
	start := time.Now()
	// A write mark whose writer died is repaired by its device first (it
	// takes the write lock itself); a live push's mark is waited for below.
	if st, err := m.loadDB(ctx, repo); err == nil {
		m.Node.HealFrozen(ctx, st)
	}
	cctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	conn, err := m.DB.Conn(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	wkey := lock.Write(p.RepoID)
	if err := lock.Acquire(ctx, conn, wkey, m.Node.LockTimeout, m.waiting(repo, wkey)); err != nil {
		return err
	}
	defer m.unlock(conn, repo, wkey)
	moving := p.To != 0
	if moving {
		still, err := m.samePending(ctx, conn, p)
		if err != nil {
			return err
		}
		if !still {
			return nil // finished (or undone) by another mover meanwhile
		}
	}
	st, err := m.load(ctx, conn, repo)
	if err != nil {
		return err
	}
	if c, frozen := st.Frozen(); frozen {
		return &version.FrozenError{Repo: repo, Copy: c}
	}
	if need != 0 && !current(st, need) {
		if err := m.syncDevice(ctx, deviceOf(st, need), repo); err != nil {
			return &CatchUpError{Repo: repo, Device: deviceOf(st, need).Name, Why: err.Error()}
		}
		if st, err = m.load(ctx, conn, repo); err != nil {
			return err
		}
		if !current(st, need) {
			return &CatchUpError{Repo: repo, Device: deviceOf(st, need).Name, Why: "it is still behind"}
		}
	}
	if drop != 0 {
		if st, err = m.enough(ctx, conn, st, drop); err != nil {
			return err
		}
		// Every holder's read lock, the dropped one's included, in device
		// order (nothing else takes two of them without the write lock):
		// no catch-up is in flight that read the old state, so none
		// fetches from the dropped copy after it is gone, nor records the
		// dropped device's version after its row is deleted.
		ids := []int32{drop}
		for _, h := range st.Holders {
			if h.ID != drop {
				ids = append(ids, h.ID)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			rkey := lock.Read(p.RepoID, id)
			if err := lock.Acquire(ctx, conn, rkey, m.Node.LockTimeout, m.waiting(repo, rkey)); err != nil {
				return err
			}
			defer m.unlock(conn, repo, rkey)
		}
	}
	return m.commit(ctx, conn, st, p, drop, need, start, result)
}

// enough checks that a quorum of the holders other than drop hold the
// newest version, asking the lagging ones to catch up first.
func (m *Mover) enough(ctx context.Context, conn *sql.Conn, st version.State, drop int32) (version.State, error) {
	short := m.short(st, drop)
	if short == nil {
		return st, nil
	}
	for _, h := range st.Holders {
		if h.ID != drop && !current(st, h.ID) {
			if err := m.syncDevice(ctx, h, st.Repo); err != nil {
				m.Node.Log.Warn().Err(err).Str("repo", st.Repo).Str("device", h.Name).Msg("catch up before a move")
			}
		}
	}
	st, err := m.load(ctx, conn, st.Repo)
	if err != nil {
		return st, err
	}
	if short := m.short(st, drop); short != nil {
		return st, short
	}
	return st, nil
}

// short is the refusal when fewer than a quorum of the holders other
// than drop hold the newest version (nil when enough do).
func (m *Mover) short(st version.State, drop int32) *QuorumShortError {
	e := &QuorumShortError{Repo: st.Repo}
	for _, h := range st.Holders {
		if h.ID == drop {
			continue
		}
		e.Of++
		if hasNewest(st, h.ID) {
			e.Have++
		} else {
			e.Lagging = append(e.Lagging, h.Name)
		}
	}
	e.Need = version.QuorumOf(e.Of, m.Node.WriteQuorum)
	if e.Of == 0 {
		return &QuorumShortError{Repo: st.Repo, Need: 1, Lagging: []string{"no device would be left"}}
	}
	if e.Have >= e.Need {
		return nil
	}
	return e
}

// commit is settle's one transaction.
func (m *Mover) commit(ctx context.Context, conn *sql.Conn, st version.State, p pendingMove, drop, need int32, start time.Time, result string) error {
	// The locks taken are checked still held: nothing may change under a
	// lock a failover dropped.
	if err := m.held(ctx, conn, lock.Write(p.RepoID)); err != nil {
		return err
	}
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("finish the move of %s: %w", st.Repo, err)
	}
	defer tx.Rollback()
	if drop != 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM holders WHERE repository_id = $1 AND device_id = $2`, p.RepoID, drop); err != nil {
			return fmt.Errorf("drop the holder of %s: %w", st.Repo, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM working_copy_versions WHERE repository_id = $1 AND device_id = $2`, p.RepoID, drop); err != nil {
			return fmt.Errorf("drop the recorded copy of %s: %w", st.Repo, err)
		}
		if err := version.AddDiskTask(ctx, tx, drop, st.Repo, ""); err != nil {
			return fmt.Errorf("ask for the copy of %s to be removed: %w", st.Repo, err)
		}
	}
	if p.To != 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM moves WHERE repository_id = $1`, p.RepoID); err != nil {
			return fmt.Errorf("end the move of %s: %w", st.Repo, err)
		}
	}
	logDev, from := need, drop
	if need == 0 {
		logDev, from = drop, 0
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sync_log
		(repository_id, device_id, from_device, from_version, to_version, duration_ms, result, kind)
		VALUES ($1, $2, NULLIF($3, 0), NULL, $4, $5, $6, 'move')`,
		p.RepoID, logDev, from, max(st.Highest(), 0), time.Since(start).Milliseconds(), result); err != nil {
		return fmt.Errorf("log the move of %s: %w", st.Repo, err)
	}
	err = tx.Commit()
	if stall := db.Stalled(ctx, "record the move", m.Node.LockTimeout); stall != nil {
		return fmt.Errorf("record the move of %s (run it again to finish it): %w", st.Repo, stall)
	}
	if err != nil {
		return fmt.Errorf("record the move of %s: %w", st.Repo, err)
	}
	m.Node.Log.Info().Str("op", "move").Str("repo", st.Repo).Str("result", result).Msg("move")
	return nil
}

// syncDevice asks h to bring its copy of repo to the newest version,
// bounded by a fetch and the lock waits around it.
func (m *Mover) syncDevice(ctx context.Context, h version.Device, repo string) error {
	ctx, cancel := context.WithTimeout(ctx, m.Node.Git.Timeout+2*m.Node.LockTimeout+time.Second)
	defer cancel()
	return m.Node.SyncDevice(ctx, h, repo)
}

// tidy asks device id to remove the copies it no longer holds, best
// effort: a device that is down does it on its return (replicate's sweep,
// `gitmesh sync`, a cluster sync request).
func (m *Mover) tidy(ctx context.Context, repo string, id int32, name string) {
	if id == 0 {
		return
	}
	d, err := m.device(ctx, id)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, m.Node.Git.Timeout+2*m.Node.LockTimeout+time.Second)
		err = m.Node.TidyDevice(ctx, d, repo)
		cancel()
	}
	if err != nil {
		m.Node.Log.Warn().Err(err).Str("repo", repo).Str("device", name).Msg("tidy after a move")
		m.Say("%s: %s could not remove its copy now (%s); it does on its return", repo, name, firstLine(err))
	}
}

// step records how far a move got, for `status` (best effort: the step
// is information, the moves row and holders are the state).
func (m *Mover) step(ctx context.Context, repoID int32, step string) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	if _, err := m.DB.ExecContext(ctx, `UPDATE moves SET step = $2, updated_at = now() WHERE repository_id = $1`, repoID, step); err != nil {
		m.Node.Log.Warn().Err(err).Msg("record a move's step")
	}
}

func (m *Mover) pending(ctx context.Context, repo string) (*pendingMove, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	var p pendingMove
	var from sql.NullInt32
	err := m.DB.QueryRowContext(ctx, `SELECT mv.repository_id, mv.from_device, mv.to_device, mv.step, mv.started_at
		FROM moves mv JOIN repositories r ON r.id = mv.repository_id WHERE r.name = $1`, repo).
		Scan(&p.RepoID, &from, &p.To, &p.Step, &p.Started)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the move of %s: %w", repo, err)
	}
	p.From = from.Int32
	return &p, nil
}

// samePending reports whether p is still the move in progress.
func (m *Mover) samePending(ctx context.Context, conn *sql.Conn, p pendingMove) (bool, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	var ok bool
	err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM moves WHERE repository_id = $1
		AND to_device = $2 AND COALESCE(from_device, 0) = $3)`, p.RepoID, p.To, p.From).Scan(&ok)
	return ok, err
}

func (m *Mover) load(ctx context.Context, conn *sql.Conn, repo string) (version.State, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	return version.Load(ctx, conn, repo)
}

// lastMoved reports whether the last move of repo logged was the one
// from device from to device to: that move is done.
func (m *Mover) lastMoved(ctx context.Context, repo string, from, to int32) bool {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	var ok bool
	err := m.DB.QueryRowContext(ctx, `SELECT COALESCE((SELECT s.device_id = $2 AND s.from_device = $3 AND s.result LIKE 'moved %'
		FROM sync_log s JOIN repositories r ON r.id = s.repository_id
		WHERE r.name = $1 AND s.kind = 'move' ORDER BY s.id DESC LIMIT 1), false)`, repo, to, from).Scan(&ok)
	return err == nil && ok
}

func (m *Mover) holderNames(ctx context.Context, repo string) ([]string, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	return db.Strings(ctx, m.DB, `SELECT d.name FROM holders h JOIN devices d ON d.id = h.device_id
		JOIN repositories r ON r.id = h.repository_id WHERE r.name = $1 ORDER BY d.name`, repo)
}

func (m *Mover) deviceID(ctx context.Context, name string) (int32, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	var id int32
	err := m.DB.QueryRowContext(ctx, `SELECT id FROM devices WHERE name = $1`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, &UnknownDeviceError{Device: name}
	}
	return id, err
}

func (m *Mover) repoID(ctx context.Context, repo string) (int32, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	var id int32
	err := m.DB.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = $1`, repo).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, &UnknownRepoError{Repo: repo}
	}
	return id, err
}

func (m *Mover) device(ctx context.Context, id int32) (version.Device, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	d := version.Device{ID: id}
	err := m.DB.QueryRowContext(ctx, `SELECT name, url FROM devices WHERE id = $1`, id).Scan(&d.Name, &d.URL)
	if err != nil {
		return d, fmt.Errorf("read device %d: %w", id, err)
	}
	return d, nil
}

func (m *Mover) waiting(repo string, key lock.Key) func(*lock.Holder) {
	return func(h *lock.Holder) {
		who := "another session"
		if h != nil {
			who = fmt.Sprintf("%q", h.Application)
		}
		m.Say("%s: waiting for the %s (held by %s, up to %s)", repo, key.Describe(), who, m.Node.LockTimeout)
	}
}

func (m *Mover) unlock(conn *sql.Conn, repo string, key lock.Key) {
	if err := lock.Unlock(conn, key); err != nil {
		m.Node.Log.Warn().Err(err).Str("repo", repo).Msg("unlock")
	}
}

func (m *Mover) held(ctx context.Context, conn *sql.Conn, key lock.Key) error {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	return lock.Held(ctx, conn, key)
}

// current reports whether device id shows the newest version.
func current(st version.State, id int32) bool {
	for _, c := range st.Copies {
		if c.DeviceID == id {
			return c.Version == st.Highest() && !c.Pending
		}
	}
	return false
}

// hasNewest reports whether device id holds the newest version (shown or
// staged: either survives the loss of the others).
func hasNewest(st version.State, id int32) bool {
	for _, c := range st.Copies {
		if c.DeviceID == id {
			return c.Version == st.Highest()
		}
	}
	return false
}

func deviceOf(st version.State, id int32) version.Device {
	for _, h := range st.Holders {
		if h.ID == id {
			return h
		}
	}
	return version.Device{ID: id, Name: fmt.Sprint(id)}
}

func contains(list []string, s string) bool {
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// MoveStatus is a move in progress, as `status` shows it.
type MoveStatus struct {
	From    string    `json:"from"` // "" for a copy added (copies raised)
	To      string    `json:"to"`
	Step    string    `json:"step"`
	Since   time.Time `json:"since"`
	Updated time.Time `json:"updated_at"`
}

// addMoves fills in the moves in progress of the repositories in rows.
func addMoves(ctx context.Context, d *sql.DB, repo string, rows []CopyStatus) error {
	if len(rows) == 0 {
		return nil
	}
	res, err := d.QueryContext(ctx, `SELECT r.name, COALESCE(f.name, ''), t.name, mv.step, mv.started_at, mv.updated_at
		FROM moves mv JOIN repositories r ON r.id = mv.repository_id
		JOIN devices t ON t.id = mv.to_device LEFT JOIN devices f ON f.id = mv.from_device
		WHERE $1 = '' OR r.name = $1`, repo)
	if err != nil {
		return fmt.Errorf("read the moves in progress: %w", err)
	}
	defer res.Close()
	moves := map[string]*MoveStatus{}
	for res.Next() {
		var name string
		m := new(MoveStatus)
		if err := res.Scan(&name, &m.From, &m.To, &m.Step, &m.Since, &m.Updated); err != nil {
			return fmt.Errorf("read the moves in progress: %w", err)
		}
		moves[name] = m
	}
	if err := res.Err(); err != nil {
		return err
	}
	for i := range rows {
		rows[i].Moving = moves[rows[i].Repository]
	}
	return nil
}

// Describe is the move for people: "moving from d to e since T (step)".
func (s MoveStatus) Describe() string {
	what := "moving from " + s.From + " to " + s.To
	if s.From == "" {
		what = "adding a copy on " + s.To
	}
	return fmt.Sprintf("%s since %s (%s)", what, s.Since.UTC().Format(time.RFC3339), s.Step)
}
