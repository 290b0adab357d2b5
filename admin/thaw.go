package admin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/lock"
	"gitmesh/termsafe"
	"gitmesh/version"
)

// Thaw is one repair: promote or demote a device's copy of a repository.
type Thaw struct {
	Repo    string
	Device  string
	Promote bool // else demote
	Force   bool
	// DiscardRecorded lets a demote drop versions no other copy holds:
	// pushes that were recorded, and so acknowledged.
	DiscardRecorded bool
	Git             gitexec.Git
	// LockTimeout bounds the wait for the write lock.
	LockTimeout time.Duration
	Out         io.Writer // what would be discarded, and what was done
}

// ErrWouldDiscard refuses a thaw that loses ref values without --force.
var ErrWouldDiscard = errors.New("refusing to discard ref values without --force")

// ErrDiverged means copies that should be equal are not.
var ErrDiverged = errors.New("copies diverge")

// copyRefs is one device's copy as read from the device itself.
type copyRefs struct {
	device string
	refs   map[string]string
	digest string
	staged string // digest of its staged refs
	err    error
}

// Run thaws one repository under its write lock: it prints the refs whose
// values would be discarded, refuses without Force when there are any, and
// then clears every write mark and sets the versions in one transaction.
func (t Thaw) Run(ctx context.Context, d *sql.DB) error {
	conn, err := d.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := version.Load(ctx, conn, t.Repo)
	if errors.Is(err, version.ErrNotFound) {
		return &UnknownRepoError{Repo: t.Repo}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", t.Repo, err)
	}
	wkey := lock.Write(st.RepoID)
	err = lock.Acquire(ctx, conn, wkey, t.LockTimeout, func(h *lock.Holder) {
		if h != nil {
			fmt.Fprintf(t.Out, "waiting for the write lock of %s, held by %q\n", t.Repo, h.Application)
		}
	})
	if err != nil {
		return err
	}
	defer lock.Unlock(conn, wkey) // a failure discards the connection, which drops the lock
	if st, err = version.Load(ctx, conn, t.Repo); err != nil {
		return err
	}
	devs, err := Devices(ctx, d)
	if err != nil {
		return err
	}
	target, ok := findDevice(devs, t.Device)
	if !ok {
		return &UnknownDeviceError{Device: t.Device}
	}
	plan, err := t.plan(ctx, st, devs, target)
	if err != nil {
		return err
	}
	// A thaw decides about the write that froze the repository, so it names
	// that write's device: promoting or demoting another copy could discard
	// a write acknowledged since the operator looked.
	if c, frozen := st.Frozen(); frozen && c.Device != t.Device {
		return fmt.Errorf("%s is frozen by a write on device %s, not %s; thaw it with --promote %s or --demote %s",
			t.Repo, c.Device, t.Device, c.Device, c.Device)
	}
	// Only a frozen repository (or one no device has a version of) is
	// thawed: when the freeze ended while this waited for the lock, a
	// --force meant for an unrecorded write must not roll back a recorded one.
	if _, frozen := st.Frozen(); !frozen && len(st.Copies) > 0 {
		if plan.agree() {
			fmt.Fprintf(t.Out, "%s is not frozen and its copies agree: nothing to do\n", t.Repo)
			return nil
		}
		plan.print(t.Out, t.Repo)
		return fmt.Errorf("%s is not frozen, so thaw changes nothing; its copies differ as listed above: %w", t.Repo, ErrDiverged)
	}
	if !t.Promote {
		if err := t.checkDemote(st); err != nil {
			return err
		}
	}
	if n := plan.print(t.Out, t.Repo); n > 0 && !t.Force {
		return fmt.Errorf("%s: %w (%d shown above)", t.Repo, ErrWouldDiscard, n)
	}
	return t.apply(ctx, conn, st, target, plan.digest)
}

