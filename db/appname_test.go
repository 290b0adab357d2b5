package db

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

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

// A database that does not answer makes Listen fail, bounded, with an
// error that says so (IsUnavailable), instead of waiting for it forever.
func TestListenToNoDatabaseIsBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = Listen("postgres://gitmesh@"+addr+"/gitmesh?sslmode=disable", "gitmesh test", time.Second, "gitmesh_versions", nil)
	if took := time.Since(start); err == nil || !IsUnavailable(err) || took > 10*time.Second {
		t.Fatalf("Listen with no database: %v after %s; want an unavailable error within about 3s", err, took)
	}
}
