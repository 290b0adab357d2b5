package serve

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"gitmesh/config"
)

// The bookkeeping git reads the cluster key and known_hosts (to name the
// generation of shared ssh connections) only when a git run hops to an
// ssh:// peer: a read of a current copy, or a git run on a local copy,
// never touches them. An unreadable key is said in the log at that hop,
// not at every serve.
func TestGitReadsTheClusterKeyOnlyWhenItHops(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed: apt-get install git")
	}
	dir := t.TempDir()
	s := config.Settings{
		ClusterKey: filepath.Join(dir, "no-such-key"), KnownHosts: filepath.Join(dir, "no-such-known-hosts"),
		ConnectTimeout: config.Duration(5e9), FetchTimeout: config.Duration(60e9), SSHControlPersist: config.Duration(60e9),
	}
	var log bytes.Buffer
	g := Git(s, zerolog.New(&log))
	repo := filepath.Join(dir, "r.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	if _, err := g.Refs(context.Background(), repo); err != nil {
		t.Fatal(err)
	}
	if log.Len() != 0 {
		t.Fatalf("a git run that reaches no peer read the cluster key: %s", log.String())
	}
	// A hop: the command is worked out once, and says why it is unshared.
	cmd := g.SSH()
	if !strings.Contains(cmd, "no-such-key") || strings.Contains(cmd, "ControlMaster") {
		t.Errorf("ssh command for a hop with an unreadable key: %q, want the key and no sharing", cmd)
	}
	if !strings.Contains(log.String(), "not shared") {
		t.Errorf("the hop did not log why its connections are not shared: %s", log.String())
	}
	g.SSH()
	if n := strings.Count(log.String(), "not shared"); n != 1 {
		t.Errorf("the ssh command was worked out %d times, want once", n)
	}
}
