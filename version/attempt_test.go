package version

import (
	"errors"
	"fmt"
	"testing"

	"gitmesh/gitexec"
	"gitmesh/lock"
)

func TestAttemptResult(t *testing.T) {
	for _, tc := range []struct {
		committed bool
		err       error
		want      string
	}{
		{true, nil, PushOK},
		{true, &gitexec.ExitError{Code: 1}, PushOK}, // recorded: git's own complaint does not undo it
		{false, nil, PushUnchanged},
		{false, &FrozenError{Repo: "r"}, PushFrozen},
		{false, fmt.Errorf("push: %w", &lock.TimeoutError{}), PushLockTimeout},
		{false, &QuorumError{Repo: "r"}, PushNoQuorum},
		{true, fmt.Errorf("%w: record: gone", ErrLostWrite), PushNotRecorded},
		{false, errors.New("connect: refused"), PushError},
	} {
		if got := attemptResult(tc.committed, tc.err); got != tc.want {
			t.Errorf("attemptResult(%v, %v) = %q, want %q", tc.committed, tc.err, got, tc.want)
		}
	}
}
