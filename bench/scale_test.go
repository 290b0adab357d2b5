package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// The scale benchmarks measure what grows with a repository's refs or a
// device's repositories, each against the plain-git (or single-query)
// baseline in the same run.

// BenchmarkPushIntoTenThousandBranches times a one-commit push to main of
// a repository holding 10,000 branches (three local-path devices, quorum
// 2) against the same push through git shell into a plain bare repository
// with the same branches: what a push pays for the refs it does not touch.
func BenchmarkPushIntoTenThousandBranches(b *testing.B) {
	c, mesh, shell, work := manyBranches(b, 10000)
	benchPushOn(b, c, mesh, shell, work, newSlowLoop(b, 20))
}

// BenchmarkThousandNewBranches times one push creating 1,000 new branches
// (one glob refspec) into a repository of 10,000, against git shell.
func BenchmarkThousandNewBranches(b *testing.B) {
	c, mesh, shell, work := manyBranches(b, 10000)
	loop := newSlowLoop(b, 10)
	var viaGitmesh, viaShell, converge time.Duration
	from := logSize(c, "a")
	b.ResetTimer()
	for i := 0; loop.next(); i++ {
		b.StopTimer()
		names := make([]string, 1000)
		var create strings.Builder
		for j := range names {
			names[j] = fmt.Sprintf("new%02d/b%04d", i, j)
			fmt.Fprintf(&create, "create refs/heads/%s HEAD\n", names[j])
		}
		localGit(b, c, work, create.String(), "update-ref", "--stdin")
		spec := fmt.Sprintf("refs/heads/new%02d/*:refs/heads/new%02d/*", i, i)
		b.StartTimer()
		viaShell += shell.mustRun(b, work, "push", "-q", shell.url, spec)
		viaGitmesh += mesh.mustRun(b, work, "push", "-q", mesh.url, spec)
		b.StopTimer()
		converge += waitConverge(b)
		b.StartTimer()
	}
	b.StopTimer()
	report(b, loop.n, viaGitmesh, viaShell, converge)
	stepTimes(b, c, "a", from)
}

// manyBranches is a three-device cluster (quorum 2) whose team/app holds n
// branches at one commit, pushed to gitmesh and to a plain repository.
func manyBranches(b *testing.B, n int) (*meshtest.Cluster, client, client, string) {
	c := meshtest.NewCluster(b, "a", "b", "c")
	// The first push carries every branch: more than max_push_refs'
	// default (10,000) allows one push.
	c.Settings += fmt.Sprintf("\nmax_push_refs = %d\n", 2*n)
	setWriteQuorum(c, 2)
	c.CreateRepo("a", "team/app", "alice")
	mesh := client{env: deviceEnv(c, c.Devices["a"], "alice"), url: meshtest.URL("team/app")}
	shell := plainRepo(b, c, "team/app")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	var create strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&create, "create refs/heads/b%05d HEAD\n", i)
	}
	localGit(b, c, work, create.String(), "update-ref", "--stdin")
	mesh.mustRun(b, work, "push", "-q", mesh.url, "refs/heads/*:refs/heads/*")
	shell.mustRun(b, work, "push", "-q", shell.url, "refs/heads/*:refs/heads/*")
	waitConverge(b)
	return c, mesh, shell, work
}

// benchPushOn pushes one new commit to main per iteration, to both sides.
func benchPushOn(b *testing.B, c *meshtest.Cluster, mesh, shell client, work string, loop *slowLoop) {
	benchPushOnBranch(b, c, mesh, shell, work, "main", loop)
}

