package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// helperEnv makes TestSSHDAndPostgresStopWhenTestsDie, in a child test
// process, start a cluster and die: "fail" fails the test, "kill" kills
// the whole test process with SIGKILL.
const helperEnv = "GITMESH_TEST_HELPER_DIE"

// Every sshd and the PostgreSQL server a test process starts stop when a
// test fails, and even when the test process is killed outright.
func TestSSHDAndPostgresStopWhenTestsDie(t *testing.T) {
	if how := os.Getenv(helperEnv); how != "" {
		clusterDies(t, how) // the child
		return
	}
	meshtest.RequireSSHD(t)
	for _, how := range []string{"fail", "kill"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSSHDAndPostgresStopWhenTestsDie$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), helperEnv+"="+how)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("the helper still ran after 2 minutes:\n%s", out)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the helper test did not die (%v):\n%s", err, out)
			}
			killed := exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
			if how == "kill" && !killed || how == "fail" && (killed || !strings.Contains(string(out), "failing on purpose")) {
				t.Fatalf("the helper did not die as %q says: %v\n%s", how, err, out)
			}
			pids, dirs := helperReport(t, string(out))
			for _, d := range dirs {
				defer os.RemoveAll(d) // left behind by a killed process
			}
			if pids["sshd-a"] == 0 || pids["sshd-b"] == 0 {
				t.Fatalf("the helper did not report its sshd processes:\n%s", out)
			}
			for name, pid := range pids {
				if !gone(pid, 30*time.Second) {
					t.Errorf("%s (pid %d) outlived the test process that started it", name, pid)
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		})
	}
}

// clusterDies is TestSSHDAndPostgresStopWhenTestsDie's child: it starts
// a cluster, reports its processes, and dies as how says.
func clusterDies(t *testing.T, how string) {
	c := meshtest.NewSSHCluster(t, "a", "b")
	fmt.Printf("HELPER pid sshd-a %d\nHELPER pid sshd-b %d\n", c.Hosts["a"].PID(), c.Hosts["b"].PID())
	if pid := meshtest.Server().PID(); pid > 0 { // 0: GITMESH_TEST_DATABASE_URL names an outside server
		fmt.Printf("HELPER pid postgres %d\n", pid)
	}
	fmt.Printf("HELPER dir %s\nHELPER dir %s\nHELPER dir %s\n",
		filepath.Dir(c.Dir), meshtest.Server().Dir(), filepath.Dir(meshtest.Binary()))
	os.Stdout.Sync()
	if how == "kill" {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	t.Fatal("failing on purpose")
}

func helperReport(t *testing.T, out string) (map[string]int, []string) {
	pids := map[string]int{}
	var dirs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 4 && f[0] == "HELPER" && f[1] == "pid":
			pid, err := strconv.Atoi(f[3])
			if err != nil || pid <= 0 {
				t.Fatalf("bad helper line %q", sc.Text())
			}
			pids[f[2]] = pid
		case len(f) == 3 && f[0] == "HELPER" && f[1] == "dir" && strings.HasPrefix(f[2], os.TempDir()):
			dirs = append(dirs, f[2])
		}
	}
	return pids, dirs
}

// gone waits until pid no longer runs (a zombie waiting for its new
// parent to reap it counts as gone).
func gone(pid int, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); ; {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// The state follows the command name in parentheses.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
