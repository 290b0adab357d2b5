package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// The write benchmarks time a push (or the first read after one) through
// gitmesh and the same operation through `git shell -c` on a plain bare
// repository with the same content, alternating the two in one run. In
// each iteration the git-shell side goes first, and the detached `gitmesh
// converge` that a push starts is waited for, untimed, before the next
// iteration: neither side pays for the previous push's background
// catch-up, and every gitmesh push starts on a cluster at rest. How long
// that catch-up went on after the push had answered is reported as
// converge-ms/op (polled every 10ms).
//
// Their iterations take from a quarter of a second to seconds, so each
// benchmark stops early (see slowLoop) to keep `make bench` (-benchtime
// 200x) at minutes; one that stopped early logs it, reports ns/op over the
// iterations it ran and their number as the "iterations" metric (the N
// column still shows b.N).

// BenchmarkPushThreeDevices times a one-commit fast-forward push to a
// cluster of three local-path devices (write quorum 2) against the same
// push through git shell.
func BenchmarkPushThreeDevices(b *testing.B) {
	c := meshtest.NewCluster(b, "a", "b", "c")
	setWriteQuorum(c, 2)
	c.CreateRepo("a", "team/app", "alice")
	mesh := client{env: deviceEnv(c, c.Devices["a"], "alice"), url: meshtest.URL("team/app")}
	shell := plainRepo(b, c, "team/app")
	benchPush(b, c, mesh, shell, newSlowLoop(b, b.N))
}

// BenchmarkPushThreeDevicesSSH is BenchmarkPushThreeDevices with every
// device behind its own sshd (the client reaches a, a stages on b and c,
// and converge reaches them, all over ssh), against git shell run by a's
// sshd as a key's forced command: both sides pay for the client's ssh
// connection to the same sshd. Capped at 10 pushes: an ssh connection
// alone takes over a second on a loaded two-CPU machine.
func BenchmarkPushThreeDevicesSSH(b *testing.B) {
	c, mesh := sshThree(b)
	shell := sshShellRepo(b, c, c.Hosts["a"], "team/app")
	benchPush(b, c.Cluster, mesh, shell, newSlowLoop(b, 10))
}

// BenchmarkPushThreeDevicesSSHPgBouncer is BenchmarkPushThreeDevicesSSH
// with every device reaching PostgreSQL through PgBouncer in session
// mode, as the README recommends: the writer's and each peer's
// connection then costs no backend start.
func BenchmarkPushThreeDevicesSSHPgBouncer(b *testing.B) {
	c, mesh := sshThree(b)
	bouncer := meshtest.StartPgBouncer(b)
	for n, d := range c.Devices {
		d.DBURL = bouncer.URL(c.DBURL)
		c.SetPeerSettings(n, c.ClusterKey, c.KnownHosts)
	}
	shell := sshShellRepo(b, c, c.Hosts["a"], "team/app")
	benchPush(b, c.Cluster, mesh, shell, newSlowLoop(b, 10))
}

// sshThree is a cluster of three devices, each behind its own sshd with
// ssh:// peers (write quorum 2, and the settings given), holding team/app
// for alice, and alice's way to it through a's sshd.
func sshThree(b *testing.B, settings ...string) (*meshtest.SSHCluster, client) {
	c := meshtest.NewSSHCluster(b, "a", "b", "c")
	c.Settings += writeQuorum(2) + strings.Join(settings, "")
	for n := range c.Hosts {
		c.SetPeerSettings(n, c.ClusterKey, c.KnownHosts)
	}
	c.CreateRepo("a", "team/app", "alice")
	return c, client{env: sshEnv(c, c.UserKey("alice")), url: c.Hosts["a"].URL("team/app")}
}

// benchPush pushes one new commit to main per iteration, to both sides.
func benchPush(b *testing.B, c *meshtest.Cluster, mesh, shell client, loop *slowLoop) {
	work := c.Work("alice")
	c.Commit(work, "README", "0\n")
	mesh.mustRun(b, work, "push", "-q", mesh.url, "main")
	shell.mustRun(b, work, "push", "-q", shell.url, "main")
	waitConverge(b)
	benchPushOn(b, c, mesh, shell, work, loop)
}

