package version

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gitmesh/guard"
	"gitmesh/lock"
)

// WaitersError refuses a push when max_push_waiters pushes already wait
// for the repository's write lock.
type WaitersError struct {
	Repo string
	Max  int
}

func (e *WaitersError) Error() string {
	n := fmt.Sprintf("%d pushes are", e.Max)
	if e.Max == 1 {
		n = "1 push is"
	}
	return fmt.Sprintf("push to %s refused: %s already waiting for its write lock (max_push_waiters); nothing was changed, try again later", e.Repo, n)
}

// Unwrap makes the refusal a busy answer (exit 5).
func (e *WaitersError) Unwrap() error { return lock.ErrFull }

// acquireWrite takes the write lock at once if it is free; otherwise it
// takes a place in the lock's queue (or refuses at once when there is
// none) and waits, within LockTimeout, giving the place back once it
// holds the lock or gives up.
func (n *Node) acquireWrite(ctx context.Context, conn *sql.Conn, repo string, wkey lock.Key) (time.Duration, error) {
	if ok, err := lock.Try(ctx, conn, wkey); ok || err != nil {
		return 0, err
	}
	place, err := lock.TakeSlot(ctx, conn, lock.PushWaiter(wkey.Obj, 0), n.MaxPushWaiters)
	if errors.Is(err, lock.ErrFull) {
		n.Log.Info().Str("repo", repo).Int("max_push_waiters", n.MaxPushWaiters).Msg("push refused: write lock queue full")
		return 0, &WaitersError{Repo: repo, Max: n.MaxPushWaiters}
	}
	if err != nil {
		return 0, err
	}
	defer n.unlock(conn, repo, place)
	start := time.Now()
	err = lock.Acquire(ctx, conn, wkey, n.LockTimeout, n.waiting(repo, wkey))
	return max(time.Since(start), time.Microsecond), err // non-zero: it waited
}

// stopped is the error of a push a guard bound ended: before its commands
// were answered nothing moved and the mark is cleared (run's finish);
// after, the answer stands and only git's report was cut short.
func (w *write) stopped(e *guard.TimeoutError) error {
	w.n.Log.Warn().Str("repo", w.st.Repo).Str("user", w.user).Bool("idle", e.Idle).
		Dur("limit", e.Limit).Bool("answered", e.Answered).Bool("recorded", w.committed).Msg("push stopped at its time limit")
	if w.committed {
		return &guard.StoppedError{TimeoutError: e, Done: fmt.Sprintf("the push was recorded as version %d before that; fetch to see it", w.newVersion)}
	}
	return &guard.StoppedError{TimeoutError: e, Done: "nothing was changed; push again"}
}