// benchPushOnBranch pushes one new commit to branch per iteration, to
// both sides, and reports the writer's step times beside the ratio.
func benchPushOnBranch(b *testing.B, c *meshtest.Cluster, mesh, shell client, work, branch string, loop *slowLoop) {
	var viaGitmesh, viaShell, converge time.Duration
	var last string
	from := logSize(c, "a")
	// Unique across runs: a sub-benchmark runs this again on the same
	// work tree for each b.N.
	round := time.Now().UnixNano()
	b.ResetTimer()
	for i := 0; loop.next(); i++ {
		b.StopTimer()
		last = c.Commit(work, "README", fmt.Sprintf("%d.%d\n", round, i+1))
		b.StartTimer()
		viaShell += shell.mustRun(b, work, "push", "-q", shell.url, branch)
		viaGitmesh += mesh.mustRun(b, work, "push", "-q", mesh.url, branch)
		b.StopTimer()
		converge += waitConverge(b)
		b.StartTimer()
	}
	b.StopTimer()
	expectEverywhere(b, c, "team/app", "refs/heads/"+branch, last)
	report(b, loop.n, viaGitmesh, viaShell, converge)
	stepTimes(b, c, "a", from)
}

// BenchmarkSyncIdle times `gitmesh sync` on a device whose 2,000
// repositories are all current, against `gitmesh status` (one query over
// every copy) on the same cluster: sync with nothing to do should cost
// about as much.
func BenchmarkSyncIdle(b *testing.B) { benchSyncIdle(b, 2000) }

func benchSyncIdle(b *testing.B, repos int) {
	c := manyRepos(b, repos)
	a := c.Devices["a"]
	var viaSync, viaStatus time.Duration
	b.ResetTimer()
	for i := 0; i < b.N && i < 10; i++ {
		viaStatus += timeGitmesh(b, a, "status")
		viaSync += timeGitmesh(b, a, "sync")
	}
	b.StopTimer()
	n := min(b.N, 10)
	b.ReportMetric(float64(viaSync.Milliseconds())/float64(n), "sync-ms/op")
	b.ReportMetric(float64(viaStatus.Milliseconds())/float64(n), "status-ms/op")
	b.ReportMetric(float64(viaSync)/float64(viaStatus), "ratio")
}

// BenchmarkVerify times `gitmesh verify` over 2,000 repositories on three
// devices against the floor it cannot beat by much: one `git
// for-each-ref` per copy, one after another.
func BenchmarkVerify(b *testing.B) { benchVerify(b, 2000) }

func benchVerify(b *testing.B, repos int) {
	c := manyRepos(b, repos)
	var dirs []string
	for _, d := range c.Devices {
		found, _ := filepath.Glob(filepath.Join(d.Root, "t", "*.git"))
		dirs = append(dirs, found...)
	}
	var viaVerify, viaRefs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N && i < 3; i++ {
		start := time.Now()
		for _, dir := range dirs {
			if out, err := exec.Command("git", "-C", dir, "for-each-ref").CombinedOutput(); err != nil {
				b.Fatalf("for-each-ref in %s: %v: %s", dir, err, out)
			}
		}
		viaRefs += time.Since(start)
		viaVerify += timeGitmesh(b, c.Devices["a"], "verify")
	}
	b.StopTimer()
	n := min(b.N, 3)
	b.ReportMetric(float64(viaVerify.Milliseconds())/float64(n), "verify-ms/op")
	b.ReportMetric(float64(viaRefs.Milliseconds())/float64(n), "for-each-ref-ms/op")
	b.ReportMetric(float64(viaVerify)/float64(viaRefs), "ratio")
}