// BenchmarkPushHundredBranches times a non-atomic push that moves 100 of
// a repository's 2,000 branches, each to a new commit on top of it, with
// --force, to a three-device cluster (write quorum 2), against the same
// push through git shell into a plain bare repository holding the same
// 2,000 branches. Iteration i moves branches 100*i..100*i+99 (mod 2,000).
// Capped at 20 pushes: one iteration takes seconds.
func BenchmarkPushHundredBranches(b *testing.B) {
	const branches, moved = 2000, 100
	c := meshtest.NewCluster(b, "a", "b", "c")
	setWriteQuorum(c, 2)
	c.CreateRepo("a", "team/app", "alice")
	mesh := client{env: deviceEnv(c, c.Devices["a"], "alice"), url: meshtest.URL("team/app")}
	shell := plainRepo(b, c, "team/app")

	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	names := make([]string, branches)
	for i := range names {
		names[i] = fmt.Sprintf("b%04d", i)
	}
	// The branches start at one commit: fast-import of 2,000 commits takes
	// longer here than the first push of them all.
	var create strings.Builder
	for _, name := range names {
		fmt.Fprintf(&create, "create refs/heads/%s HEAD\n", name)
	}
	localGit(b, c, work, create.String(), "update-ref", "--stdin")
	mesh.mustRun(b, work, "push", "-q", mesh.url, "refs/heads/*:refs/heads/*")
	shell.mustRun(b, work, "push", "-q", shell.url, "refs/heads/*:refs/heads/*")
	waitConverge(b)

	loop := newSlowLoop(b, 20)
	var viaGitmesh, viaShell, converge time.Duration
	var batch []string
	from := logSize(c, "a")
	b.ResetTimer()
	for i := 0; loop.next(); i++ {
		b.StopTimer()
		first := i * moved % branches
		batch = names[first : first+moved]
		commitOnEach(b, c, work, batch, i+1)
		// Keep the client's pack count bounded, as its own auto gc would.
		c.LocalGit(work, "gc", "--auto", "--quiet")
		b.StartTimer()
		viaShell += shell.mustRun(b, work, append([]string{"push", "-q", "--force", shell.url}, batch...)...)
		viaGitmesh += mesh.mustRun(b, work, append([]string{"push", "-q", "--force", mesh.url}, batch...)...)
		b.StopTimer()
		converge += waitConverge(b)
		b.StartTimer()
	}
	b.StopTimer()
	for _, name := range batch {
		want := strings.TrimSpace(c.LocalGit(work, "rev-parse", "refs/heads/"+name))
		expectEverywhere(b, c, "team/app", "refs/heads/"+name, want)
	}
	report(b, loop.n, viaGitmesh, viaShell, converge)
	stepTimes(b, c, "a", from)
}

// BenchmarkFirstReadAfterPush times the first `git fetch` from device c
// right after a one-commit push to device a has answered, as the issue
// measures it: three devices, each behind its own sshd with ssh:// peers
// (write quorum 2), every login as the dedicated account. c shows the push
// either because the push staged it there (its grace for the peer beyond
// the quorum) or its converge got there first, or because the fetch
// catches c up itself. c-current-frac is the share of the first reads
// that found c current (as c's log says after each lookup). The baseline
// is the same fetch through git shell on a's sshd from a plain bare
// repository that received the same push (timed before the gitmesh push,
// so that no converge runs meanwhile), into a clone of its own. Every
// fetch from c must bring the pushed commit.
func BenchmarkFirstReadAfterPush(b *testing.B) {
	c, push := sshThree(b)
	read := client{env: push.env, url: c.Hosts["c"].URL("team/app")}
	shell := sshShellRepo(b, c, c.Hosts["a"], "team/app")

	work := c.Work("alice")
	c.Commit(work, "README", "0\n")
	push.mustRun(b, work, "push", "-q", push.url, "main")
	shell.mustRun(b, work, "push", "-q", shell.url, "main")
	waitConverge(b)
	viaMesh, viaPlain := filepath.Join(c.Dir, "read-mesh"), filepath.Join(c.Dir, "read-shell")
	read.mustRun(b, "", "clone", "-q", read.url, viaMesh)
	shell.mustRun(b, "", "clone", "-q", shell.url, viaPlain)
	logFrom := fileSize(c.Devices["c"].Log)

	loop := newSlowLoop(b, 20)
	var viaGitmesh, viaShell, converge time.Duration
	b.ResetTimer()
	for i := 0; loop.next(); i++ {
		b.StopTimer()
		head := c.Commit(work, "README", fmt.Sprintf("%d\n", i+1))
		shell.mustRun(b, work, "push", "-q", shell.url, "main")
		b.StartTimer()
		viaShell += shell.mustRun(b, viaPlain, "fetch", "-q", "origin")
		b.StopTimer()
		push.mustRun(b, work, "push", "-q", push.url, "main")
		b.StartTimer()
		viaGitmesh += read.mustRun(b, viaMesh, "fetch", "-q", "origin")
		b.StopTimer()
		if got := strings.TrimSpace(c.LocalGit(viaMesh, "rev-parse", "refs/remotes/origin/main")); got != head {
			b.Fatalf("iteration %d: the first fetch from c after the push to a brought main at %s, not %s", i, got, head)
		}
		converge += waitConverge(b)
		b.StartTimer()
	}
	b.StopTimer()
	report(b, loop.n, viaGitmesh, viaShell, converge)
	if current, reads := currentReads(c.Devices["c"].Log, logFrom); reads == loop.n {
		b.ReportMetric(float64(current)/float64(reads), "c-current-frac")
	} else {
		b.Logf("c's log shows %d reads of the %d timed, so c-current-frac is not reported", reads, loop.n)
	}
}

