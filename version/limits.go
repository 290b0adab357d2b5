package version

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gitmesh/gitexec"
	"gitmesh/guard"
	"gitmesh/lock"
)

// TooLargeError refuses a push beyond max_push_bytes or max_push_refs,
// before anything moved (exit 2, as bad input).
type TooLargeError struct {
	Repo  string
	Refs  int   // the push's ref updates, when those were too many
	Max   int64 // the limit passed
	Bytes bool  // the pack, not the refs, was too large
}

func (e *TooLargeError) Error() string {
	if e.Bytes {
		return fmt.Sprintf("push to %s refused: it sends more than max_push_bytes (%s); nothing was changed", e.Repo, sizeText(e.Max))
	}
	return fmt.Sprintf("push to %s refused: it updates %d refs, more than max_push_refs (%d); nothing was changed, push fewer at a time", e.Repo, e.Refs, e.Max)
}

// Unwrap makes the refusal bad input (exit 2).
func (e *TooLargeError) Unwrap() error { return gitexec.ErrBadCommand }

// sizeText writes a byte count for people.
func sizeText(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// UserWaiters is how many of one user's pushes may wait for one
// repository's write lock at once (within max_push_waiters).
const UserWaiters = 2

// WaitersError refuses a push when max_push_waiters pushes already wait
// for the repository's write lock, or (Own) UserWaiters of the user's own.
type WaitersError struct {
	Repo string
	Max  int
	Own  bool
}

func (e *WaitersError) Error() string {
	if e.Own {
		return fmt.Sprintf("push to %s refused: %d of your pushes already wait for its write lock; nothing was changed, try again when they are done", e.Repo, e.Max)
	}
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
func (n *Node) acquireWrite(ctx context.Context, conn *sql.Conn, repo string, wkey lock.Key, user string) (time.Duration, error) {
	if ok, err := lock.Try(ctx, conn, wkey); ok || err != nil {
		return 0, err
	}
	// At most UserWaiters of one user's pushes wait for one repository,
	// so one user cannot take every place of the queue.
	own, err := lock.TakeUserWaiter(ctx, conn, wkey.Obj, user, UserWaiters)
	if errors.Is(err, lock.ErrFull) {
		n.Log.Info().Str("repo", repo).Int("user_waiters", UserWaiters).Msg("push refused: this user's pushes fill their places in the queue")
		return 0, &WaitersError{Repo: repo, Max: UserWaiters, Own: true}
	}
	if err != nil {
		return 0, err
	}
	defer lock.ReleaseUserWaiter(context.Background(), conn, own)
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