// manyRepos is a three-device cluster with n empty repositories t/rNNNN,
// every device current on each. One is created the normal way; the others
// copy its rows and its directory, which takes seconds instead of the
// minutes n `repo create` runs would.
func manyRepos(b *testing.B, n int) *meshtest.Cluster {
	c := meshtest.NewCluster(b, "a", "b", "c")
	c.CreateRepo("a", "t/r0000")
	for _, d := range []string{"b", "c"} {
		if r := c.Devices[d].Run(nil, "sync", "t/r0000"); r.Code != 0 {
			b.Fatalf("sync on %s: %s", d, r.Stderr)
		}
	}
	d := c.DB()
	if _, err := d.Exec(`INSERT INTO repositories (name) SELECT format('t/r%s', lpad(i::text, 5, '0')) FROM generate_series(1, $1 - 1) i`, n); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Exec(`INSERT INTO working_copy_versions (repository_id, device_id, version, refs_digest)
		SELECT r.id, v.device_id, v.version, v.refs_digest FROM repositories r
		CROSS JOIN working_copy_versions v JOIN repositories o ON o.id = v.repository_id AND o.name = 't/r0000'
		WHERE r.name <> 't/r0000'`); err != nil {
		b.Fatal(err)
	}
	// Every device holds every repository, as placement would have it
	// with three devices: status, sync and verify speak of holders.
	if _, err := d.Exec(`INSERT INTO holders (repository_id, device_id)
		SELECT r.id, h.device_id FROM repositories r
		CROSS JOIN holders h JOIN repositories o ON o.id = h.repository_id AND o.name = 't/r0000'
		WHERE r.name <> 't/r0000'`); err != nil {
		b.Fatal(err)
	}
	for _, dev := range c.Devices {
		src := filepath.Join(dev.Root, "t", "r0000.git")
		tree := readTree(b, src)
		for i := 1; i < n; i++ {
			writeTree(b, tree, filepath.Join(dev.Root, "t", fmt.Sprintf("r%05d.git", i)))
		}
	}
	return c
}

// treeEntry is one directory or file of a small tree read into memory.
type treeEntry struct {
	rel  string
	mode os.FileMode
	data []byte // nil for a directory
}