// currentReads counts, in a device's log from offset on, the reads (the
// "fast path" line serve logs after its lookup) and those that found the
// copy current, needing no catch-up.
func currentReads(path string, offset int64) (current, reads int) {
	data, _ := os.ReadFile(path)
	if offset > int64(len(data)) {
		return 0, 0
	}
	for _, line := range strings.Split(string(data[offset:]), "\n") {
		var e struct {
			Message, Verb string
			Current       bool
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Message != "fast path" || e.Verb != "git-upload-pack" {
			continue
		}
		reads++
		if e.Current {
			current++
		}
	}
	return current, reads
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// client is one way of reaching a repository: git's environment (which
// ssh command, which key) and the URL.
type client struct {
	env []string
	url string
}

// run runs git in dir and returns how long it took and its stdout; any
// failure ends the benchmark with git's output.
func (g client) run(b *testing.B, dir string, args ...string) (time.Duration, string) {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = g.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("git %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return d, stdout.String()
}

func (g client) mustRun(b *testing.B, dir string, args ...string) time.Duration {
	b.Helper()
	d, _ := g.run(b, dir, args...)
	return d
}

// deviceEnv reaches dev as user through the harness's sshd stand-in, as
// Device.GitCmd does.
func deviceEnv(c *meshtest.Cluster, dev *meshtest.Device, user string) []string {
	env := append(meshtest.GitEnv(c.Dir), "GIT_SSH_COMMAND="+dev.SSHScript(user), "GIT_SSH_VARIANT=ssh")
	return append(env, dev.Env...)
}

// sshEnv reaches a real sshd with key.
func sshEnv(c *meshtest.SSHCluster, key string) []string {
	return append(meshtest.GitEnv(c.Dir), "GIT_SSH_COMMAND="+c.GitSSHCommand(key))
}

// setWriteQuorum rewrites every device's config of a cluster of
// local-path devices with write_quorum = n.
func setWriteQuorum(c *meshtest.Cluster, n int) {
	c.Settings += writeQuorum(n)
	for _, d := range c.Devices {
		d.WriteConfig("")
	}
}

func writeQuorum(n int) string { return fmt.Sprintf("\nwrite_quorum = %d\n", n) }

// plainRepo is the baseline: an empty bare repository at repo under a root
// of its own, reached through `git shell -c` as sshd would run it.
func plainRepo(b *testing.B, c *meshtest.Cluster, repo string) client {
	root := filepath.Join(c.Dir, "plain")
	initBare(b, c, filepath.Join(root, repo+".git"))
	env := append(meshtest.GitEnv(c.Dir), "GIT_SSH_COMMAND="+gitShellScript(b, c.Dir, root), "GIT_SSH_VARIANT=ssh")
	return client{env: env, url: meshtest.URL(repo)}
}

// sshShellRepo is the baseline through a real sshd: a plain bare
// repository, reached through h's sshd with a key of its own whose
// authorized_keys line runs git shell, as a git-shell login would.
func sshShellRepo(b *testing.B, c *meshtest.SSHCluster, h *meshtest.Host, repo string) client {
	dir := filepath.Join(c.Dir, "plain", repo+".git")
	initBare(b, c.Cluster, dir)
	key := c.NewKey("git-shell")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(pub))
	line := `command="exec git shell -c \"$SSH_ORIGINAL_COMMAND\"",restrict ` + f[0] + " " + f[1] + "\n"
	// Appended to what gitmesh wrote; a later RefreshAuthorizedKeys drops it.
	ak, err := os.OpenFile(h.AuthorizedKeys, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer ak.Close()
	if _, err := ak.WriteString(line); err != nil {
		b.Fatal(err)
	}
	return client{env: sshEnv(c, key), url: fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", c.Login, h.Port, dir)}
}

func initBare(b *testing.B, c *meshtest.Cluster, dir string) {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		b.Fatal(err)
	}
	c.LocalGit("", "init", "-q", "--bare", "-b", "main", dir)
}

// commitOnEach makes, in work tree dir, one new commit on top of each
// named branch, touching a file of the branch's own (one fast-import,
// not a git commit per branch). Round tells successive calls apart.
func commitOnEach(b *testing.B, c *meshtest.Cluster, dir string, names []string, round int) {
	b.Helper()
	var in strings.Builder
	now := time.Now().Unix()
	for _, name := range names {
		msg := fmt.Sprintf("%s round %d\n", name, round)
		fmt.Fprintf(&in, "commit refs/heads/%s\ncommitter Test <test@example.com> %d +0000\ndata %d\n%s", name, now, len(msg), msg)
		fmt.Fprintf(&in, "from refs/heads/%s^0\nM 644 inline branches/%s\ndata %d\n%s\n", name, name, len(msg), msg)
	}
	localGit(b, c, dir, in.String(), "fast-import", "--quiet")
}

// localGit runs git in dir with stdin, without any device.
func localGit(b *testing.B, c *meshtest.Cluster, dir, stdin string, args ...string) {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = meshtest.GitEnv(c.Dir)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// waitConverge waits until no `gitmesh converge` of this test process's
// binary runs any more and returns how long that took. A push starts its
// converge before it answers, so right after a push there is one to see.
func waitConverge(b *testing.B) time.Duration {
	b.Helper()
	start := time.Now()
	for deadline := start.Add(2 * time.Minute); len(meshtest.Processes("converge")) > 0; {
		if time.Now().After(deadline) {
			b.Fatalf("gitmesh converge still running after %s", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// expectEverywhere checks that every device's copy of repo has ref at want.
func expectEverywhere(b *testing.B, c *meshtest.Cluster, repo, ref, want string) {
	b.Helper()
	for name := range c.Devices {
		if got := c.Rev(name, repo, ref); got != want {
			b.Errorf("device %s has %s at %q after the pushes, want %s", name, ref, got, want)
		}
	}
}

// slowLoop runs a slow benchmark's iterations: b.N of them, but at most
// limit, and no new one (past the third) once the loop has run for
// maxLoop, so that `make bench` (-benchtime 200x) stays at minutes even on
// a loaded machine. n counts the iterations that ran.
type slowLoop struct {
	b     *testing.B
	limit int
	start time.Time
	n     int
}

// maxLoop is how long a slow benchmark's loop may run, setup aside.
const maxLoop = 90 * time.Second

func newSlowLoop(b *testing.B, limit int) *slowLoop {
	return &slowLoop{b: b, limit: min(b.N, limit)}
}

// next reports whether to run another iteration, and counts it.
func (l *slowLoop) next() bool {
	if l.n == 0 {
		l.start = time.Now()
	}
	if l.n >= l.limit || l.n >= 3 && time.Since(l.start) > maxLoop {
		if l.n < l.b.N {
			l.b.Logf("ran %d iterations, not the %d asked for: each takes too long for `make bench`", l.n, l.b.N)
		}
		return false
	}
	l.n++
	return true
}

// report adds the per-iteration times and their ratio over the n
// iterations that ran.
func report(b *testing.B, n int, viaGitmesh, viaShell, converge time.Duration) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) / 1000 }
	if n != b.N {
		// The N column shows b.N; these are over the n that ran.
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/op")
		b.ReportMetric(float64(n), "iterations")
	}
	b.ReportMetric(ms(viaGitmesh), "gitmesh-ms/op")
	b.ReportMetric(ms(viaShell), "gitshell-ms/op")
	b.ReportMetric(float64(viaGitmesh)/float64(viaShell), "ratio")
	b.ReportMetric(ms(converge), "converge-ms/op")
}

// logSize is where dev's log ends now: stepTimes reads from there.
func logSize(c *meshtest.Cluster, dev string) int64 {
	fi, err := os.Stat(c.Devices[dev].Log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// stepTimes reports the median of each step of the pushes dev logged
// since from (its `push timings` lines), as <step>-ms metrics: where a
// push's time goes, beside its ratio.
func stepTimes(b *testing.B, c *meshtest.Cluster, dev string, from int64) {
	data, err := os.ReadFile(c.Devices[dev].Log)
	if err != nil || int64(len(data)) < from {
		return
	}
	steps := []string{"read_refs", "validate", "stage", "replicate", "record", "show"}
	got := map[string][]float64{}
	for _, line := range bytes.Split(data[from:], []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) != nil || m["message"] != "push timings" {
			continue
		}
		for _, s := range steps {
			if v, ok := m[s].(float64); ok {
				got[s] = append(got[s], v)
			}
		}
	}
	for _, s := range steps {
		if v := got[s]; len(v) > 0 {
			sort.Float64s(v)
			b.ReportMetric(v[len(v)/2], s+"-ms")
		}
	}
}
