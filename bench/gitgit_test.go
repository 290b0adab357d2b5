package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// GitGitEnv names a bare clone of git/git (its branches and tags: about
// 1,000 refs and 300 MiB of pack) that BenchmarkPushIntoGitGit pushes
// into the cluster. A real history, not a synthetic one: what a push
// costs in a repository of that size depends on its object graph (the
// connectivity walk, the packs and their deltas, the tags), which a
// generated repository of the same ref count and size would not have.
const GitGitEnv = "GITMESH_BENCH_GITGIT"

// gitGitHow is the one sentence a run without the clone fails with.
const gitGitHow = GitGitEnv + " is not set: clone git/git once with `git clone --bare https://github.com/git/git.git DIR` (branches and tags, about 300 MiB), make DIR readable by the account the benchmarks run as, and set " + GitGitEnv + "=DIR"

// BenchmarkPushIntoGitGit times a one-commit push to master of git/git
// (its branches and tags, from the clone GITMESH_BENCH_GITGIT names) on
// three devices, each behind its own sshd with ssh:// peers (write quorum
// 2), against the same push through git shell on a's sshd into a plain
// bare repository holding the same refs: what a push pays for a large
// repository's refs and objects. The whole repository is pushed once
// first, through gitmesh and through git shell; that setup is not timed
// in the loop but logged (minutes). Capped at 10 pushes.
func BenchmarkPushIntoGitGit(b *testing.B) {
	src := os.Getenv(GitGitEnv)
	if src == "" {
		b.Fatal(gitGitHow)
	}
	if out, err := exec.Command("git", "--git-dir", src, "rev-parse", "--verify", "-q", "refs/heads/master^{commit}").CombinedOutput(); err != nil {
		b.Fatalf("%s=%s is not a readable clone of git/git with a master branch: %v: %s", GitGitEnv, src, err, out)
	}
	// The first push stages 300 MiB on each peer: more than the test
	// harness's fetch_timeout (a minute) on a loaded machine.
	c, mesh := sshThree(b, "\nfetch_timeout = \"30m\"\n")
	shell := sshShellRepo(b, c, c.Hosts["a"], "team/app")
	work := filepath.Join(c.Dir, "gitgit")
	// --shared borrows src's objects (no copy); the pushes below copy them
	// into every device and the plain repository. src may belong to
	// another account (root's clone, read by the benchmark account).
	// (git's own safe.directory check; -c does not reach the local
	// transport's upload-pack).
	c.LocalGit("", "clone", "-q", "--shared", "--no-checkout",
		"--upload-pack", "git -c safe.directory='"+strings.ReplaceAll(src, "'", `'\''`)+"' upload-pack", src, work)
	c.LocalGit(work, "checkout", "-q", "-B", "master", "refs/remotes/origin/master")
	specs := []string{"refs/remotes/origin/*:refs/heads/*", "^refs/remotes/origin/HEAD", "refs/tags/*:refs/tags/*"}
	start := time.Now()
	shell.mustRun(b, work, append([]string{"push", "-q", shell.url}, specs...)...)
	tookShell := time.Since(start)
	start = time.Now()
	seed := exec.Command("git", append([]string{"push", "-q", mesh.url}, specs...)...)
	seed.Dir, seed.Env = work, mesh.env
	if out, err := seed.CombinedOutput(); err != nil {
		b.Fatalf("the first push of git/git through gitmesh: %v: %s\na's warnings:\n%s", err, lastLines(string(out), 5), warnings(c.Devices["a"].Log))
	}
	tookMesh := time.Since(start)
	converge := waitConverge(b)
	refs := strings.Count(c.LocalGit("", "--git-dir", filepath.Join(c.Dir, "plain", "team", "app.git"), "for-each-ref"), "\n")
	b.Logf("first push of git/git (%d refs here): %s through git shell, %s through gitmesh (its converge went on for %s)",
		refs, tookShell.Round(time.Millisecond), tookMesh.Round(time.Millisecond), converge.Round(time.Millisecond))
	// A sub-benchmark, so that the setup above runs once: the testing
	// package runs a benchmark function again for each b.N it tries,
	// unless it has sub-benchmarks.
	b.Run("one-commit", func(b *testing.B) {
		benchPushOnBranch(b, c.Cluster, mesh, shell, work, "master", newSlowLoop(b, 10))
	})
}

// lastLines is the end of git's output (a refused push of 1,000 refs
// prints a line per ref).
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// warnings are the warning and error lines of a device's log.
func warnings(log string) string {
	data, _ := os.ReadFile(log)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
			out = append(out, line)
		}
	}
	return lastLines(strings.Join(out, "\n"), 10)
}
