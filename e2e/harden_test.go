package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// emptyPack is a pack of no objects: what a push of refs to commits the
// repository already holds carries.
func emptyPack() []byte {
	head := []byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00")
	sum := sha1.Sum(head)
	return append(head, sum[:]...)
}

// rawPush speaks receive-pack's protocol to dev's serve as user, as a
// hostile client may: the ref commands exactly as given (the first with
// report-status), then a pack of no objects. It returns serve's result.
func rawPush(t *testing.T, c *meshtest.Cluster, dev, user, repo string, cmds ...string) meshtest.Result {
	t.Helper()
	var in bytes.Buffer
	for i, cmd := range cmds {
		if i == 0 {
			cmd += "\x00report-status"
		}
		fmt.Fprintf(&in, "%04x%s\n", len(cmd)+5, cmd)
	}
	in.WriteString("0000")
	in.Write(emptyPack())
	cmd := exec.Command(meshtest.Binary(), "--config", c.Devices[dev].Config, "serve", user)
	cmd.Env = append(meshtest.GitEnv(c.Dir), "SSH_ORIGINAL_COMMAND=git-receive-pack '"+repo+"'")
	cmd.Stdin = &in
	return runCmd(cmd)
}

// A push holding a ref command with a space in its name is refused whole:
// the well-formed command beside it is not recorded, shown or logged.
func TestMalformedRefCommandRefusesTheWholePush(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	_, head := pushed(t, c)
	c.WaitConverged("team/app")
	_, v0 := copies(t, c, "team/app")

	r := rawPush(t, c, "a", "alice", "team/app",
		gitexecZero+" "+head+" refs/heads/s2",
		gitexecZero+" "+head+" refs/heads/s2 x")
	t.Logf("push with a malformed command: exit %d\n%s", r.Code, r.Stderr)
	if !strings.Contains(r.Stderr, "malformed ref command") {
		t.Errorf("serve's stderr does not say the push holds a malformed command: %s", r.Stderr)
	}
	if strings.Contains(r.Stdout, "ok refs/heads/s2") {
		t.Errorf("receive-pack reported refs/heads/s2 as updated: %q", r.Stdout)
	}
	if got := c.Rev("a", "team/app", "refs/heads/s2"); got != "" {
		t.Fatalf("a shows refs/heads/s2 = %s after a refused push", got)
	}
	if _, v := copies(t, c, "team/app"); v != v0 {
		t.Fatalf("the refused push recorded version %d (was %d)", v, v0)
	}
	var logged int
	if err := c.DB().QueryRow(`SELECT count(*) FROM push_log WHERE ref LIKE 'refs/heads/s2%'`).Scan(&logged); err != nil {
		t.Fatal(err)
	}
	if logged != 0 {
		t.Fatalf("push_log holds %d rows for the refused push", logged)
	}
	writable(t, c, "team/app")
}

const gitexecZero = "0000000000000000000000000000000000000000"

// git's own refusals hold through gitmesh: HEAD's branch cannot be
// deleted (receive.denyDeleteCurrent), nor a one-level ref created.
func TestGitRefusalsDeleteCurrentAndFunnyRefname(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, head := pushed(t, c)
	c.WaitConverged("team/app")
	_, v0 := copies(t, c, "team/app")

	r := c.Devices["a"].Git("alice", work, "push", url, ":main")
	t.Logf("delete main: exit %d\n%s", r.Code, r.Stderr)
	if r.Code == 0 || !strings.Contains(r.Stderr, "deletion of the current branch prohibited") {
		t.Errorf("deleting HEAD's branch: exit %d, %s; want git's refusal", r.Code, r.Stderr)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != head {
		t.Fatalf("main is %q after a refused deletion, want %s", got, head)
	}
	r = c.Devices["a"].Git("alice", work, "push", url, "HEAD:refs/foo")
	t.Logf("push refs/foo: exit %d\n%s", r.Code, r.Stderr)
	if r.Code == 0 || !strings.Contains(r.Stderr, "funny refname") {
		t.Errorf("pushing refs/foo: exit %d, %s; want git's funny refname", r.Code, r.Stderr)
	}
	if got := c.Rev("a", "team/app", "refs/foo"); got != "" {
		t.Fatalf("refs/foo = %s after a refused push", got)
	}
	if _, v := copies(t, c, "team/app"); v != v0 {
		t.Fatalf("the refused pushes recorded version %d (was %d)", v, v0)
	}
	// Another branch may go, as with git.
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "HEAD:refs/heads/topic")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, ":topic")
	if got := c.Rev("a", "team/app", "refs/heads/topic"); got != "" {
		t.Fatalf("topic = %s after its deletion", got)
	}
}

