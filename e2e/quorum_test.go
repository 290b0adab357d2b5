package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"gitmesh/lock"
	"gitmesh/meshtest"
)

// The write path with a write quorum (issue 10): a push is on a majority
// of the devices before the client sees "ok", fails closed, costs one
// version, and every device converges without a read.

// copyState is one device's row of working_copy_versions.
type copyState struct {
	Version          int64
	Pending, Writing bool
}

// copies reads every device's recorded copy of repo and the newest version.
func copies(t *testing.T, c *meshtest.Cluster, repo string) (map[string]copyState, int64) {
	t.Helper()
	rows, err := c.DB().Query(`SELECT d.name, v.version, v.refs_pending, v.is_writing
		FROM working_copy_versions v JOIN devices d ON d.id = v.device_id
		JOIN repositories r ON r.id = v.repository_id WHERE r.name = $1`, repo)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]copyState{}
	newest := int64(-1)
	for rows.Next() {
		var name string
		var s copyState
		if err := rows.Scan(&name, &s.Version, &s.Pending, &s.Writing); err != nil {
			t.Fatal(err)
		}
		out[name] = s
		newest = max(newest, s.Version)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out, newest
}

// statusRow is one row of `gitmesh status --json`.
type statusRow struct {
	Repository  string `json:"repository"`
	Device      string `json:"device"`
	Version     int64  `json:"version"`
	Lag         int64  `json:"lag"`
	IsWriting   bool   `json:"is_writing"`
	Frozen      bool   `json:"frozen"`
	Pending     bool   `json:"pending"`
	Holders     int    `json:"holders"`
	HoldNewest  int    `json:"hold_newest"`
	Quorum      int    `json:"quorum"`
	BelowQuorum bool   `json:"below_quorum"`
}

// statusOf runs `gitmesh status --json repo` and returns its rows by device.
func statusOf(t *testing.T, c *meshtest.Cluster, repo string) map[string]statusRow {
	t.Helper()
	out := c.MustAdmin("status", "--json", repo)
	var rows []statusRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	byDev := map[string]statusRow{}
	for _, r := range rows {
		byDev[r.Device] = r
	}
	return byDev
}

// writable fails the test if status shows a write mark on any copy of repo.
func writable(t *testing.T, c *meshtest.Cluster, repo string) {
	t.Helper()
	for dev, r := range statusOf(t, c, repo) {
		if r.Frozen || r.IsWriting {
			t.Fatalf("%s on %s is marked writing (frozen %v) although no push runs:\n%s", repo, dev, r.Frozen, c.MustAdmin("status", repo))
		}
	}
}

// serves fails the test unless a read of main on each device serves want.
func serves(t *testing.T, c *meshtest.Cluster, want string, devs ...string) {
	t.Helper()
	for _, d := range devs {
		r := c.Devices[d].Git("alice", "", "ls-remote", meshtest.URL("team/app"), "refs/heads/main")
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, want) {
			t.Fatalf("read of main on %s: exit %d, %q, want %s; stderr: %s", d, r.Code, r.Stdout, want, r.Stderr)
		}
	}
}

// acked reports whether git's push report (on stderr, without -q) shows
// the push to dst (as git prints it, "main" for refs/heads/main) as done.
func acked(stderr, dst string) bool {
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "!") || strings.HasPrefix(l, "error:") {
			continue
		}
		if strings.HasSuffix(l, " -> "+dst) || strings.Contains(l, " -> "+dst+" (forced update)") {
			return true
		}
	}
	return false
}

// breakURL points dev's registered URL nowhere: peers cannot reach it.
func breakURL(t *testing.T, c *meshtest.Cluster, dev string) {
	t.Helper()
	if _, err := c.DB().Exec(`UPDATE devices SET url = '/nonexistent/' || name WHERE name = $1`, dev); err != nil {
		t.Fatal(err)
	}
}

// runCmd runs cmd and reports its output and exit status.
func runCmd(cmd *exec.Cmd) meshtest.Result {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := meshtest.Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		r.Code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		}
	}
	return r
}

