package version

import (
	"context"
	"errors"
	"fmt"

	"gitmesh/public"
)

// MovedError refuses a request that reached a holder of its repository
// which stopped being one while the request waited for a lock (a move, or
// fewer copies): it is neither served from nor written to a copy outside
// the placement, and no copy is made there. The user tries again (and
// reaches, or is passed on to, a holder). Exit 6, like an unreachable
// holder.
type MovedError struct{ error }

// ExitCode is the documented exit status (unavailable: try again).
func (MovedError) ExitCode() int { return 6 }

func (e MovedError) Unwrap() error { return e.error }

// stillHolds refuses, with a MovedError, a state read under a lock that
// shows this device no longer a holder.
func (n *Node) stillHolds(st State) error {
	if st.SelfID == 0 || st.Holds() {
		return nil
	}
	return ErrMovedAway(st.Repo, n.Device)
}

// Placed reports whether repo is registered and, if so, whether device
// holds it: what a request that found its copy gone (after its lookup)
// asks, to tell a rename or delete (not found) and a move away (a
// MovedError, try again) from a copy lost on disk.
func Placed(ctx context.Context, q queryer, repo, device string) (registered, holds bool, err error) {
	st, err := load(ctx, q, repo, "", device)
	if errors.Is(err, ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, st.SelfID == 0 || st.Holds(), nil
}

// ErrMovedAway is the MovedError of a request whose copy was removed by a
// move after its lookup.
func ErrMovedAway(repo, device string) error {
	return MovedError{public.New(fmt.Sprintf("device %s no longer holds %s (its copies moved while your request waited); try again", device, repo))}
}