// A repository's pre-receive hook cannot reach serve's relay socket: its
// environment does not name it, and a process it starts that finds the
// socket anyway (by looking in TMPDIR) is turned away, so it cannot
// inject a ref update attributed to the pusher.
func TestHookCannotInjectThroughTheRelaySocket(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	envOut := filepath.Join(c.Dir, "pre-receive-env")
	tmp := t.TempDir()
	c.Devices["a"].Env = append(c.Devices["a"].Env, "TMPDIR="+tmp)
	hook := filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "pre-receive")
	script := fmt.Sprintf(`#!/bin/sh
env > %q
read old new ref
for s in "$TMPDIR"/gitmesh-*/*/s "$TMPDIR"/gitmesh-push-*/hook.sock; do
	[ -S "$s" ] || continue
	printf '000eversion=1\n0000006a%%s %%s refs/heads/injected\n0000' %s "$new" |
		GITMESH_HOOK_SOCKET="$s" %q hook proc-receive >/dev/null 2>&1
done
exit 0
`, envOut, gitexecZero, meshtest.Binary())
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	next := c.Commit(work, "README", "pushed while a hook tries to inject\n")
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	t.Logf("push: exit %d\n%s", r.Code, r.Stderr)
	if got := c.Rev("a", "team/app", "refs/heads/injected"); got != "" {
		t.Errorf("the hook injected refs/heads/injected = %s", got)
	}
	if r.Code != 0 || !acked(r.Stderr, "main") {
		t.Errorf("the real push was not acknowledged: exit %d, %s", r.Code, r.Stderr)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != next {
		t.Errorf("main = %s, want %s", got, next)
	}
	env, err := os.ReadFile(envOut)
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	if strings.Contains(string(env), "GITMESH_HOOK_SOCKET") {
		t.Errorf("the repository's pre-receive saw the socket's address")
	}
	var logged int
	if err := c.DB().QueryRow(`SELECT count(*) FROM push_log WHERE ref = 'refs/heads/injected'`).Scan(&logged); err != nil || logged != 0 {
		t.Errorf("push_log holds %d rows for refs/heads/injected (%v)", logged, err)
	}
}

// Other local accounts read nothing gitmesh creates (issue 19): with the
// common umask 022 around it, the copies (objects, refs, the stage), made
// by repo create, a push, a staging push and a catch-up, and the log, give
// others no access. The hook scripts in <root>/.gitmesh/hooks stay 0755
// (they hold only the binary's path) under a root others cannot enter.
func TestOtherAccountsReadNothing(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.Commit(work, "README", "second\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	c.WaitConverged("team/app")
	c.Devices["c"].MustGit("alice", "", "ls-remote", url)
	for name, d := range c.Devices {
		for _, top := range []string{filepath.Join(d.Root, "team"), d.Log} {
			filepath.Walk(top, func(p string, info os.FileInfo, err error) error {
				if os.IsNotExist(err) && p == d.Log {
					return nil // nothing logged on this device
				}
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return nil
				}
				if info.Mode().Perm()&0o007 != 0 {
					t.Errorf("%s: %s has mode %v: other accounts may use it", name, p, info.Mode().Perm())
					return filepath.SkipDir
				}
				return nil
			})
		}
	}
}

// No repository lives inside a working directory of gitmesh's own: the
// rebuild of a missing lib (in lib.git.gitmesh-new) would delete it.
func TestWorkingNamesAreNotRepositories(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	c.CreateRepo("a", "lib", "alice")
	r := c.Admin("repo", "create", "lib.git.gitmesh-new/sub")
	if r.Code != 2 || !strings.Contains(r.Stderr, "working names") {
		t.Errorf("repo create lib.git.gitmesh-new/sub: exit %d, %q; want exit 2 naming gitmesh's working names", r.Code, r.Stderr)
	}
	r = serveAs(c.Devices["a"], "alice", "git-receive-pack 'lib.git.gitmesh-new/sub'")
	if r.Code != 2 || !strings.Contains(r.Stderr, "working names") {
		t.Errorf("push to lib.git.gitmesh-new/sub: exit %d, %q; want exit 2", r.Code, r.Stderr)
	}
}

