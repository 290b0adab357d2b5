package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// Hardening, second round (issue 19): what an attacker with an ordinary
// key, or another local account, tried and must not get.

// stageRefs lists the refs under refs/gitmesh/ of dev's copy of repo.
func stageRefs(t *testing.T, c *meshtest.Cluster, dev, repo string) string {
	t.Helper()
	cmd := exec.Command("git", "--git-dir", filepath.Join(c.Devices[dev].Root, repo+".git"), "for-each-ref", "refs/gitmesh/")
	cmd.Env = meshtest.GitEnv(c.Dir)
	r := runCmd(cmd)
	if r.Code != 0 {
		t.Fatalf("for-each-ref on %s: %s", dev, r.Stderr)
	}
	return r.Stdout
}

// A push refused for want of a quorum leaves nothing behind a ref, and a
// reader cannot name gitmesh's namespace to git archive.
func TestRefusedPushIsUnreadableThroughArchive(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	c.User("rita")
	c.MustAdmin("grant", "rita", "team/app", "read")
	breakURL(t, c, "b")
	breakURL(t, c, "c")

	refused := c.Commit(work, "README", "secret of a refused push\n")
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	if r.Code == 0 || acked(r.Stderr, "main") {
		t.Fatalf("the push was acknowledged with only a reachable: exit %d, %s", r.Code, r.Stderr)
	}
	if refs := stageRefs(t, c, "a", "team/app"); strings.Contains(refs, refused) {
		t.Errorf("a's copy still holds the refused push under refs/gitmesh/:\n%s", refs)
	}
	for _, name := range []string{"refs/gitmesh/stage/heads/main", "gitmesh/stage/heads/main",
		"refs/gitmesh/stage/heads/main:README", "gitmesh/stage/heads/main^{tree}"} {
		r := c.Devices["a"].Git("rita", "", "archive", "--remote="+url, "--format=tar", name)
		if r.Code == 0 || strings.Contains(r.Stdout, "secret of a refused push") || strings.Contains(r.Stdout, refused) {
			t.Errorf("git archive %s: exit %d, %d bytes; want a refusal", name, r.Code, len(r.Stdout))
		}
		if !strings.Contains(r.Stderr, "refs/gitmesh/ is reserved") {
			t.Errorf("git archive %s: stderr %q does not say refs/gitmesh/ is reserved", name, r.Stderr)
		}
	}
	// The recorded version stays readable by archive.
	r = c.Devices["a"].Git("rita", "", "archive", "--remote="+url, "--format=tar", "main", "README")
	if r.Code != 0 || !strings.Contains(r.Stdout, "acknowledged") {
		t.Fatalf("git archive main: exit %d: %s", r.Code, r.Stderr)
	}
}