// readTree reads the tree at root (a fresh repository: directories and
// small files only), to copy it many times without a cp per copy.
func readTree(b *testing.B, root string) []treeEntry {
	var out []treeEntry
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasSuffix(rel, ".sample") {
			return nil // git's sample hooks: half the files, never run
		}
		e := treeEntry{rel: rel, mode: fi.Mode()}
		switch {
		case fi.IsDir():
		case fi.Mode().IsRegular():
			if e.data, err = os.ReadFile(p); err != nil {
				return err
			}
			if e.data == nil {
				e.data = []byte{}
			}
		default:
			return fmt.Errorf("%s: neither a file nor a directory", p)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// writeTree writes a tree readTree read under dst.
func writeTree(b *testing.B, tree []treeEntry, dst string) {
	for _, e := range tree {
		p := filepath.Join(dst, e.rel)
		var err error
		if e.data == nil {
			err = os.Mkdir(p, e.mode.Perm())
		} else {
			err = os.WriteFile(p, e.data, e.mode.Perm())
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// timeGitmesh runs a gitmesh admin command on dev and times it.
func timeGitmesh(b *testing.B, dev *meshtest.Device, args ...string) time.Duration {
	b.Helper()
	start := time.Now()
	r := dev.Run(nil, args...)
	d := time.Since(start)
	if r.Code != 0 {
		b.Fatalf("gitmesh %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return d
}

// BenchmarkReadCapacity runs 8 clients looping `git ls-remote` on one
// current device for a fixed time each, through gitmesh (PostgreSQL
// directly, then through PgBouncer in session mode, the setting the README
// recommends) and through git shell, and reports reads per second and the
// ratios against git shell: what a device answering CI's polling can take.
// The reads are CPU-bound, so it also reports the CPU time of one read:
// the clients' whole process trees (git, the ssh stand-in, serve or git
// shell, upload-pack), PostgreSQL's backends and PgBouncer; the cpu-ratio
// metrics compare those, which a shared machine disturbs less than
// reads per second.
func BenchmarkReadCapacity(b *testing.B) {
	const clients, span = 8, 5 * time.Second
	c := meshtest.NewCluster(b, "a", "b")
	c.CreateRepo("a", "team/app", "alice")
	url := meshtest.URL("team/app")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	a := c.Devices["a"]
	a.MustGit("alice", work, "push", "-q", url, "main")
	direct := lsRemote(c.Dir, a.SSHScript("alice"), url)
	shell := lsRemote(c.Dir, gitShellScript(b, c.Dir, a.Root), url)
	bouncer := meshtest.StartPgBouncer(b)
	bdev := c.Devices["b"]
	bdev.DBURL = bouncer.URL(c.DBURL)
	bdev.WriteConfig("")
	bdev.MustGit("alice", "", "ls-remote", url) // b catches up once
	pooled := lsRemote(c.Dir, bdev.SSHScript("alice"), url)
	servers := []int{meshtest.Server().PID(), bouncer.PID()}

	var direct1, pooled1, shell1, directCPU, pooledCPU, shellCPU float64
	b.ResetTimer()
	for i := 0; i < b.N && i < 2; i++ {
		r, cpu := readsPerSecond(b, shell, clients, span, servers)
		shell1, shellCPU = shell1+r, shellCPU+cpu
		r, cpu = readsPerSecond(b, direct, clients, span, servers)
		direct1, directCPU = direct1+r, directCPU+cpu
		r, cpu = readsPerSecond(b, pooled, clients, span, servers)
		pooled1, pooledCPU = pooled1+r, pooledCPU+cpu
	}
	b.StopTimer()
	n := float64(min(b.N, 2))
	b.ReportMetric(direct1/n, "gitmesh-reads/s")
	b.ReportMetric(pooled1/n, "pgbouncer-reads/s")
	b.ReportMetric(shell1/n, "gitshell-reads/s")
	b.ReportMetric(direct1/shell1, "ratio")
	b.ReportMetric(pooled1/shell1, "ratio-pgbouncer")
	b.ReportMetric(directCPU/n, "gitmesh-cpu-ms/read")
	b.ReportMetric(pooledCPU/n, "pgbouncer-cpu-ms/read")
	b.ReportMetric(shellCPU/n, "gitshell-cpu-ms/read")
	b.ReportMetric(shellCPU/directCPU, "cpu-ratio")
	b.ReportMetric(shellCPU/pooledCPU, "cpu-ratio-pgbouncer")
}

// readsPerSecond runs clients loops of ls-remote for span and returns the
// reads finished per second and the CPU milliseconds one read cost: this
// process's children (the clients' process trees) and the servers'
// processes (pids, with their children: PostgreSQL's backends).
func readsPerSecond(b *testing.B, args []string, clients int, span time.Duration, servers []int) (float64, float64) {
	var done atomic.Int64
	var failed atomic.Value
	cpu0 := childrenCPU() + serversCPU(servers)
	stop := time.Now().Add(span)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				cmd := exec.Command("git", "ls-remote", args[2])
				cmd.Env = append(meshtest.GitEnv(args[0]), "GIT_SSH_COMMAND="+args[1], "GIT_SSH_VARIANT=ssh")
				if out, err := cmd.CombinedOutput(); err != nil {
					failed.Store(fmt.Sprintf("ls-remote: %v: %s", err, out))
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if msg, ok := failed.Load().(string); ok {
		b.Fatal(msg)
	}
	cpu := childrenCPU() + serversCPU(servers) - cpu0
	return float64(done.Load()) / span.Seconds(), float64(cpu.Microseconds()) / 1000 / float64(max(done.Load(), 1))
}

// childrenCPU is the CPU time of this process's children that have ended
// (and of theirs, which they waited for).
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serversCPU is the CPU time of the processes pids, of their children that
// ended, and of their children still running (PostgreSQL's backends, one
// level down), from /proc.
func serversCPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		if pid == 0 {
			continue
		}
		ticks += procTicks(pid, true)
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, k := range strings.Fields(string(kids)) {
			if kid, err := strconv.Atoi(k); err == nil {
				ticks += procTicks(kid, false)
			}
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// procTicks is pid's user and system time in clock ticks, with that of
// its ended children when reaped is set.
func procTicks(pid int, reaped bool) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0
	}
	var n int64
	last := 12 // utime, stime: fields 14 and 15
	if reaped {
		last = 14 // and cutime, cstime
	}
	for _, v := range f[11 : last+1] {
		t, _ := strconv.ParseInt(v, 10, 64)
		n += t
	}
	return n
}
