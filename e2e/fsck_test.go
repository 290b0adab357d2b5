package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// Every push is checked object by object (issue 12, item 4): what git's
// fsck refuses never reaches any device, and a copy's own
// receive.fsck.<msg-id> skips are honoured.

// hashObject writes body as an object of type typ into work's repository
// without git's own checks, and returns its id.
func hashObject(t *testing.T, c *meshtest.Cluster, work, typ, body string) string {
	t.Helper()
	cmd := exec.Command("git", "hash-object", "--literally", "-w", "-t", typ, "--stdin")
	cmd.Dir = work
	cmd.Env = meshtest.GitEnv(c.Dir)
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hash-object -t %s: %v", typ, err)
	}
	return strings.TrimSpace(string(out))
}

// mktree writes a tree of the given "mode type id\tname" lines, as git
// mktree takes them (it checks no names).
func mktree(t *testing.T, c *meshtest.Cluster, work string, lines ...string) string {
	t.Helper()
	cmd := exec.Command("git", "mktree")
	cmd.Dir = work
	cmd.Env = meshtest.GitEnv(c.Dir)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mktree: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// commitObject writes a commit of tree on parent with the given header
// lines (author, committer) exactly as given.
func commitObject(t *testing.T, c *meshtest.Cluster, work, tree, parent, headers, msg string) string {
	t.Helper()
	body := "tree " + tree + "\n"
	if parent != "" {
		body += "parent " + parent + "\n"
	}
	return hashObject(t, c, work, "commit", body+headers+"\n"+msg+"\n")
}

const goodSig = "author A U Thor <author@example.com> 1700000000 +0000\ncommitter C O Mitter <committer@example.com> 1700000000 +0000\n"

// allRefs is every device's refs of repo and the recorded versions, for
// "nothing moved anywhere".
func allRefs(t *testing.T, c *meshtest.Cluster, repo string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range []string{"a", "b", "c"} {
		cmd := exec.Command("git", "--git-dir", filepath.Join(c.Devices[name].Root, repo+".git"), "for-each-ref")
		cmd.Env = meshtest.GitEnv(c.Dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("for-each-ref on %s: %v", name, err)
		}
		fmt.Fprintf(&b, "%s:\n%s", name, out)
	}
	vs, _ := copies(t, c, repo)
	fmt.Fprintf(&b, "versions %v", vs)
	return b.String()
}

func TestPushOfMalformedObjectsIsRefusedEverywhere(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	repo, url := "team/app", meshtest.URL("team/app")
	work, base := pushed(t, c)
	c.WaitConverged(repo)
	baseTree := strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD^{tree}"))
	blob := hashObject(t, c, work, "blob", "x\n")

	dotgit := mktree(t, c, work, "100644 blob "+blob+"\t.git")
	dotdot := mktree(t, c, work, "100644 blob "+blob+"\t..")
	modules := hashObject(t, c, work, "blob", "[submodule \"x\"]\n\tpath = x\n\turl = --upload-pack=touch${IFS}/tmp/pwned\n")
	gitmodules := mktree(t, c, work, "100644 blob "+modules+"\t.gitmodules", "160000 commit "+base+"\tx")
	for _, tc := range []struct{ name, commit, want string }{
		{"missing committer", commitObject(t, c, work, baseTree, base,
			"author A U Thor <author@example.com> 1700000000 +0000\n", "no committer"), "missingCommitter"},
		{".git in a tree", commitObject(t, c, work, dotgit, base, goodSig, "dot git"), "hasDotgit"},
		{".. in a tree", commitObject(t, c, work, dotdot, base, goodSig, "dot dot"), "hasDotdot"},
		{".gitmodules url is an option", commitObject(t, c, work, gitmodules, base, goodSig, "modules"), "gitmodulesUrl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := allRefs(t, c, repo)
			for _, dev := range []string{"a", "b"} {
				r := c.Devices[dev].Git("alice", work, "push", url, tc.commit+":refs/heads/main", tc.commit+":refs/heads/bad")
				if r.Code == 0 {
					t.Fatalf("push of %s to %s succeeded:\n%s", tc.name, dev, r.Stderr)
				}
				if !strings.Contains(r.Stderr, tc.want) {
					t.Errorf("push of %s to %s: stderr lacks git's %q:\n%s", tc.name, dev, tc.want, r.Stderr)
				}
			}
			if after := allRefs(t, c, repo); after != before {
				t.Fatalf("a refused push changed refs or versions:\nbefore %s\nafter %s", before, after)
			}
			for _, dev := range []string{"a", "b", "c"} {
				cmd := exec.Command("git", "--git-dir", filepath.Join(c.Devices[dev].Root, repo+".git"), "cat-file", "-e", tc.commit)
				if cmd.Run() == nil {
					t.Errorf("the refused object %s is in %s's copy", tc.commit, dev)
				}
			}
		})
	}
}

// A copy's receive.fsck.<msg-id> is honoured on the device taking the
// push, on the peers storing it and in their catch-up fetches.
func TestPushHonoursTheRepositorysFsckSkips(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	repo, url := "team/app", meshtest.URL("team/app")
	work, base := pushed(t, c)
	c.WaitConverged(repo)
	tree := strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD^{tree}"))
	noEmail := commitObject(t, c, work, tree, base,
		"author A U Thor <author@example.com> 1700000000 +0000\ncommitter C O Mitter 1700000000 +0000\n", "committer without email")

	if r := c.Devices["a"].Git("alice", work, "push", url, noEmail+":refs/heads/main"); r.Code == 0 || !strings.Contains(r.Stderr, "missingEmail") {
		t.Fatalf("push of a commit without committer email before the skip: exit %d\n%s", r.Code, r.Stderr)
	}
	for _, dev := range []string{"a", "b", "c"} {
		cmd := exec.Command("git", "--git-dir", filepath.Join(c.Devices[dev].Root, repo+".git"), "config", "receive.fsck.missingEmail", "ignore")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("config on %s: %v %s", dev, err, out)
		}
	}
	// c cannot store the push: it catches up later by a fetch.
	db := c.DB()
	if _, err := db.Exec(`UPDATE devices SET url = '/nonexistent/c' WHERE name = 'c'`); err != nil {
		t.Fatal(err)
	}
	r := c.Devices["a"].Git("alice", work, "push", url, noEmail+":refs/heads/main")
	if r.Code != 0 {
		t.Fatalf("push with receive.fsck.missingEmail=ignore refused: %s", r.Stderr)
	}
	meshtest.WaitDetached(t)
	if _, err := db.Exec(`UPDATE devices SET url = $1 WHERE name = 'c'`, c.Devices["c"].Root); err != nil {
		t.Fatal(err)
	}
	if out := c.Devices["c"].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(out, noEmail) {
		t.Fatalf("c serves %q after catching up, want %s", out, noEmail)
	}
	c.WaitConverged(repo)
	for _, dev := range []string{"a", "b", "c"} {
		if got := c.Rev(dev, repo, "refs/heads/main"); got != noEmail {
			t.Errorf("%s shows main at %q, want %s", dev, got, noEmail)
		}
	}
}