// thawPlan compares the target's copy with the copies the thaw overrides.
type thawPlan struct {
	target copyRefs
	others []copyRefs
	digest string // the target's digest, recorded when promoting
	// demoteFrom is the device a demoted copy will resync from.
	demoteFrom string
}

func (t Thaw) plan(ctx context.Context, st version.State, devs []Device, target Device) (thawPlan, error) {
	p := thawPlan{target: t.read(ctx, target, st.Repo)}
	if p.target.err != nil && t.Promote {
		return p, fmt.Errorf("cannot read the copy of %s on %s, so it cannot be promoted: %w", st.Repo, target.Name, p.target.err)
	}
	p.digest = p.target.digest
	for _, c := range t.involved(st) {
		dev, _ := findDevice(devs, c.Device)
		p.others = append(p.others, t.read(ctx, dev, st.Repo))
	}
	if !t.Promote {
		if len(p.others) == 0 {
			return p, fmt.Errorf("no other device holds a recorded copy of %s, so %s cannot resync from one; use --promote", st.Repo, t.Device)
		}
		p.demoteFrom = p.others[0].device
		for _, o := range p.others {
			if o.err == nil {
				p.demoteFrom = o.device
				break
			}
		}
	}
	return p, nil
}

// checkDemote refuses to demote the only copy of recorded versions: those
// pushes were acknowledged, and --force alone must not lose them.
func (t Thaw) checkDemote(st version.State) error {
	var mine, others int64 = -1, -1
	for _, c := range st.Copies {
		if c.Device == t.Device {
			mine = c.Version
		} else {
			others = max(others, c.Version)
		}
	}
	if mine > others && others >= 0 && !t.DiscardRecorded {
		return fmt.Errorf("%s holds versions %d to %d of %s that no other copy has: pushes that were recorded and acknowledged; "+
			"keep them with --promote %s, or lose them with --demote %s --force --discard-recorded",
			t.Device, others+1, mine, st.Repo, t.Device, t.Device)
	}
	return nil
}

