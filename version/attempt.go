package version

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
	"github.com/rs/zerolog"

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

// Afterward is what is left to do once git has reported a push: its
// push_attempts row, the sync_log rows of its staging on the peers, and,
// when a version was recorded, the catch-up of the holders it left
// behind. sshd holds the client until serve exits, so serve hands this to
// the detached `gitmesh converge` (Node.After) and exits at once; it is
// done in place only when that child cannot be started.
type Afterward struct {
	Repo       string  `json:"repo"`
	RepoID     int32   `json:"repo_id"`
	DeviceID   int32   `json:"device_id"`
	User       string  `json:"user"`
	DurationMS int64   `json:"duration_ms"`
	LockWaitMS int64   `json:"lock_wait_ms"`
	Result     string  `json:"result"`
	Version    int64   `json:"version"` // the version the staging was for
	Stages     []Stage `json:"stages,omitempty"`
	Converge   bool    `json:"converge"`
}

// Stage is one peer's staging of a push, as sync_log records it (kind
// 'stage', from the writer).
type Stage struct {
	Device      int32  `json:"device"`
	FromVersion int64  `json:"from_version"` // -1: the peer held none
	MS          int64  `json:"ms"`
	Result      string `json:"result"`
}

// AfterwardEnv carries an Afterward, as JSON, to `gitmesh converge`.
const AfterwardEnv = "GITMESH_AFTER_PUSH"

// Encode renders a for AfterwardEnv.
func (a Afterward) Encode() string {
	b, _ := json.Marshal(a)
	return string(b)
}

// ParseAfterward reads what Encode wrote, for repo.
func ParseAfterward(s, repo string) (Afterward, error) {
	var a Afterward
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return a, fmt.Errorf("%s: %w", AfterwardEnv, err)
	}
	if a.Repo != repo {
		return a, fmt.Errorf("%s is for %s, not %s", AfterwardEnv, a.Repo, repo)
	}
	return a, nil
}

// Record writes a's push_attempts and sync_log rows, each statement
// bounded: a statistic lost is only logged.
func (a Afterward) Record(ctx context.Context, q execer, log zerolog.Logger) {
	bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := q.ExecContext(bctx, attemptQuery, a.RepoID, a.DeviceID, a.User, a.DurationMS, a.LockWaitMS, a.Result); err != nil {
		log.Warn().Err(err).Str("repo", a.Repo).Msg("record push attempt")
	}
	if len(a.Stages) == 0 {
		return
	}
	n := len(a.Stages)
	ids, from, ms, res := make([]int32, n), make([]int64, n), make([]int64, n), make([]string, n)
	for i, s := range a.Stages {
		ids[i], from[i], ms[i], res[i] = s.Device, s.FromVersion, s.MS, s.Result
	}
	_, err := q.ExecContext(bctx, `INSERT INTO sync_log
		(repository_id, device_id, from_device, from_version, to_version, duration_ms, result, kind)
		SELECT $1, u.dev, $2, NULLIF(u.fromv, -1), $3, u.ms, u.res, 'stage'
		FROM unnest($4::int[], $5::bigint[], $6::bigint[], $7::text[]) AS u(dev, fromv, ms, res)`,
		a.RepoID, a.DeviceID, a.Version, pq.Array(ids), pq.Array(from), pq.Array(ms), pq.Array(res))
	if err != nil {
		log.Warn().Err(err).Str("repo", a.Repo).Msg("sync log")
	}
}

// afterward is this push's Afterward: began is when it started, err what
// Push returns; a lock wait is rounded up to a whole millisecond, so that
// any wait at all counts as one.
func (w *write) afterward(began time.Time, err error) Afterward {
	return Afterward{
		Repo: w.st.Repo, RepoID: w.st.RepoID, DeviceID: w.st.SelfID, User: w.user,
		DurationMS: time.Since(began).Milliseconds(),
		LockWaitMS: (w.waited + time.Millisecond - 1).Milliseconds(),
		Result:     attemptResult(w.committed, err),
		Version:    w.version + 1,
		Stages:     w.stages(w.rep),
		Converge:   w.committed,
	}
}

// handOff does what is left after the push: in the detached child when
// git has reported (receive-pack ran) and the child starts, here
// otherwise (a refusal before receive-pack, told by serve itself).
func (w *write) handOff(began time.Time, err error) {
	a := w.afterward(began, err)
	if w.started && w.n.After != nil {
		if aerr := w.n.After(a); aerr == nil {
			return
		} else {
			w.n.Log.Warn().Err(aerr).Str("repo", a.Repo).Msg("start converge; recording here")
		}
	}
	a.Record(context.Background(), w.conn, w.n.Log)
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
