package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gitmesh/db"
	"gitmesh/version"
)

// holderCands are repo's holders, as placement sees them (zone, copies).
func (m *Mover) holderCands(ctx context.Context, repo string, cands []Candidate) ([]Candidate, error) {
	names, err := m.holderNames(ctx, repo)
	if err != nil {
		return nil, err
	}
	var out []Candidate
	for _, c := range cands {
		if contains(names, c.Name) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *Mover) candidates(ctx context.Context) ([]Candidate, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	return Candidates(ctx, m.DB)
}

// SetCopies raises or lowers repo's number of copies to n: a new copy
// goes where placement chooses (Place; a device that cannot catch up is
// skipped for the next choice); the copy taken away is a lagging one
// first, then the one on the most loaded device; never below a quorum of
// holders at the newest version.
func (m *Mover) SetCopies(ctx context.Context, repo string, n int) error {
	bctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	if err := CheckRepo(bctx, m.DB, repo); err != nil {
		return err
	}
	cands, err := m.candidates(ctx)
	if err != nil {
		return err
	}
	if err := CheckCopies(n, len(cands), true); err != nil {
		return err
	}
	if err := m.Resume(ctx, repo); err != nil {
		return err
	}
	skip := map[int32]bool{}
	var last error
	for range 2 * len(cands) {
		if cands, err = m.candidates(ctx); err != nil {
			return err
		}
		have, err := m.holderCands(ctx, repo, cands)
		if err != nil {
			return err
		}
		switch {
		case len(have) == n:
			noun := "copies"
			if n == 1 {
				noun = "copy"
			}
			m.Say("%s: %d %s, on %s", repo, n, noun, strings.Join(names(have), ", "))
			return nil
		case len(have) < n:
			pick := Place(without(cands, skip), have, 1)
			if len(pick) == 0 {
				if last != nil {
					return last
				}
				return fmt.Errorf("no device is left to take a copy of %s", repo)
			}
			if err := m.Add(ctx, repo, pick[0].ID, pick[0].Name); err != nil {
				var cu *CatchUpError
				if !errors.As(err, &cu) || !cu.Undone {
					return err
				}
				m.Say("%s: %s", repo, err)
				skip[pick[0].ID], last = true, err
			}
		default:
			victim, err := m.victim(ctx, repo, have)
			if err != nil {
				return err
			}
			if err := m.Drop(ctx, repo, victim.ID, victim.Name); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("%s could not be brought to %d copies; 'gitmesh status %s' shows where it is", repo, n, repo)
}

// victim is the holder whose copy goes when copies are lowered: one not
// at the newest version first, then the most loaded device, then by name.
func (m *Mover) victim(ctx context.Context, repo string, have []Candidate) (Candidate, error) {
	st, err := m.loadDB(ctx, repo)
	if err != nil {
		return Candidate{}, err
	}
	sort.SliceStable(have, func(i, j int) bool {
		a, b := have[i], have[j]
		if ca, cb := current(st, a.ID), current(st, b.ID); ca != cb {
			return !ca
		}
		if a.Copies != b.Copies {
			return a.Copies > b.Copies
		}
		return a.Name < b.Name
	})
	return have[0], nil
}

// DrainError says what a drain left on its device.
type DrainError struct {
	Device string
	Left   []string
	// Failed: some could not be moved now (a device unreachable, a lock
	// busy); otherwise every one left was refused (no device to take it).
	Failed bool
}

func (e *DrainError) Error() string {
	what := "no other device could take them (each already holds a copy); add a device or lower their copies ('gitmesh repo copies REPO N')"
	if e.Failed {
		what = "see the reasons above; run the drain again"
	}
	noun := "copies"
	if len(e.Left) == 1 {
		noun = "copy"
	}
	return fmt.Sprintf("device %s still holds %d %s (%s): %s", e.Device, len(e.Left), noun, strings.Join(e.Left, ", "), what)
}

// Drain moves every copy off device name, each to a device placement
// chooses among those that do not hold it, so that every repository
// keeps its number of copies. A repository no device is left to take is
// refused, with a sentence, and the drain goes on; so does one whose
// move fails. report gets each refusal or failure.
func (m *Mover) Drain(ctx context.Context, name string, report func(repo string, err error)) error {
	bctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	if err := CheckDevice(bctx, m.DB, name); err != nil {
		cancel()
		return err
	}
	repos, err := db.Strings(bctx, m.DB, `SELECT r.name FROM holders h JOIN repositories r ON r.id = h.repository_id
		JOIN devices d ON d.id = h.device_id WHERE d.name = $1
		UNION SELECT r.name FROM moves mv JOIN repositories r ON r.id = mv.repository_id
		JOIN devices d ON d.id = mv.from_device WHERE d.name = $1 ORDER BY 1`, name)
	cancel()
	if err != nil {
		return fmt.Errorf("list the copies on %s: %w", name, err)
	}
	e := &DrainError{Device: name}
	for _, repo := range repos {
		left, err := m.drainOne(ctx, repo, name)
		if err != nil {
			var refused *noRoomError
			e.Failed = e.Failed || !errors.As(err, &refused)
			report(repo, err)
		}
		if left {
			e.Left = append(e.Left, repo)
		}
	}
	if len(e.Left) > 0 {
		return e
	}
	m.Say("device %s holds no copies; 'gitmesh device remove %s' may now forget it", name, name)
	return nil
}

// noRoomError refuses to move a copy no other device can take.
type noRoomError struct{ repo, device string }

func (e *noRoomError) Error() string {
	return fmt.Sprintf("no device is left to take %s's copy from %s (every other device holds one); it stays", e.repo, e.device)
}

// drainOne moves repo's copy off device name; it reports whether one is
// left there.
func (m *Mover) drainOne(ctx context.Context, repo, name string) (bool, error) {
	if err := m.Resume(ctx, repo); err != nil {
		return true, err
	}
	skip := map[int32]bool{}
	var last error
	for {
		cands, err := m.candidates(ctx)
		if err != nil {
			return true, err
		}
		have, err := m.holderCands(ctx, repo, cands)
		if err != nil {
			return true, err
		}
		if !contains(names(have), name) {
			return false, nil
		}
		for _, c := range cands {
			if c.Name == name {
				skip[c.ID] = true
			}
		}
		// The drained device's zone is not one the copy needs to keep.
		kept := without(have, skip)
		pick := Place(without(cands, skip), kept, 1)
		if len(pick) > 0 && contains(names(have), pick[0].Name) {
			pick = nil
		}
		if len(pick) == 0 {
			if last != nil {
				return true, last
			}
			return true, &noRoomError{repo: repo, device: name}
		}
		err = m.Move(ctx, repo, name, pick[0].Name)
		var cu *CatchUpError
		if err == nil {
			return false, nil
		}
		if !errors.As(err, &cu) || !cu.Undone {
			return true, err
		}
		m.Say("%s: %s; trying another device", repo, err)
		skip[pick[0].ID], last = true, err
	}
}

// Planned is one move rebalance makes.
type Planned struct{ Repo, From, To string }

// Plan is rebalance's moves: from the device with the most copies to the
// one with the fewest while they differ by 2 or more, each a repository
// the first holds and the second does not, whose copies stay in as many
// zones as before.
func (m *Mover) Plan(ctx context.Context) ([]Planned, error) {
	bctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	cands, err := Candidates(bctx, m.DB)
	if err != nil {
		return nil, err
	}
	rows, err := m.DB.QueryContext(bctx, `SELECT r.name, d.name FROM holders h
		JOIN repositories r ON r.id = h.repository_id JOIN devices d ON d.id = h.device_id ORDER BY r.name, d.name`)
	if err != nil {
		return nil, fmt.Errorf("read the holders: %w", err)
	}
	defer rows.Close()
	var pairs [][2]string // repository, device
	for rows.Next() {
		var r, d string
		if err := rows.Scan(&r, &d); err != nil {
			return nil, err
		}
		pairs = append(pairs, [2]string{r, d})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return PlanMoves(cands, pairs), nil
}

// PlanMoves is Plan's rule on the devices and the (repository, device)
// holder pairs, sorted by repository.
func PlanMoves(cands []Candidate, pairs [][2]string) []Planned {
	zone := map[string]string{}
	count := map[string]int{}
	for _, c := range cands {
		zone[c.Name], count[c.Name] = c.Zone, 0
	}
	held := map[string]map[string]bool{} // repo -> devices
	byDev := map[string][]string{}       // device -> repos, by name
	var repos []string
	for _, p := range pairs {
		r, d := p[0], p[1]
		if held[r] == nil {
			held[r] = map[string]bool{}
			repos = append(repos, r)
		}
		held[r][d] = true
		byDev[d] = append(byDev[d], r)
		count[d]++
	}
	zones := func(r string, drop, add string) int {
		z := map[string]bool{}
		for d := range held[r] {
			if d != drop {
				z[zone[d]] = true
			}
		}
		if add != "" {
			z[zone[add]] = true
		}
		return len(z)
	}
	var plan []Planned
	for range len(repos)*len(cands) + 1 {
		devs := make([]string, 0, len(count))
		for d := range count {
			devs = append(devs, d)
		}
		sort.Slice(devs, func(i, j int) bool {
			if count[devs[i]] != count[devs[j]] {
				return count[devs[i]] > count[devs[j]]
			}
			return devs[i] < devs[j]
		})
		var next *Planned
	search:
		for _, from := range devs {
			for k := len(devs) - 1; k >= 0; k-- {
				to := devs[k]
				if count[from]-count[to] < 2 {
					break
				}
				for _, r := range byDev[from] {
					if held[r][from] && !held[r][to] && zones(r, from, to) >= zones(r, "", "") {
						next = &Planned{Repo: r, From: from, To: to}
						break search
					}
				}
			}
		}
		if next == nil {
			break
		}
		plan = append(plan, *next)
		delete(held[next.Repo], next.From)
		held[next.Repo][next.To] = true
		byDev[next.To] = append(byDev[next.To], next.Repo)
		count[next.From]--
		count[next.To]++
	}
	return plan
}

// Rebalance finishes the moves in progress, then makes the planned
// ones, reporting each failure and going on; it returns how many failed.
func (m *Mover) Rebalance(ctx context.Context, plan []Planned, report func(repo string, err error)) int {
	failed := 0
	for _, p := range plan {
		if err := m.Move(ctx, p.Repo, p.From, p.To); err != nil {
			report(p.Repo, err)
			failed++
		}
	}
	return failed
}

func (m *Mover) loadDB(ctx context.Context, repo string) (version.State, error) {
	ctx, cancel := db.Bound(ctx, m.Node.LockTimeout)
	defer cancel()
	return version.Load(ctx, m.DB, repo)
}

func names(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	sort.Strings(out)
	return out
}

func without(cs []Candidate, skip map[int32]bool) []Candidate {
	var out []Candidate
	for _, c := range cs {
		if !skip[c.ID] {
			out = append(out, c)
		}
	}
	return out
}
