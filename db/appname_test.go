package db

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/lib/pq"
)

// One application_name format for every connection, as the README says.
func TestAppName(t *testing.T) {
	pid := os.Getpid()
	for _, tc := range []struct {
		op, user, device, repo, want string
	}{
		{"push", "alice", "a", "team/app", fmt.Sprintf("gitmesh push %d alice@a team/app", pid)},
		{"cluster", "cluster", "b", "team/app", fmt.Sprintf("gitmesh cluster %d cluster@b team/app", pid)},
		{"status", "", "", "", fmt.Sprintf("gitmesh status %d", pid)},
		{"replicate", "", "", "", fmt.Sprintf("gitmesh replicate %d", pid)},
	} {
		if got := AppName(tc.op, tc.user, tc.device, tc.repo); got != tc.want {
			t.Errorf("AppName(%q, %q, %q, %q) = %q, want %q", tc.op, tc.user, tc.device, tc.repo, got, tc.want)
		}
	}
	long := AppName("push", "alice", "a", "team/"+strings.Repeat("x", 80))
	if len(long) != 63 || !strings.HasPrefix(long, fmt.Sprintf("gitmesh push %d alice@a team/x", pid)) {
		t.Errorf("a long name is %q (%d bytes); want the repository cut at 63 bytes", long, len(long))
	}
}

// dsnQuote makes any value one key=value DSN value that lib/pq reads back.
func TestDSNQuote(t *testing.T) {
	for _, v := range []string{"gitmesh push 1 a@b team/app", `it's`, `back\slash`, "", "x' password='y"} {
		cfg, err := pq.NewConfig("host=/tmp application_name=" + dsnQuote(v))
		if err != nil || cfg.ApplicationName != v {
			t.Errorf("dsnQuote(%q) reads back as %q (%v)", v, cfg.ApplicationName, err)
		}
	}
}
