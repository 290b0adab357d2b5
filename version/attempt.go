package version

import (
	"context"
	"errors"
	"time"

	"gitmesh/lock"
)

// Push attempt results, as push_attempts.result records them and
// `gitmesh metrics` labels them.
const (
	PushOK          = "ok"           // a version was recorded
	PushUnchanged   = "unchanged"    // nothing recorded: no ref moved, or every ref was refused
	PushFrozen      = "frozen"       // refused: the repository is frozen
	PushLockTimeout = "lock_timeout" // the write lock wait reached lock_timeout
	PushNoQuorum    = "no_quorum"    // fewer devices than the quorum could store it
	PushNotRecorded = "not_recorded" // its version could not be recorded
	PushError       = "error"        // anything else
)

const attemptQuery = `
INSERT INTO push_attempts (repository_id, device_id, user_name, duration_ms, lock_wait_ms, result)
VALUES ($1, NULLIF($2, 0), $3, $4, $5, $6)`

// recordAttempt writes one push_attempts row for this push: began is
// when it started, waited its wait for the write lock, err what Push
// returns; a wait is rounded up to a whole millisecond, so that any wait
// at all counts as one. It runs after the write lock is released and never holds up
// the user for long: a statistic lost is only logged.
func (w *write) recordAttempt(began time.Time, waited time.Duration, err error) {
	result := attemptResult(w.committed, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, dbErr := w.conn.ExecContext(ctx, attemptQuery, w.st.RepoID, w.st.SelfID, w.user,
		time.Since(began).Milliseconds(), (waited + time.Millisecond - 1).Milliseconds(), result)
	if dbErr != nil {
		w.n.Log.Warn().Err(dbErr).Str("repo", w.st.Repo).Msg("record push attempt")
	}
}

func attemptResult(committed bool, err error) string {
	var (
		frozen *FrozenError
		quorum *QuorumError
	)
	switch {
	case errors.Is(err, ErrLostWrite):
		return PushNotRecorded
	case committed:
		return PushOK
	case errors.As(err, &frozen):
		return PushFrozen
	case errors.Is(err, lock.ErrTimeout):
		return PushLockTimeout
	case errors.As(err, &quorum):
		return PushNoQuorum
	case err == nil:
		return PushUnchanged
	}
	return PushError
}