// involved are the copies whose refs the thaw decides about: for a promote,
// every other copy at the newest version (they hold what was acknowledged);
// for a demote, the copies at the newest version among the others.
func (t Thaw) involved(st version.State) []version.Copy {
	var others []version.Copy
	top := int64(-1)
	for _, c := range st.Copies {
		if c.Device != t.Device {
			others = append(others, c)
			top = max(top, c.Version)
		}
	}
	if t.Promote {
		top = max(top, st.Highest())
	}
	var out []version.Copy
	for _, c := range others {
		if c.Version == top {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

func (t Thaw) read(ctx context.Context, dev Device, repo string) copyRefs {
	visible, staged, head, err := t.Git.RemoteRefSets(ctx, version.PeerURL(dev.URL, repo))
	c := copyRefs{device: dev.Name, err: err, refs: visible}
	if err != nil {
		return c
	}
	c.digest = visible.Digest(head)
	c.staged = staged.Digest(head)
	return c
}

// agree reports whether every copy involved equals the target's.
func (p thawPlan) agree() bool {
	for _, o := range p.others {
		if o.err != nil || o.digest != p.target.digest {
			return false
		}
	}
	return p.target.err == nil
}

// print lists what the thaw would discard and returns how many ref values
// (or unreadable copies) that is.
func (p thawPlan) print(w io.Writer, repo string) int {
	n := 0
	for _, o := range p.others {
		if p.demoteFrom == "" && o.err != nil {
			fmt.Fprintf(w, "cannot read the copy of %s on %s (%s): what it holds would be discarded\n", repo, o.device, termsafe.Escape(o.err.Error()))
			n++
			continue
		}
		if p.demoteFrom != "" {
			if o.device != p.demoteFrom {
				continue
			}
			// Demote: the target loses whatever differs from its source.
			n += printDiff(w, repo, p.target, o)
			continue
		}
		n += printDiff(w, repo, o, p.target)
	}
	return n
}

// printDiff lists refs of loser whose values winner replaces or deletes.
// Ref names and git's messages come from users: they are escaped for the
// terminal.
func printDiff(w io.Writer, repo string, loser, winner copyRefs) int {
	if loser.err != nil {
		fmt.Fprintf(w, "cannot read the copy of %s on %s (%s): what it holds would be discarded\n", repo, loser.device, termsafe.Escape(loser.err.Error()))
		return 1
	}
	// An unreadable winner holds nothing as far as this knows: comparing
	// with it would report every ref of loser as lost.
	if winner.err != nil {
		fmt.Fprintf(w, "cannot read the copy of %s on %s (%s), so what %s would lose to it is unknown; make %s readable and run thaw again\n",
			repo, winner.device, termsafe.Escape(winner.err.Error()), loser.device, winner.device)
		return 1
	}
	var refs []string
	for ref, v := range loser.refs {
		if winner.refs[ref] != v {
			refs = append(refs, ref)
		}
	}
	sort.Strings(refs)
	for _, ref := range refs {
		after := "deleted"
		if v, ok := winner.refs[ref]; ok {
			after = "becomes " + v
		}
		fmt.Fprintf(w, "would discard on %s: %s %s (%s, from %s)\n", loser.device, termsafe.Escape(ref), loser.refs[ref], after, winner.device)
	}
	return len(refs)
}

// apply clears every write mark and sets the versions, in one transaction.
// Every statement runs on the session that holds the write lock: after a
// failover (the lock gone) it fails rather than act. Bounded by
// lock_timeout: a database that cannot commit must not hold thaw forever.
func (t Thaw) apply(ctx context.Context, conn *sql.Conn, st version.State, target Device, digest string) (err error) {
	ctx, cancel := db.Bound(ctx, t.LockTimeout)
	defer cancel()
	defer func() {
		if stall := db.Stalled(ctx, "thaw "+t.Repo, t.LockTimeout); stall != nil {
			err = fmt.Errorf("%w; the thaw may have been applied, see 'gitmesh status %s'", stall, t.Repo)
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE working_copy_versions
		SET is_writing = false, write_properties = NULL, updated_at = now()
		WHERE repository_id = $1 AND is_writing`, st.RepoID); err != nil {
		return err
	}
	var v int64
	if t.Promote {
		err = tx.QueryRowContext(ctx, `
			INSERT INTO working_copy_versions (repository_id, device_id, version, refs_digest)
			VALUES ($1, $2, (SELECT COALESCE(max(version), 0) + 1 FROM working_copy_versions WHERE repository_id = $1), $3)
			ON CONFLICT (repository_id, device_id) DO UPDATE
			SET version = excluded.version, refs_digest = excluded.refs_digest, refs_pending = false, updated_at = now()
			RETURNING version`, st.RepoID, target.ID, digest).Scan(&v)
	} else {
		_, err = tx.ExecContext(ctx, `DELETE FROM working_copy_versions WHERE repository_id = $1 AND device_id = $2`, st.RepoID, target.ID)
	}
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if t.Promote {
		fmt.Fprintf(t.Out, "thawed %s: the copy on %s is now the newest (version %d); the others resync from it\n", t.Repo, t.Device, v)
	} else {
		fmt.Fprintf(t.Out, "thawed %s: the copy on %s will resync from the others on its next use\n", t.Repo, t.Device)
	}
	return nil
}

func findDevice(devs []Device, name string) (Device, bool) {
	for _, d := range devs {
		if d.Name == name {
			return d, true
		}
	}
	return Device{}, false
}

// ReposOf lists the repositories a device holds a recorded copy of.
func ReposOf(ctx context.Context, d *sql.DB, device string) ([]string, error) {
	return db.Strings(ctx, d, `SELECT r.name FROM working_copy_versions v
		JOIN repositories r ON r.id = v.repository_id JOIN devices d ON d.id = v.device_id
		WHERE d.name = $1 ORDER BY r.name`, device)
}
