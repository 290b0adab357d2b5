package serve

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"

	"gitmesh/config"
	"gitmesh/db"
	"gitmesh/gitexec"
	"gitmesh/lock"
	"gitmesh/public"
	"gitmesh/version"
)

func TestMessageKeepsInternalsFromUsers(t *testing.T) {
	dial := fmt.Errorf("connect: %w", &db.DialError{Err: fmt.Errorf("dial tcp 10.1.2.3:5432: %w", syscall.ECONNREFUSED)})
	for _, tt := range []struct {
		name string
		err  error
		want string // "" means serve's ordinary message stands
	}{
		{"bad command", fmt.Errorf("%w: odd", gitexec.ErrBadCommand), ""},
		{"not found", version.ErrNotFound, ""},
		{"frozen, without the writer's name", &version.FrozenError{Repo: "team/app", Copy: version.Copy{Device: "b",
			Writer: &version.Writer{User: "bob", Started: time.Unix(0, 0)}}}, "team/app is frozen for writes: an earlier push on device b did not finish"},
		{"lock timeout, without the holder", &lock.TimeoutError{Key: lock.Write(1), Waited: 30 * time.Second,
			Holder: &lock.Holder{Application: "gitmesh push 11431 bob@b app", PID: 7}}, "gave up waiting for the write lock after 30s; another push held it; try again later"},
		{"database down", dial, "the coordination database is unreachable from device a"},
		{"bad URL", db.ErrBadURL, "the server is misconfigured (device a)"},
		{"unset", config.UnsetError("no repo root configured: set GITMESH_REPO_ROOT"), "the server is misconfigured (device a)"},
		{"bad password", fmt.Errorf("read versions: %w", &pq.Error{Code: "28P01", Message: `password authentication failed for user "git"`}), "misconfigured"},
		{"no device row", fmt.Errorf("%w: a", version.ErrNoDevice), "misconfigured"},
		{"lost write over a dead database", fmt.Errorf("%w: record: the database stayed unreachable for 2m0s (%v)", version.ErrLostWrite, dial),
			"could not be recorded (the coordination database was unreachable), so the repository stays frozen"},
		{"a sentence for users", fmt.Errorf("catch up: %w", public.New("try again")), "try again"},
		{"no peer", &version.NoPeerError{Repo: "team/app", Version: 3, Tried: []string{"b: fatal: '/srv/git/team/app.git' does not appear"},
			Public: []string{"b: its copy is missing"}}, "reachable from device a: b: its copy is missing"},
		{"anything else", errors.New("open /srv/git/repos/.gitmesh/hooks: permission denied"), "gitmesh failed on device a; tell an administrator"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Message(tt.err, "a")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("Message = %q, want %q", got, tt.want)
			}
			for _, bad := range []string{"/srv", "10.1.2.3", "5432", "password authentication", "bob", "11431"} {
				if strings.Contains(got, bad) {
					t.Errorf("Message = %q shows %q", got, bad)
				}
			}
		})
	}
}
