package bench

import (
	"fmt"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitmesh/meshtest"
)

func TestMain(m *testing.M) { meshtest.Main(m) }

// BenchmarkLsRemote times `git ls-remote` against a current device through
// `gitmesh serve` (PostgreSQL over TCP, over its unix socket, and through
// PgBouncer in session mode) and through `git shell -c` on the same
// repository, alternating them so that machine noise hits all alike, and
// reports the times and their ratios.
func BenchmarkLsRemote(b *testing.B) {
	c := meshtest.NewCluster(b, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	url := meshtest.URL("team/app")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	a := c.Devices["a"]
	a.MustGit("alice", work, "push", "-q", url, "main")

	gitmeshCmd := lsRemote(c.Dir, a.SSHScript("alice"), url)
	shellCmd := lsRemote(c.Dir, gitShellScript(b, c.Dir, a.Root), url)
	// Device b serves the same repository through PostgreSQL's unix socket.
	bdev := c.Devices["b"]
	bdev.MustGit("alice", "", "ls-remote", url)
	u, _ := neturl.Parse(c.DBURL)
	socketCmd := gitmeshCmd
	if dsn := meshtest.Server().SocketDSN(strings.TrimPrefix(u.Path, "/")); dsn != "" {
		bdev.DBURL = dsn
		bdev.WriteConfig("")
		socketCmd = lsRemote(c.Dir, bdev.SSHScript("alice"), url)
	}
	// Device c through PgBouncer, the README's recommendation.
	bouncer := meshtest.StartPgBouncer(b)
	cdev := c.Devices["c"]
	cdev.DBURL = bouncer.URL(c.DBURL)
	cdev.WriteConfig("")
	cdev.MustGit("alice", "", "ls-remote", url)
	pooledCmd := lsRemote(c.Dir, cdev.SSHScript("alice"), url)
	var viaGitmesh, viaSocket, viaPooled, viaShell time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		viaGitmesh += timeRun(b, gitmeshCmd)
		viaSocket += timeRun(b, socketCmd)
		viaPooled += timeRun(b, pooledCmd)
		viaShell += timeRun(b, shellCmd)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(viaGitmesh.Microseconds())/n/1000, "gitmesh-ms/op")
	b.ReportMetric(float64(viaSocket.Microseconds())/n/1000, "gitmesh-unix-ms/op")
	b.ReportMetric(float64(viaPooled.Microseconds())/n/1000, "gitmesh-pgbouncer-ms/op")
	b.ReportMetric(float64(viaShell.Microseconds())/n/1000, "gitshell-ms/op")
	b.ReportMetric(float64(viaGitmesh)/float64(viaShell), "ratio")
	b.ReportMetric(float64(viaSocket)/float64(viaShell), "ratio-unix")
	b.ReportMetric(float64(viaPooled)/float64(viaShell), "ratio-pgbouncer")
}

func lsRemote(home, sshScript, url string) []string {
	return []string{home, sshScript, url}
}

func timeRun(b testing.TB, args []string) time.Duration {
	cmd := exec.Command("git", "ls-remote", args[2])
	cmd.Env = append(meshtest.GitEnv(args[0]), "GIT_SSH_COMMAND="+args[1], "GIT_SSH_VARIANT=ssh")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("ls-remote: %v: %s", err, out)
	}
	return d
}

// gitShellScript is the baseline: what sshd would run with git-shell as the
// login shell, in the repo root.
func gitShellScript(b testing.TB, dir, root string) string {
	path := filepath.Join(dir, "ssh-git-shell")
	script := fmt.Sprintf("#!/bin/sh\nfor last; do :; done\ncd %q && exec git shell -c \"$last\"\n", root)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	return path
}
