package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitmesh/gitexec"
	"gitmesh/meshtest"
)

// thousandRefspecs names 1,000 new branches under prefix, all at main.
func thousandRefspecs(prefix string) []string {
	var specs []string
	for i := 0; i < 1000; i++ {
		specs = append(specs, fmt.Sprintf("main:refs/heads/%s/b%04d", prefix, i))
	}
	return specs
}

// A push of many refs writes them on each peer without a sync per ref and
// counts a peer as storing it only once that peer synced its filesystem
// (its staging receive-pack's hook, before it reports). With the peers'
// sync failing, neither peer stores the push: it is refused and nothing
// is shown anywhere. A push of one ref keeps git's own sync of each ref
// and does not need the hook. Once the sync works, the 1,000 refs are
// acknowledged, recorded and shown on every device with equal digests.
func TestManyRefsAreStoredOnlyOnceSynced(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)

	// Local-path peers: their receive-pack runs under a's serve, with its
	// PATH, on which `sync` now fails.
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "sync"), []byte("#!/bin/sh\necho injected sync failure >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := c.Devices["a"]
	env := a.Env
	a.Env = append(append([]string(nil), env...), "PATH="+fake+":"+os.Getenv("PATH"))
	push := append([]string{"push", "-q", url}, thousandRefspecs("many")...)
	r := a.Git("alice", work, push...)
	if r.Code == 0 || !strings.Contains(r.Stderr, "only 1 of 3 devices could store the push") {
		t.Fatalf("push of 1,000 refs whose peers cannot sync: exit %d, want refused as stored on 1 of 3:\n%s", r.Code, r.Stderr)
	}
	meshtest.WaitDetached(t)
	for _, d := range []string{"a", "b", "c"} {
		if out := c.Devices[d].MustGit("alice", "", "ls-remote", url, "refs/heads/many/*"); out != "" {
			t.Errorf("%s shows refs of the refused push:\n%.300s", d, out)
		}
	}
	if n := gitexec.BatchSyncRefs; n < 2 {
		t.Fatalf("BatchSyncRefs = %d: a one-ref push would need the hook too", n)
	}
	a.MustGit("alice", work, "push", "-q", url, "main:refs/heads/one")

	a.Env = env
	r = a.Git("alice", work, push...)
	if r.Code != 0 || !strings.Contains(r.Stderr, "stored on") {
		t.Fatalf("push of 1,000 refs: exit %d:\n%s", r.Code, r.Stderr)
	}
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	want := c.Rev("a", "team/app", "refs/heads/main")
	for _, d := range []string{"a", "b", "c"} {
		out := c.Devices[d].MustGit("alice", "", "ls-remote", url, "refs/heads/many/*")
		if n := strings.Count(out, want); n != 1000 {
			t.Errorf("%s shows %d of the 1,000 new branches at main", d, n)
		}
	}
	if out := c.MustAdmin("verify", "team/app"); !strings.Contains(out, "3 copies match") {
		t.Errorf("verify after the push of 1,000 refs:\n%s", out)
	}
}

// Over ssh:// peers a push of many refs asks each peer's cluster entry
// point for gitmesh-stage, which runs receive-pack with gitmesh's syncing
// hook (written under that device's repo root): the 1,000 refs are
// stored on both peers, recorded and shown everywhere with equal digests.
func TestManyRefsOverSSHPeers(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	a := c.Hosts["a"]
	work := sshPushed(t, c)

	r := a.Git("alice", work, append([]string{"push", a.URL("team/app")}, thousandRefspecs("many")...)...)
	if r.Code != 0 || !strings.Contains(r.Stderr, "stored on") {
		t.Fatalf("push of 1,000 refs: exit %d:\n%s", r.Code, r.Stderr)
	}
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	want := strings.TrimSpace(c.LocalGit(work, "rev-parse", "main"))
	for _, d := range []string{"a", "b", "c"} {
		out := c.Hosts[d].MustGit("alice", "", "ls-remote", c.Hosts[d].URL("team/app"), "refs/heads/many/*")
		if n := strings.Count(out, want); n != 1000 {
			t.Errorf("%s shows %d of the 1,000 new branches at main", d, n)
		}
	}
	stored := 0
	for _, d := range []string{"b", "c"} {
		var result string
		err := c.DB().QueryRow(`SELECT s.result FROM sync_log s JOIN devices d ON d.id = s.device_id
			WHERE d.name = $1 AND s.kind = 'stage' ORDER BY s.id DESC LIMIT 1`, d).Scan(&result)
		if err == nil && result == "ok" {
			stored++
			hook := filepath.Join(c.Devices[d].Root, ".gitmesh", "stage-hooks", "reference-transaction")
			if _, err := os.Stat(hook); err != nil {
				t.Errorf("%s stored the push without its cluster entry point's syncing hook: %v", d, err)
			}
		}
	}
	if stored == 0 {
		t.Error("no ssh peer stored the push of 1,000 refs")
	}
	if out := c.MustAdmin("verify", "team/app"); !strings.Contains(out, "3 copies match") {
		t.Errorf("verify after the push of 1,000 refs:\n%s", out)
	}
}
