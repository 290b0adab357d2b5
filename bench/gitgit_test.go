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
// in the loop but logged. Capped at 10 pushes.
func BenchmarkPushIntoGitGit(b *testing.B) {
	src := os.Getenv(GitGitEnv)
	if src == "" {
		b.Fatal(gitGitHow)
	}
	if out, err := exec.Command("git", "--git-dir", src, "rev-parse", "--verify", "-q", "refs/heads/master^{commit}").CombinedOutput(); err != nil {
		b.Fatalf("%s=%s is not a readable clone of git/git with a master branch: %v: %s", GitGitEnv, src, err, out)
	}
	c, mesh := sshThree(b)
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
	mesh.mustRun(b, work, append([]string{"push", "-q", mesh.url}, specs...)...)
	tookMesh := time.Since(start)
	converge := waitConverge(b)
	refs := strings.Count(c.LocalGit("", "--git-dir", filepath.Join(c.Dir, "plain", "team", "app.git"), "for-each-ref"), "\n")
	b.Logf("first push of git/git (%d refs here): %s through git shell, %s through gitmesh (its converge went on for %s)",
		refs, tookShell.Round(time.Millisecond), tookMesh.Round(time.Millisecond), converge.Round(time.Millisecond))
	benchPushOnBranch(b, c.Cluster, mesh, shell, work, "master", newSlowLoop(b, 10))
}
