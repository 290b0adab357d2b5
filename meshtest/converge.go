package meshtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// WaitConverged waits until every holder of repo shows the newest
// version of repo (recorded, not merely staged) and no write is in
// progress, and fails the test after 30 seconds. It returns that version.
func (c *Cluster) WaitConverged(repo string) int64 {
	c.T.Helper()
	d := c.DB()
	var v int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var lagging int
		err := d.QueryRow(`
			SELECT (SELECT count(*) FROM holders h WHERE h.repository_id = r.id AND NOT EXISTS (
			          SELECT 1 FROM working_copy_versions w
			          WHERE w.repository_id = r.id AND w.device_id = h.device_id AND NOT w.refs_pending AND NOT w.is_writing
			            AND w.version = (SELECT max(version) FROM working_copy_versions m WHERE m.repository_id = r.id))),
			       (SELECT max(version) FROM working_copy_versions m WHERE m.repository_id = r.id)
			FROM repositories r WHERE r.name = $1`, repo).Scan(&lagging, &v)
		if err == nil && lagging == 0 {
			return v
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("%s did not converge on every device within 30s (%d lagging, err %v)", repo, lagging, err)
		}
	}
}

// WaitDetached waits until no `gitmesh converge` started by a push of this
// test process's binary is running (they catch devices up after a push),
// and fails the test after 60 seconds.
func WaitDetached(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if len(Processes("converge")) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("gitmesh converge still running after 60s")
		}
	}
}

// ours reports whether a process's command line runs a gitmesh binary
// this test process built.
func ours(cmdline string) bool {
	tagMu.Lock()
	defer tagMu.Unlock()
	for _, b := range binaries {
		if strings.HasPrefix(cmdline, b+"\x00") {
			return true
		}
	}
	return false
}

// Processes lists the pids of running gitmesh processes (of the binaries
// this test process built) whose subcommand is sub ("serve", "converge", "replicate").
func Processes(sub string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !ours(string(b)) || !strings.Contains(string(b), "\x00"+sub+"\x00") {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue // a zombie is done
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