// pushKeepingServeExit runs `git push args...` to dev as alice through an
// ssh stand-in that runs serve as sshd would and keeps serve's own exit
// status, which git does not pass on.
func pushKeepingServeExit(t *testing.T, c *meshtest.Cluster, dev, work string, args ...string) (meshtest.Result, int) {
	t.Helper()
	d := c.Devices[dev]
	codeFile := filepath.Join(c.Dir, "serve-exit-"+dev)
	script := filepath.Join(c.Dir, "ssh-keeping-exit-"+dev)
	body := fmt.Sprintf(`#!/bin/sh
for last; do :; done
SSH_ORIGINAL_COMMAND=$last %q --config %q serve alice
code=$?
echo $code >%q
exit $code
`, meshtest.Binary(), d.Config, codeFile)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(codeFile)
	cmd := d.GitCmd("alice", work, append([]string{"push"}, args...)...)
	cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND="+script) // the last one wins
	r := runCmd(cmd)
	b, err := os.ReadFile(codeFile)
	if err != nil {
		t.Fatalf("serve left no exit status: %v; push stderr: %s", err, r.Stderr)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("serve exit status %q: %v", b, err)
	}
	return r, code
}

// adminHook installs an administrator's hook in dev's copy of team/app.
func adminHook(t *testing.T, c *meshtest.Cluster, dev, name, script string) string {
	t.Helper()
	path := filepath.Join(c.Devices[dev].Root, "team/app.git", "hooks", name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// startReplicate runs `gitmesh replicate` for dev until the test ends.
func startReplicate(t *testing.T, c *meshtest.Cluster, dev string) {
	t.Helper()
	cmd := exec.Command(meshtest.Binary(), "--config", c.Devices[dev].Config, "replicate", "--sweep", "1s")
	cmd.Env = meshtest.GitEnv(c.Dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if stderr.Len() > 0 {
			t.Logf("replicate on %s: %s", dev, stderr.String())
		}
	})
}

// logLines returns dev's JSON log lines from byte offset from on.
func logLines(t *testing.T, c *meshtest.Cluster, dev string, from int) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(c.Devices[dev].Log)
	if err != nil || len(b) < from {
		return nil
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b[from:]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func logSize(c *meshtest.Cluster, dev string) int {
	st, err := os.Stat(c.Devices[dev].Log)
	if err != nil {
		return 0
	}
	return int(st.Size())
}

// logSince is what dev's gitmesh log gained after its first from bytes.
func logSince(c *meshtest.Cluster, dev string, from int) string {
	b, err := os.ReadFile(c.Devices[dev].Log)
	if err != nil || from > len(b) {
		return fmt.Sprint(err)
	}
	return string(b[from:])
}

// relayPIDs are the running `gitmesh hook proc-receive` relays of this
// test binary's gitmesh working in a copy under dir.
func relayPIDs(t *testing.T, dir string) []int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		cwd, _ := os.Readlink(filepath.Join(d, "cwd"))
		if len(args) == 3 && args[0] == meshtest.Binary() && args[1] == "hook" && args[2] == "proc-receive" &&
			strings.HasPrefix(cwd, dir+string(filepath.Separator)) {
			pid, err := strconv.Atoi(filepath.Base(d))
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestQuorumPushSurvivesTheWriterVanishingRightAfterOK(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")

	pushedToA := c.Commit(work, "README", "acknowledged by a\n")
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	if r.Code != 0 || !acked(r.Stderr, "main") {
		t.Fatalf("push to a: exit %d, %s", r.Code, r.Stderr)
	}
	var stored int
	if i := strings.Index(r.Stderr, "gitmesh: stored on "); i < 0 {
		t.Fatalf("the push did not say where it is stored: %s", r.Stderr)
	} else if fmt.Sscanf(r.Stderr[i:], "gitmesh: stored on %d of 3 devices (a, ", &stored); stored < 2 {
		t.Fatalf("the push was acknowledged on %d of 3 devices, want a majority: %s", stored, r.Stderr)
	}
	// Right after "ok", a vanishes: its disk is gone and it is unreachable.
	aRoot := c.Devices["a"].Root
	if err := os.Rename(aRoot, aRoot+".gone"); err != nil {
		t.Fatal(err)
	}
	breakURL(t, c, "a")

	serves(t, c, pushedToA, "b", "c")
	next := c.Commit(work, "README", "pushed to b while a is gone\n")
	r = c.Devices["b"].Git("alice", work, "push", url, "main")
	if r.Code != 0 || !acked(r.Stderr, "main") {
		t.Fatalf("push to b while a is gone: exit %d, %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "stored on 2 of 3 devices (b, c) as version") || !strings.Contains(r.Stderr, "a follows") {
		t.Fatalf("push to b does not say it is stored on b and c and that a follows: %s", r.Stderr)
	}
	serves(t, c, next, "c", "b")
	if _, err := os.Stat(aRoot); !os.IsNotExist(err) {
		t.Fatalf("a's repo root came back while a was gone (stat: %v): a copy was created under a missing root", err)
	}
}

func TestQuorumTwoOfThreeGoneRefusesThePushThenRecovers(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "bravo", "charlie")
	work, before := pushed(t, c)
	c.WaitConverged("team/app")
	_, oldVersion := copies(t, c, "team/app")
	breakURL(t, c, "bravo")
	breakURL(t, c, "charlie")

	refused := c.Commit(work, "README", "only a could store this\n")
	r, code := pushKeepingServeExit(t, c, "a", work, meshtest.URL("team/app"), "main")
	t.Logf("push with two of three gone: exit %d, serve exit %d\n%s", r.Code, code, r.Stderr)
	if r.Code == 0 || acked(r.Stderr, "main") {
		t.Fatalf("the push was acknowledged with only a reachable: exit %d, %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "[remote rejected] main -> main") {
		t.Errorf("the client's report does not reject main: %s", r.Stderr)
	}
	named := false
	for _, l := range strings.Split(r.Stderr, "\n") {
		named = named || strings.HasPrefix(l, "gitmesh: ") && strings.Contains(l, "bravo") && strings.Contains(l, "charlie")
	}
	if !named {
		t.Errorf("no sentence from gitmesh names the unreachable bravo and charlie: %s", r.Stderr)
	}
	if code != 8 {
		t.Errorf("serve exited %d, want 8 (fewer devices than the write quorum)", code)
	}
	// Nothing moved anywhere and nothing was recorded.
	if out := c.Devices["a"].MustGit("alice", "", "ls-remote", meshtest.URL("team/app")); !strings.HasPrefix(out, before) || strings.Contains(out, refused) {
		t.Fatalf("a serves %q after the refused push, want only %s", out, before)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != before {
		t.Fatalf("a's visible main is %s, want %s", got, before)
	}
	if _, v := copies(t, c, "team/app"); v != oldVersion {
		t.Fatalf("the refused push recorded version %d (was %d)", v, oldVersion)
	}
	serves(t, c, before, "bravo", "charlie")
	writable(t, c, "team/app")

	// Both return: the next push works without an administrator.
	restoreURLs(t, c)
	next := c.Commit(work, "README", "all three are back\n")
	r = c.Devices["a"].Git("alice", work, "push", meshtest.URL("team/app"), "main")
	if r.Code != 0 || !acked(r.Stderr, "main") {
		t.Fatalf("push after both returned: exit %d, %s", r.Code, r.Stderr)
	}
	if v := c.WaitConverged("team/app"); v != oldVersion+1 {
		t.Errorf("after a refused push and an accepted one, the version is %d, want %d", v, oldVersion+1)
	}
	serves(t, c, next, "a", "bravo", "charlie")
}

func TestQuorumDevicesConvergeWithoutReads(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")

	// A healthy push: the detached converge shows it on b and c, with no
	// read there and no `gitmesh replicate`.
	first := c.Commit(work, "README", "first\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	v := c.WaitConverged("team/app")
	for _, d := range []string{"b", "c"} {
		if got := c.Rev(d, "team/app", "refs/heads/main"); got != first {
			t.Fatalf("%s recorded version %d but its copy shows main=%s, want %s", d, v, got, first)
		}
	}

	// c is busy (its read lock held, as by a long catch-up) during the
	// next push, so it does not store it; once c is free, converge alone
	// catches it up.
	var repoID, cID int32
	db := c.DB()
	if err := db.QueryRow(`SELECT id FROM repositories WHERE name = 'team/app'`).Scan(&repoID); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT id FROM devices WHERE name = 'c'`).Scan(&cID); err != nil {
		t.Fatal(err)
	}
	busy, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	key := lock.Read(repoID, cID)
	if _, err := busy.ExecContext(context.Background(), `SELECT pg_advisory_lock($1, $2)`, key.Class, key.Obj); err != nil {
		t.Fatal(err)
	}
	second := c.Commit(work, "README", "second\n")
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "stored on 2 of 3 devices (a, b)") || !strings.Contains(r.Stderr, "c follows") {
		t.Fatalf("push while c is busy: exit %d, %s", r.Code, r.Stderr)
	}
	state, newest := copies(t, c, "team/app")
	if state["c"].Version >= newest {
		t.Fatalf("c holds version %d of %d although it was busy during the push", state["c"].Version, newest)
	}
	if _, err := busy.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1, $2)`, key.Class, key.Obj); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged("team/app")
	if got := c.Rev("c", "team/app", "refs/heads/main"); got != second {
		t.Fatalf("c converged but shows main=%s, want %s", got, second)
	}
}

func TestQuorumReplicateCatchesUpALaggingDeviceWithoutReads(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	startReplicate(t, c, "b")

	// a cannot reach c during the push, and so neither can the converge
	// a starts after it: c lags.
	breakURL(t, c, "c")
	from := logSize(c, "a")
	lagged := c.Commit(work, "README", "c was out of reach\n")
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "stored on 2 of 3 devices (a, b)") || !strings.Contains(r.Stderr, "c follows") {
		t.Fatalf("push with c out of reach: exit %d, %s", r.Code, r.Stderr)
	}
	waitFor(t, "a's converge to give up on c", func() bool {
		for _, l := range logLines(t, c, "a", from) {
			if l["op"] == "converge" && l["peer"] == "c" && l["error"] != nil {
				return true
			}
		}
		return false
	})
	state, newest := copies(t, c, "team/app")
	if state["c"].Version >= newest {
		t.Fatalf("c holds version %d of %d right after a push it could not store", state["c"].Version, newest)
	}
	if got := c.Rev("c", "team/app", "refs/heads/main"); got == lagged {
		t.Fatal("c's copy shows the push it could not store")
	}

	// c's URL is back and c starts `gitmesh replicate`: it catches up on
	// its own, with no read and no push.
	restoreURLs(t, c)
	startReplicate(t, c, "c")
	c.WaitConverged("team/app")
	if got := c.Rev("c", "team/app", "refs/heads/main"); got != lagged {
		t.Fatalf("after replicate c shows main=%s, want %s", got, lagged)
	}

	// With replicate running, a push that c cannot store (so that neither
	// the push nor a's converge can bring it there) reaches c anyway:
	// replicate on c follows the new version.
	breakURL(t, c, "c")
	followed := c.Commit(work, "README", "followed by replicate\n")
	r = c.Devices["a"].Git("alice", work, "push", url, "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "c follows") {
		t.Fatalf("second push with c out of reach: exit %d, %s", r.Code, r.Stderr)
	}
	c.WaitConverged("team/app")
	if got := c.Rev("c", "team/app", "refs/heads/main"); got != followed {
		t.Fatalf("replicate on c recorded the newest version but c shows main=%s, want %s", got, followed)
	}
}

func TestQuorumNoexecTMPDIRPushIsRecorded(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, before := pushed(t, c)
	c.WaitConverged("team/app")
	_, oldVersion := copies(t, c, "team/app")

	tmp := filepath.Join(c.Dir, "noexec-tmp")
	if err := os.Mkdir(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "noexec", "tmpfs", tmp).CombinedOutput(); err != nil {
		t.Fatalf("mount a noexec tmpfs (tests run as root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", tmp).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", tmp, err, out)
			exec.Command("umount", "-l", tmp).Run()
		}
	})
	probe := filepath.Join(tmp, "probe")
	if err := os.WriteFile(probe, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(probe).Run(); err == nil {
		t.Fatalf("%s is not noexec: a script there ran", tmp)
	}
	seen := filepath.Join(c.Dir, "tmpdir-seen-by-hook")
	adminHook(t, c, "a", "pre-receive", fmt.Sprintf("cat >/dev/null\nprintf %%s \"$TMPDIR\" >%q\n", seen))

	next := c.Commit(work, "README", "pushed with a noexec TMPDIR\n")
	push := c.Devices["a"].GitCmd("alice", work, "push", url, "main")
	push.Env = append(push.Env, "TMPDIR="+tmp)
	r := runCmd(push)
	t.Logf("push with TMPDIR on noexec: exit %d\n%s", r.Code, r.Stderr)
	// Never "ok" unrecorded; a refusal must leave everything as it was.
	_, v := copies(t, c, "team/app")
	if r.Code == 0 && v != oldVersion+1 {
		t.Fatalf("the client got ok but the version is %d, want %d: an unrecorded push was acknowledged", v, oldVersion+1)
	}
	if r.Code != 0 {
		if v != oldVersion {
			t.Errorf("a refused push recorded version %d (was %d)", v, oldVersion)
		}
		serves(t, c, before, "a", "b", "c")
		writable(t, c, "team/app")
		// The hook directory lives under the repo root, so the push must work.
		dumpLogs(t, c)
		t.Fatalf("push with TMPDIR on noexec failed (closed, nothing moved): exit %d, %s", r.Code, r.Stderr)
	}
	if !acked(r.Stderr, "main") || strings.Contains(r.Stderr, "ignored") {
		t.Fatalf("push with TMPDIR on noexec: exit %d, %s", r.Code, r.Stderr)
	}
	if got, _ := os.ReadFile(seen); string(got) != tmp {
		t.Fatalf("receive-pack's hooks ran with TMPDIR=%q, want %q: the reproduction did not reproduce", got, tmp)
	}
	if got := c.WaitConverged("team/app"); got != oldVersion+1 {
		t.Fatalf("converged at version %d, want %d", got, oldVersion+1)
	}
	serves(t, c, next, "a", "b", "c")
}

func TestQuorumKilledRelayIsNeverAcknowledged(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, before := pushed(t, c)
	c.WaitConverged("team/app")
	_, oldVersion := copies(t, c, "team/app")
	// serve runs the repository's update hook while it validates the push:
	// this one holds serve there.
	held := holdHook(t, c, "a", "team/app", "update")
	hook := filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update")

	unacked := c.Commit(work, "README", "its relay was killed\n")
	push := c.Devices["a"].GitCmd("alice", work, "push", url, "main")
	var stderr bytes.Buffer
	push.Stderr = &stderr
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "serve to run the update hook", held.reached)
	relays := relayPIDs(t, c.Dir)
	if len(relays) != 1 {
		t.Fatalf("want the one proc-receive relay of the push, found %v", relays)
	}
	if err := syscall.Kill(relays[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	held.let()
	err := finish(t, push)
	t.Logf("push whose relay was killed: %v\n%s", err, stderr.String())
	if err == nil || acked(stderr.String(), "main") {
		t.Fatalf("the client saw ok although the relay died before serve answered: %v, %s", err, stderr.String())
	}
	os.Remove(hook)

	// Either nothing moved and the repository is writable, or the push was
	// recorded (unacknowledged, which is allowed) and every device gets it.
	writable(t, c, "team/app")
	_, v := copies(t, c, "team/app")
	want := before
	switch v {
	case oldVersion:
		t.Log("outcome: the push was not recorded")
		serves(t, c, before, "a", "b", "c")
	case oldVersion + 1:
		t.Log("outcome: the push was recorded although the client was not told")
		c.WaitConverged("team/app")
		serves(t, c, unacked, "a", "b", "c")
		want = unacked
	default:
		t.Fatalf("after one killed push the version is %d (was %d)", v, oldVersion)
	}
	var revs []string
	for _, d := range []string{"a", "b", "c"} {
		revs = append(revs, c.Rev(d, "team/app", "refs/heads/main"))
	}
	if revs[0] != want || revs[1] != want || revs[2] != want {
		t.Fatalf("main on a, b, c is %v, want %s everywhere", revs, want)
	}
	if r := c.Admin("verify", "team/app"); r.Code != 0 {
		t.Fatalf("verify on agreeing copies: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	next := c.Commit(work, "README", "after the killed relay\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	c.WaitConverged("team/app")
	serves(t, c, next, "a", "b", "c")
}

func TestQuorumKilledServeHealsAndLosesNothing(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, base := pushed(t, c)
	c.WaitConverged("team/app")
	held := holdHook(t, c, "a", "team/app", "update")

	c.Commit(work, "README", "serve was killed\n")
	killWriter(t, c, "a", work, held.reached, held.let)
	os.Remove(filepath.Join(c.Devices["a"].Root, "team/app.git", "hooks", "update"))

	waitFor(t, "status to show the repository frozen", func() bool {
		return statusOf(t, c, "team/app")["a"].Frozen
	})
	if st := c.MustAdmin("status", "team/app"); !strings.Contains(st, "FROZEN") {
		t.Fatalf("status does not say FROZEN:\n%s", st)
	}
	// The reads meet the dead writer's mark: a repairs it (the killed
	// push never moved a visible ref), with no administrator.
	serves(t, c, base, "a", "b", "c")
	writable(t, c, "team/app")
	next := c.Commit(work, "README", "after the repair\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	c.WaitConverged("team/app")
	serves(t, c, next, "a", "b", "c")
	if r := c.Admin("verify", "team/app"); r.Code != 0 {
		t.Fatalf("verify after the repair and push: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestQuorumPeerThatCannotStoreNeverCounts(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")

	// b's copy is replaced by a file: b refuses every staging push.
	bCopy := filepath.Join(c.Devices["b"].Root, "team/app.git")
	if err := os.RemoveAll(bCopy); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bCopy, []byte("not a repository\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	next := c.Commit(work, "README", "b cannot store this\n")
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	if r.Code != 0 || !acked(r.Stderr, "main") {
		t.Fatalf("push with a and c able to store it: exit %d, %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "stored on 2 of 3 devices (a, c)") || !strings.Contains(r.Stderr, "b follows") {
		t.Fatalf("the push counted b: %s", r.Stderr)
	}
	// b's copy is gone, so b no longer holds any version (it is forgotten,
	// not listed) or lags.
	st := statusOf(t, c, "team/app")
	if b, listed := st["b"]; listed && b.Lag < 1 || st["a"].Lag != 0 || st["c"].Lag != 0 {
		t.Fatalf("status lags a %d, b %d, c %d; want b behind or gone", st["a"].Lag, st["b"].Lag, st["c"].Lag)
	}
	if st["a"].HoldNewest != 2 || st["a"].Quorum != 2 || st["a"].BelowQuorum {
		t.Fatalf("status: %d hold the newest, quorum %d, below %v; want 2, 2, false", st["a"].HoldNewest, st["a"].Quorum, st["a"].BelowQuorum)
	}

	// b's disk is fixed; the next push stores on it again and every
	// device converges.
	if err := os.Remove(bCopy); err != nil {
		t.Fatal(err)
	}
	latest := c.Commit(work, "README", "b is back\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	c.WaitConverged("team/app")
	serves(t, c, latest, "a", "b", "c")
	if got := c.Rev("b", "team/app", "refs/heads/main"); got != latest {
		t.Fatalf("b shows main=%s, want %s (after %s)", got, latest, next)
	}
}

func TestQuorumRepositoryHooksKeepWorking(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, before := pushed(t, c)
	c.WaitConverged("team/app")
	_, v0 := copies(t, c, "team/app")

	// pre-receive refuses: nothing moves, nothing is recorded.
	pre := adminHook(t, c, "a", "pre-receive", "cat >/dev/null\necho 'pre-receive: closed for the night' >&2\nexit 1\n")
	refused := c.Commit(work, "README", "refused by pre-receive\n")
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	if r.Code == 0 || acked(r.Stderr, "main") || !strings.Contains(r.Stderr, "closed for the night") ||
		!strings.Contains(r.Stderr, "pre-receive hook declined") {
		t.Fatalf("push refused by pre-receive: exit %d, %s", r.Code, r.Stderr)
	}
	if _, v := copies(t, c, "team/app"); v != v0 {
		t.Fatalf("a push refused by pre-receive recorded version %d (was %d)", v, v0)
	}
	serves(t, c, before, "a", "b", "c")
	writable(t, c, "team/app")
	os.Remove(pre)

	// update refuses one ref; post-receive and reference-transaction see
	// the other.
	adminHook(t, c, "a", "update", "case \"$1\" in refs/heads/blocked) echo \"update: $1 is closed\" >&2; exit 1;; esac\n")
	postLog := filepath.Join(c.Dir, "post-receive.log")
	adminHook(t, c, "a", "post-receive", fmt.Sprintf("cat >>%q\n", postLog))
	txLog := filepath.Join(c.Dir, "reference-transaction.log")
	adminHook(t, c, "a", "reference-transaction", fmt.Sprintf("{ echo \"state $1\"; cat; } >>%q\n", txLog))

	r = c.Devices["a"].Git("alice", work, "push", url, "main", "HEAD:refs/heads/blocked")
	t.Logf("push of main and blocked: exit %d\n%s", r.Code, r.Stderr)
	if !acked(r.Stderr, "main") {
		t.Fatalf("main was not accepted: %s", r.Stderr)
	}
	if acked(r.Stderr, "blocked") || !strings.Contains(r.Stderr, "blocked (hook declined)") || !strings.Contains(r.Stderr, "refs/heads/blocked is closed") {
		t.Fatalf("the update hook did not refuse blocked with 'hook declined': %s", r.Stderr)
	}
	if r.Code == 0 {
		t.Errorf("git exited 0 although one ref was refused")
	}
	if v := c.WaitConverged("team/app"); v != v0+1 {
		t.Errorf("one push is version %d, want %d", v, v0+1)
	}
	serves(t, c, refused, "a", "b", "c")
	for _, d := range []string{"a", "b", "c"} {
		if got := c.Rev(d, "team/app", "refs/heads/blocked"); got != "" {
			t.Fatalf("%s has the refused ref blocked=%s", d, got)
		}
	}
	post, _ := os.ReadFile(postLog)
	if want := before + " " + refused + " refs/heads/main"; !strings.Contains(string(post), want) || strings.Contains(string(post), "blocked") {
		t.Fatalf("post-receive got %q, want the line %q and nothing about blocked", post, want)
	}
	tx, _ := os.ReadFile(txLog)
	if want := "state committed\n" + before + " " + refused + " refs/heads/main"; !strings.Contains(string(tx), want) {
		t.Fatalf("reference-transaction on a got %q, want %q", tx, want)
	}
	if strings.Contains(string(tx), "blocked") || strings.Contains(string(tx), "refs/gitmesh/") {
		t.Fatalf("reference-transaction on a saw a refused or internal ref: %q", tx)
	}
}

func TestQuorumBadRefNameIsRefusedAndNothingMoves(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, before := pushed(t, c)
	c.WaitConverged("team/app")
	_, v0 := copies(t, c, "team/app")

	c.Commit(work, "README", "on a badly named branch\n")
	r := c.Devices["a"].Git("alice", work, "push", url, "HEAD:refs/heads/bad\xff")
	t.Logf("push of a ref that is not UTF-8: exit %d\n%s", r.Code, r.Stderr)
	if r.Code == 0 || acked(r.Stderr, "bad\xff") {
		t.Fatalf("a ref name that is not UTF-8 was accepted: exit %d, %s", r.Code, r.Stderr)
	}
	// One sentence, about the name: git's rejection line for that ref
	// gives the reason, and anything gitmesh adds is about the name too.
	var why []string
	for _, l := range strings.Split(r.Stderr, "\n") {
		if strings.Contains(l, "[remote rejected]") {
			why = append(why, l)
		}
		if strings.HasPrefix(l, "gitmesh: ") && !strings.Contains(strings.ToLower(l), "name") {
			t.Errorf("gitmesh said more than why the name is refused: %q", l)
		}
	}
	if len(why) != 1 || !strings.Contains(why[0], "bad\xff (") || !strings.Contains(strings.ToLower(why[0]), "name") {
		t.Fatalf("want one rejection of the bad ref saying what is wrong with its name, got %q in %s", why, r.Stderr)
	}
	if _, v := copies(t, c, "team/app"); v != v0 {
		t.Fatalf("the refused ref recorded version %d (was %d)", v, v0)
	}
	if out := c.Devices["a"].MustGit("alice", "", "ls-remote", url); out != before+"\tHEAD\n"+before+"\trefs/heads/main\n" {
		t.Fatalf("a serves %q after the refused ref", out)
	}
	writable(t, c, "team/app")

	next := c.Commit(work, "README", "a normal push\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	c.WaitConverged("team/app")
	serves(t, c, next, "a", "b", "c")
}

// A device that lost its disk never serves, nor builds a push on, an empty
// copy in place of its recorded version, even when its first catch-up
// fails: the acknowledged commit survives everywhere.
func TestQuorumWipedDeviceNeverServesAnEmptyCopy(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	_, acked := pushed(t, c)
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	if err := os.RemoveAll(filepath.Join(c.Devices["b"].Root, "team")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DB().Exec(`UPDATE devices SET url = '/nonexistent/' || name WHERE name IN ('a', 'c')`); err != nil {
		t.Fatal(err)
	}
	if r := c.Devices["b"].Git("alice", "", "ls-remote", url); r.Code == 0 {
		t.Fatalf("b served its wiped copy while no peer was reachable: %q", r.Stdout)
	}
	if r := c.Devices["b"].Git("alice", "", "ls-remote", url); r.Code == 0 {
		t.Fatalf("b served a copy it failed to fill, on the second read: %q", r.Stdout)
	}
	restoreURLs(t, c)
	if out := c.Devices["b"].MustGit("alice", "", "ls-remote", url); !strings.Contains(out, acked) {
		t.Fatalf("b serves %q without the acknowledged %s", out, acked)
	}
	// b loses its disk again; a push to b must not erase main everywhere.
	if err := os.RemoveAll(filepath.Join(c.Devices["b"].Root, "team")); err != nil {
		t.Fatal(err)
	}
	work := c.Work("other")
	c.Commit(work, "f", "x\n")
	c.Devices["b"].MustGit("alice", work, "push", "-q", url, "HEAD:refs/heads/other")
	c.WaitConverged("team/app")
	for _, d := range []string{"a", "b", "c"} {
		if out := c.Devices[d].MustGit("alice", "", "ls-remote", url); !strings.Contains(out, acked+"\trefs/heads/main") {
			t.Fatalf("%s serves %q: the acknowledged main %s is gone", d, out, acked)
		}
	}
	if r := c.Admin("verify", "team/app"); r.Code != 0 {
		t.Fatalf("verify: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// Storing a push on a peer is not a push to that peer: the peer's own
// hooks do not run, and its gitmesh namespace is the only one written.
func TestQuorumStagingRunsNoHooksOnPeers(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	c.WaitConverged("team/app")
	meshtest.WaitDetached(t)
	marker := filepath.Join(c.Dir, "b-hook-ran")
	for _, name := range []string{"pre-receive", "update", "post-receive", "post-update", "reference-transaction"} {
		hook := filepath.Join(c.Devices["b"].Root, "team/app.git", "hooks", name)
		if err := os.WriteFile(hook, []byte("#!/bin/sh\ncat >/dev/null\necho "+name+" >> "+marker+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	next := c.Commit(work, "README", "stored on b\n")
	r := c.Devices["a"].Git("alice", work, "push", url, "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "(a, b, c)") && !strings.Contains(r.Stderr, "(a, b)") {
		t.Fatalf("push: exit %d, %s", r.Code, r.Stderr)
	}
	if b, err := os.ReadFile(marker); err == nil {
		t.Fatalf("b's own hooks ran when a stored the push there: %s", b)
	}
	if got := c.Rev("b", "team/app", "refs/gitmesh/stage/heads/main"); got != next {
		t.Fatalf("b's staged main is %q, want %s", got, next)
	}
}