// A push beyond max_push_bytes or max_push_refs is refused with one
// sentence, exit 2, and nothing moves or is recorded.
func TestPushSizeBounds(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, head := pushed(t, c)
	c.WaitConverged("team/app")
	_, v0 := copies(t, c, "team/app")
	c.Devices["a"].WriteConfig("max_push_bytes = 1048576\nmax_push_refs = 2")

	big := make([]byte, 3<<20)
	rand.Read(big) // incompressible: the pack is as large
	if err := os.WriteFile(filepath.Join(work, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	c.LocalGit(work, "add", "big.bin")
	c.LocalGit(work, "commit", "-q", "-m", "big")
	r, code := pushKeepingServeExit(t, c, "a", work, url, "main")
	t.Logf("push of 3 MiB: exit %d, serve %d\n%s", r.Code, code, r.Stderr)
	if r.Code == 0 || !strings.Contains(r.Stderr, "gitmesh: push to team/app refused: it sends more than max_push_bytes (1 MiB); nothing was changed") {
		t.Errorf("a push beyond max_push_bytes: exit %d, %s", r.Code, r.Stderr)
	}
	if code != 2 {
		t.Errorf("serve exited %d, want 2", code)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != head {
		t.Fatalf("main = %s after a refused push, want %s", got, head)
	}
	c.LocalGit(work, "reset", "-q", "--hard", head)

	c.LocalGit(work, "commit", "-q", "--allow-empty", "-m", "small")
	r, code = pushKeepingServeExit(t, c, "a", work, url, "HEAD:refs/heads/x1", "HEAD:refs/heads/x2", "HEAD:refs/heads/x3")
	t.Logf("push of 3 refs: exit %d, serve %d\n%s", r.Code, code, r.Stderr)
	if r.Code == 0 || !strings.Contains(r.Stderr, "it updates 3 refs, more than max_push_refs (2)") || code != 2 {
		t.Errorf("a push beyond max_push_refs: exit %d, serve %d, %s", r.Code, code, r.Stderr)
	}
	for _, ref := range []string{"refs/heads/x1", "refs/heads/x2", "refs/heads/x3"} {
		if got := c.Rev("a", "team/app", ref); got != "" {
			t.Errorf("%s = %s after a refused push", ref, got)
		}
	}
	if _, v := copies(t, c, "team/app"); v != v0 {
		t.Fatalf("refused pushes recorded version %d (was %d)", v, v0)
	}
	// Within the bounds, pushes go on.
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "HEAD:refs/heads/x1", "HEAD:refs/heads/x2")
	writable(t, c, "team/app")
}

// A killed push's quarantine (objects/tmp_objdir-incoming-*) is removed
// by a later push once it is older than any push may run; a recent one,
// which may be a live push's, stays.
func TestKilledPushQuarantineIsRemoved(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.Devices["a"].WriteConfig(`push_timeout = "10s"` + "\n" + `fetch_timeout = "10s"`)
	objects := filepath.Join(c.Devices["a"].Root, "team/app.git", "objects")
	old := filepath.Join(objects, "tmp_objdir-incoming-killed")
	recent := filepath.Join(objects, "tmp_objdir-incoming-live")
	for _, d := range []string{old, recent} {
		if err := os.MkdirAll(filepath.Join(d, "pack"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "pack", "tmp_pack_x"), make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-time.Hour)
	for _, p := range []string{filepath.Join(old, "pack", "tmp_pack_x"), filepath.Join(old, "pack"), old} {
		os.Chtimes(p, long, long)
	}
	c.Commit(work, "README", "after a killed push\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the killed push's quarantine is still there: %v", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("a recent quarantine (maybe a live push's) was removed: %v", err)
	}
}

// prune-logs keeps the history tables bounded: rows older than
// log_retention go, newer ones stay.
func TestPruneLogsKeepsHistoryBounded(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t) // the push's attempt is recorded by its converge
	d := c.DB()
	for _, q := range []string{
		`UPDATE push_log SET created_at = now() - interval '100 days'`,
		`UPDATE sync_log SET created_at = now() - interval '100 days'`,
		`UPDATE push_attempts SET created_at = now() - interval '100 days'`,
	} {
		if _, err := d.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	c.Commit(work, "README", "recent\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	count := func(table string) (old, recent int) {
		t.Helper()
		if err := d.QueryRow(`SELECT count(*) FILTER (WHERE created_at < now() - interval '30 days'),
			count(*) FILTER (WHERE created_at >= now() - interval '30 days') FROM `+table).Scan(&old, &recent); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, table := range []string{"push_log", "sync_log", "push_attempts"} {
		if old, recent := count(table); old == 0 || recent == 0 {
			t.Fatalf("%s before pruning: %d old and %d recent rows; the test needs both", table, old, recent)
		}
	}
	r := c.Devices["a"].Run([]string{"GITMESH_LOG_RETENTION=720h"}, "prune-logs")
	if r.Code != 0 || !strings.Contains(r.Stdout, "push_log: ") {
		t.Fatalf("prune-logs: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, table := range []string{"push_log", "sync_log", "push_attempts"} {
		if old, recent := count(table); old != 0 || recent == 0 {
			t.Errorf("%s after pruning: %d old and %d recent rows; want 0 old, the recent kept", table, old, recent)
		}
	}
}

// One user's idle pushes do not hold a repository (issue 19): the write
// lock is asked for only once a push's commands and pack have arrived, so
// stalled uploads hold neither the lock nor a place in its queue, and
// another user's push goes through at once.
func TestStalledUploadsDoNotHoldTheWriteLock(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	url := meshtest.URL("team/app")
	work, head := pushed(t, c)
	c.WaitConverged("team/app")
	c.User("bob")
	c.MustAdmin("grant", "bob", "team/app", "write")
	a := c.Devices["a"]
	a.WriteConfig("max_push_waiters = 1\npush_idle_timeout = \"20s\"")
	db := c.DB()

	var wg sync.WaitGroup
	const stalled = 3
	for i := 0; i < stalled; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stalledPush(t, a, "alice", "team/app", head)
		}()
	}
	defer wg.Wait()
	waitFor(t, "three stalled pushes connected", func() bool {
		var n int
		db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'gitmesh push % alice@a team/app'`).Scan(&n)
		return n == stalled
	})
	start := time.Now()
	bobWork := c.Dir + "/bob"
	a.MustGit("bob", "", "clone", "-q", url, bobWork)
	next := c.Commit(bobWork, "README", "bob's, while alice's uploads stall\n")
	r := a.Git("bob", bobWork, "push", url, "main")
	if r.Code != 0 || !acked(r.Stderr, "main") {
		t.Fatalf("bob's push while alice's uploads stall: exit %d, %s", r.Code, r.Stderr)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("bob's push took %s: it waited for the stalled uploads", took)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != next {
		t.Errorf("main = %s, want bob's %s", got, next)
	}
	_ = work
}

// Places in the write lock's queue are shared fairly: one user's pushes
// take at most two, and another user still finds one.
func TestOneUserTakesAtMostTwoWaitingPlaces(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	work, head := pushed(t, c)
	c.WaitConverged("team/app")
	c.User("bob")
	c.MustAdmin("grant", "bob", "team/app", "write")
	a := c.Devices["a"]
	a.WriteConfig("max_push_waiters = 8")
	db := c.DB()
	holder := holdWriteLock(t, c, "team/app")
	defer holder.Close()
	waiting := func() int {
		var n int
		db.QueryRow(`SELECT count(*) FROM pg_locks WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND locktype = 'advisory' AND NOT granted AND classid = x'676d5700'::int::oid`).Scan(&n)
		return n
	}
	type result struct {
		name string
		r    meshtest.Result
	}
	done := make(chan result, 4)
	for i, who := range []string{"alice", "alice"} {
		go func() {
			done <- result{who, rawPush(t, c, "a", who, "team/app", fmt.Sprintf("%s %s refs/heads/%s-%d", gitexecZero, head, who, i))}
		}()
		waitFor(t, fmt.Sprintf("%d pushes waiting", i+1), func() bool { return waiting() == i+1 })
	}
	r := rawPush(t, c, "a", "alice", "team/app", gitexecZero+" "+head+" refs/heads/alice-2")
	if r.Code != 5 || !strings.Contains(r.Stderr, "2 of your pushes already wait for its write lock") {
		t.Fatalf("alice's third waiting push: exit %d (want 5), %q", r.Code, r.Stderr)
	}
	go func() {
		done <- result{"bob", rawPush(t, c, "a", "bob", "team/app", gitexecZero+" "+head+" refs/heads/bob-0")}
	}()
	waitFor(t, "bob's push waiting beside alice's two", func() bool { return waiting() == 3 })
	holder.Close()
	for i := 0; i < 3; i++ {
		res := <-done
		if res.r.Code != 0 {
			t.Errorf("%s's waiting push: exit %d, %s", res.name, res.r.Code, res.r.Stderr)
		}
	}
	for _, ref := range []string{"refs/heads/alice-0", "refs/heads/alice-1", "refs/heads/bob-0"} {
		if got := c.Rev("a", "team/app", ref); got != head {
			t.Errorf("%s = %q, want %s", ref, got, head)
		}
	}
	if got := c.Rev("a", "team/app", "refs/heads/alice-2"); got != "" {
		t.Errorf("the refused push created alice-2")
	}
	_ = work
}
