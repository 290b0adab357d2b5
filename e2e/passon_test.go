package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// placeTwo creates repo with two copies among c's devices, lets the
// writers write to it and returns its holders and the device that holds
// no copy (the first one by name).
func placeTwo(t *testing.T, c *meshtest.Cluster, repo string, writers ...string) (holders []string, outsider string) {
	t.Helper()
	c.MustAdmin("repo", "create", repo, "--copies", "2")
	for _, u := range writers {
		c.User(u)
		c.MustAdmin("grant", u, repo, "write")
	}
	rows, err := c.DB().Query(`SELECT d.name FROM holders h JOIN devices d ON d.id = h.device_id
		JOIN repositories r ON r.id = h.repository_id WHERE r.name = $1 ORDER BY d.name`, repo)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		holders = append(holders, n)
	}
	if len(holders) != 2 {
		t.Fatalf("repo create --copies 2 placed %s on %v", repo, holders)
	}
	for _, d := range c.Devices {
		if !slices.Contains(holders, d.Name) && (outsider == "" || d.Name < outsider) {
			outsider = d.Name
		}
	}
	return holders, outsider
}

// noCopy fails the test when device d's repo root holds anything of
// repo: a copy, a copy being built, or one set aside.
func noCopy(t *testing.T, d *meshtest.Device, repo string) {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(d.Root, repo+".git*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) > 0 {
		t.Fatalf("device %s holds no copy of %s, yet its repo root has %v", d.Name, repo, matches)
	}
}

// Any device answers: clone, fetch, ls-remote, archive and push through a
// device that holds no copy are passed on to a holder; the push is
// acknowledged as a direct one, lands on the holders, and the device
// that passed it on never holds a copy.
func TestAnyDeviceAnswers(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	holders, out := placeTwo(t, c, "team/app", "alice")
	o := c.Devices[out]
	url := meshtest.URL("team/app")

	work := c.Work("alice")
	first := c.Commit(work, "README", "hello\n")
	r := o.Git("alice", work, "push", url, "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "stored on 2 of 2 devices") {
		t.Fatalf("push through %s (no copy): exit %d, stderr %q; want it acknowledged with its stored-on line", out, r.Code, r.Stderr)
	}
	for _, h := range holders {
		if ls := c.Devices[h].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(ls, first) {
			t.Fatalf("holder %s serves main %q after the push through %s, want %s", h, ls, out, first)
		}
	}

	clone := filepath.Join(c.Dir, "clone")
	o.MustGit("alice", "", "clone", "-q", url, clone)
	if got := strings.TrimSpace(c.LocalGit(clone, "rev-parse", "HEAD")); got != first {
		t.Fatalf("clone through %s has %s, want %s", out, got, first)
	}
	second := c.Commit(clone, "NEWS", "news\n")
	c.Devices[holders[0]].MustGit("alice", clone, "push", "-q", url, "main")
	o.MustGit("alice", work, "fetch", "-q", url, "main")
	if got := strings.TrimSpace(c.LocalGit(work, "rev-parse", "FETCH_HEAD")); got != second {
		t.Fatalf("fetch through %s got %s, want the newest push %s", out, got, second)
	}
	if ls := o.MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(ls, second) {
		t.Fatalf("ls-remote through %s: %q, want main at %s", out, ls, second)
	}
	tar := o.MustGit("alice", work, "archive", "--remote="+url, "main", "NEWS")
	if !strings.Contains(tar, "news\n") {
		t.Fatalf("archive through %s lacks NEWS: %.200q", out, tar)
	}

	// Protocol v2 travels with the request: only a v2 client gets the
	// filter a partial clone needs.
	partial := filepath.Join(c.Dir, "partial")
	r = o.Git("alice", "", "-c", "protocol.version=2", "clone", "-q", "--no-checkout", "--filter=blob:none", url, partial)
	if r.Code != 0 || strings.Contains(r.Stderr, "filtering not recognized") {
		t.Fatalf("partial clone (protocol v2) through %s: exit %d: %s", out, r.Code, r.Stderr)
	}
	if missing := c.LocalGit(partial, "rev-list", "--objects", "--all", "--missing=print"); !strings.Contains("\n"+missing, "\n?") {
		t.Fatalf("the partial clone through %s holds every blob: protocol v2 did not reach the holder", out)
	}

	// Every answer came from a holder: nothing of the repository on out.
	noCopy(t, o, "team/app")
	var rows int
	if err := c.DB().QueryRow(`SELECT count(*) FROM working_copy_versions v JOIN devices d ON d.id = v.device_id WHERE d.name = $1`, out).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("device %s has %d recorded versions, want none", out, rows)
	}

	// The access check happens on the device the user reached, before any
	// hop: a user without access hears "not found" there exactly as for a
	// repository that does not exist, and a reader's push is refused there
	// as anywhere.
	c.User("mallory")
	c.User("rita")
	c.MustAdmin("grant", "rita", "team/app", "read")
	hops := strings.Count(readFile(t, o.Log), `"passed on"`)
	wantDenied(t, "mallory reads team/app through "+out, fetchAs(o, "mallory", "team/app"))
	wantDenied(t, "mallory pushes team/app through "+out, pushAs(o, "mallory", "team/app"))
	wantDenied(t, "alice reads team/none through "+out, fetchAs(o, "alice", "team/none"))
	if r := pushAs(o, "rita", "team/app"); r.Code != 3 || !strings.Contains(r.Stderr, "you may read team/app but not push to it") {
		t.Errorf("rita (reader) pushes through %s: exit %d, stderr %q; want the read-only refusal", out, r.Code, r.Stderr)
	}
	if n := strings.Count(readFile(t, o.Log), `"passed on"`); n != hops {
		t.Errorf("%d refused requests were passed on from %s", n-hops, out)
	}
	noCopy(t, o, "team/app")
}

// With every holder down, a request through a device without a copy gets
// one sentence and exit 6, in the protocol too; a request passed on to a
// device that no longer holds the repository is never passed on again.
func TestPassOnHoldersDown(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	holders, out := placeTwo(t, c, "team/app", "alice")
	o := c.Devices[out]
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	c.Devices[holders[0]].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")

	// A device whose root is away is down, for a local-path cluster. With
	// one holder down, every request is served by the other (the holder
	// is chosen at random: six tries miss the down one 1 time in 64).
	for i, h := range holders {
		d := c.Devices[h]
		if err := os.Rename(d.Root, d.Root+".away"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Rename(d.Root+".away", d.Root) })
		if i > 0 {
			break
		}
		for try := 0; try < 6; try++ {
			if r := o.Git("alice", "", "ls-remote", meshtest.URL("team/app")); r.Code != 0 {
				t.Fatalf("ls-remote through %s with holder %s down, try %d: exit %d: %s", out, h, try, r.Code, r.Stderr)
			}
		}
	}
	want := "gitmesh: no device holding team/app could be reached from device " + out + "; try again later\n"
	r := fetchAs(o, "alice", "team/app")
	if r.Code != 6 || r.Stderr != want || r.Stdout != errPacket(strings.TrimSuffix(want, "\n")) {
		t.Errorf("read through %s with every holder down: exit %d, stdout %q, stderr %q; want exit 6 and %q", out, r.Code, r.Stdout, r.Stderr, want)
	}
	r = o.Git("alice", work, "push", meshtest.URL("team/app"), "main")
	if r.Code == 0 || !strings.Contains(r.Stderr, strings.TrimSuffix(want, "\n")) {
		t.Errorf("push through %s with every holder down: exit %d, stderr %q; want %q", out, r.Code, r.Stderr, want)
	}
	noCopy(t, o, "team/app")

	// The holder's side of a hop, reached on a device that holds no copy
	// (moved meanwhile): refused, not passed on.
	r = o.Run([]string{"SSH_ORIGINAL_COMMAND=gitmesh-as alice - git-upload-pack 'team/app.git'"}, "serve", "--cluster")
	moved := "gitmesh: device " + out + " no longer holds team/app (its copies moved while your request was passed on); try again\n"
	if r.Code != 6 || r.Stderr != moved {
		t.Errorf("a passed-on request reaching %s (no copy): exit %d, stderr %q; want exit 6 and %q", out, r.Code, r.Stderr, moved)
	}
	noCopy(t, o, "team/app")
}

// Through real sshd: a clone and a push reaching a device without a copy
// are passed on over the cluster key's shared connection, acknowledged
// as direct ones, and nothing the user reads names a holder's address or
// a server path, not even with every holder down.
func TestSSHAnyDeviceAnswers(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a", "b", "c")
	holders, out := placeTwo(t, c.Cluster, "team/app", "alice")
	c.SSHUser("alice")
	o := c.Hosts[out]
	leaks := func(what, stderr string) {
		t.Helper()
		for _, h := range holders {
			if strings.Contains(stderr, strconv.Itoa(c.Hosts[h].Port)) {
				t.Errorf("%s: stderr names holder %s's port: %q", what, h, stderr)
			}
		}
		for _, l := range strings.Split(stderr, "\n") {
			if (strings.HasPrefix(l, "gitmesh:") || strings.HasPrefix(l, "remote:") || strings.Contains(l, "remote error")) &&
				(strings.Contains(l, "127.0.0.1") || strings.Contains(l, c.Dir) || strings.Contains(l, "ssh:")) {
				t.Errorf("%s: a line from the server names an address or path: %q", what, l)
			}
		}
	}

	work := c.Work("alice")
	first := c.Commit(work, "README", "hello\n")
	r := o.Git("alice", work, "push", o.URL("team/app"), "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "stored on 2 of 2 devices") {
		t.Fatalf("push through %s (no copy): exit %d, stderr %q; want it acknowledged with its stored-on line", out, r.Code, r.Stderr)
	}
	leaks("push", r.Stderr)
	for _, h := range holders {
		if ls := c.Hosts[h].MustGit("alice", "", "ls-remote", c.Hosts[h].URL("team/app"), "refs/heads/main"); !strings.HasPrefix(ls, first) {
			t.Fatalf("holder %s serves main %q after the push through %s, want %s", h, ls, out, first)
		}
	}
	clone := filepath.Join(c.Dir, "clone")
	// A partial clone: the holder offers the filter only to a client
	// speaking protocol v2, so GIT_PROTOCOL travelled with the request.
	r = o.Git("alice", "", "-c", "protocol.version=2", "clone", "--filter=blob:none", o.URL("team/app"), clone)
	if r.Code != 0 || strings.Contains(r.Stderr, "filtering not recognized") {
		t.Fatalf("partial clone (protocol v2) through %s: exit %d: %s", out, r.Code, r.Stderr)
	}
	leaks("clone", r.Stderr)
	if got := strings.TrimSpace(c.LocalGit(clone, "rev-parse", "HEAD")); got != first {
		t.Fatalf("clone through %s has %s, want %s", out, got, first)
	}
	if cfg := c.LocalGit(clone, "config", "--get", "remote.origin.partialclonefilter"); strings.TrimSpace(cfg) != "blob:none" {
		t.Fatalf("the clone through %s is not partial: %q", out, cfg)
	}
	noCopy(t, o.Device, "team/app")

	// One holder down: the other answers, whichever is tried first.
	c.Hosts[holders[0]].StopSSHD()
	for try := 0; try < 4; try++ {
		r := o.Git("alice", "", "ls-remote", o.URL("team/app"))
		if r.Code != 0 {
			t.Fatalf("ls-remote through %s with holder %s down, try %d: exit %d: %s", out, holders[0], try, r.Code, r.Stderr)
		}
		leaks("one holder down", r.Stderr)
	}
	c.Hosts[holders[1]].StopSSHD()
	want := "no device holding team/app could be reached from device " + out + "; try again later"
	r = o.Git("alice", "", "ls-remote", o.URL("team/app"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "gitmesh: "+want+"\n") || !strings.Contains(r.Stderr, "remote error: gitmesh: "+want) {
		t.Errorf("ls-remote through %s with every holder down: exit %d, stderr %q; want %q, on stderr and in the protocol", out, r.Code, r.Stderr, want)
	}
	leaks("holders down", r.Stderr)
	noCopy(t, o.Device, "team/app")

	// A cluster key that is not there: one sentence, not ssh's warning
	// naming the key's path.
	c.SetPeerSettings(out, filepath.Join(c.Dir, "no-such-key"), c.KnownHosts)
	r = o.Git("alice", "", "ls-remote", o.URL("team/app"))
	want = "gitmesh: device " + out + " cannot pass requests on to the devices holding team/app: its cluster key or known_hosts setting is wrong; tell an administrator"
	if r.Code == 0 || !strings.Contains(r.Stderr, want) || strings.Contains(r.Stderr, "no-such-key") {
		t.Errorf("ls-remote through %s with its cluster key missing: exit %d, stderr %q; want %q and no path", out, r.Code, r.Stderr, want)
	}
}

// Over smart HTTP too, a device holding no copy passes the request on:
// the holder's HTTP door answers it whole (advertisement, fetch, push with
// its stored-on line in git's side band), and no copy is made.
func TestHTTPAnyDeviceAnswers(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	holders, out := placeTwo(t, c, "team/app", "alice")
	o := c.Devices[out]
	w := o.StartWeb(t, meshtest.WebOptions{})
	url := w.URL("git", "alice", c.Token("alice"), "team/app")

	work := c.Work("alice")
	first := c.Commit(work, "README", "hello\n")
	r := w.Git(work, nil, "push", url, "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "remote: gitmesh: stored on 2 of 2 devices") {
		t.Fatalf("push over HTTP through %s (no copy): exit %d, stderr %q; want it acknowledged with its stored-on line", out, r.Code, r.Stderr)
	}
	for _, v := range []string{"0", "2"} {
		dir := filepath.Join(c.Dir, "clone-v"+v)
		if r := w.Git("", nil, "-c", "protocol.version="+v, "clone", "-q", url, dir); r.Code != 0 {
			t.Fatalf("clone over HTTP (protocol v%s) through %s: exit %d: %s", v, out, r.Code, r.Stderr)
		}
		if got := strings.TrimSpace(c.LocalGit(dir, "rev-parse", "HEAD")); got != first {
			t.Fatalf("clone over HTTP (protocol v%s) through %s has %s, want %s", v, out, got, first)
		}
	}
	c.User("mallory")
	r = w.Git("", nil, "ls-remote", w.URL("git", "mallory", c.Token("mallory"), "team/app"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "repository not found, or you do not have access to it") {
		t.Errorf("mallory over HTTP through %s: exit %d, stderr %q; want not found", out, r.Code, r.Stderr)
	}
	noCopy(t, o, "team/app")

	for _, h := range holders {
		d := c.Devices[h]
		if err := os.Rename(d.Root, d.Root+".away"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Rename(d.Root+".away", d.Root) })
	}
	want := "no device holding team/app could be reached from device " + out + "; try again later"
	r = w.Git("", nil, "ls-remote", url)
	if r.Code == 0 || !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "503") {
		t.Errorf("ls-remote over HTTP through %s with every holder down: exit %d, stderr %q; want a 503 saying %q", out, r.Code, r.Stderr, want)
	}
	c.Commit(work, "README", "again\n")
	r = w.Git(work, nil, "push", url, "main")
	if r.Code == 0 || !strings.Contains(r.Stderr, want) {
		t.Errorf("push over HTTP through %s with every holder down: exit %d, stderr %q; want %q", out, r.Code, r.Stderr, want)
	}
	noCopy(t, o, "team/app")
}

// A holder that dies while it serves a push passed on to it: the client
// sees the push fail with one sentence from the device it reached, and
// nothing was acknowledged or moved.
func TestPassOnHolderDiesMidPush(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	holders, out := placeTwo(t, c, "team/app", "alice")
	o := c.Devices[out]
	url := meshtest.URL("team/app")
	work := c.Work("alice")
	first := c.Commit(work, "README", "hello\n")
	c.Devices[holders[0]].MustGit("alice", work, "push", "-q", url, "main")
	c.Devices[holders[1]].MustGit("alice", "", "ls-remote", url) // its copy is made

	// Each holder's pre-receive says it started, then waits (until the
	// mark goes, at most a minute): the hop is
	// then mid-stream (the refs advertised, the pack sent).
	mark := filepath.Join(c.Dir, "pre-receive-started")
	for _, h := range holders {
		hook := filepath.Join(c.Devices[h].Root, "team/app.git", "hooks", "pre-receive")
		script := "#!/bin/sh\ncat >/dev/null\ntouch '" + mark + "'\nfor i in $(seq 600); do [ -e '" + mark + "' ] || exit 1; sleep 0.1; done\n"
		if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.Commit(work, "README", "lost\n")
	push := o.GitCmd("alice", work, "push", url, "main")
	var stderr strings.Builder
	push.Stderr = &stderr
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			push.Process.Kill()
			t.Fatalf("the holder's pre-receive never ran: %s", stderr.String())
		}
	}
	killed := 0
	for _, pid := range meshtest.Processes("serve") {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(b), "\x00--cluster\x00") {
			syscall.Kill(pid, syscall.SIGKILL)
			killed++
		}
	}
	if killed != 1 {
		t.Fatalf("found %d holders serving the push passed on, want 1", killed)
	}
	os.Remove(mark) // the hook ends
	err := push.Wait()
	want := "gitmesh: device " + out + " lost its connection to the device holding team/app before your request finished"
	if err == nil || !strings.Contains(stderr.String(), want) {
		t.Errorf("push through %s whose holder died: %v, stderr %q; want it to fail saying %q", out, err, stderr.String(), want)
	}
	if strings.Contains(stderr.String(), "stored on") {
		t.Errorf("a push whose holder died was acknowledged: %q", stderr.String())
	}
	for _, h := range holders {
		os.Remove(filepath.Join(c.Devices[h].Root, "team/app.git", "hooks", "pre-receive"))
		if ls := c.Devices[h].MustGit("alice", "", "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(ls, first) {
			t.Errorf("holder %s serves main %q after the push that died, want %s unchanged", h, ls, first)
		}
	}
	noCopy(t, o, "team/app")
}

// The user's identity travels with a request passed on, and the holder
// applies that user's limits: with max_user_sessions = 1, a push through a
// device without a copy is refused (exit 5) while the same user's other
// push is under way on a holder.
func TestPassOnKeepsUserLimits(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	holders, out := placeTwo(t, c, "team/app", "alice")
	for _, d := range c.Devices {
		d.WriteConfig("max_user_sessions = 1")
	}
	url := meshtest.URL("team/app")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	h := c.Devices[holders[0]]
	h.MustGit("alice", work, "push", "-q", url, "main")
	c.Devices[holders[1]].MustGit("alice", "", "ls-remote", url) // its copy is made

	mark := filepath.Join(c.Dir, "pre-receive-started")
	for _, name := range holders {
		hook := filepath.Join(c.Devices[name].Root, "team/app.git", "hooks", "pre-receive")
		script := "#!/bin/sh\ncat >/dev/null\ntouch '" + mark + "'\nfor i in $(seq 600); do [ -e '" + mark + "' ] || exit 0; sleep 0.1; done\n"
		if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.LocalGit(work, "checkout", "-q", "-b", "slow")
	c.Commit(work, "SLOW", "slow\n")
	slow := h.GitCmd("alice", work, "push", url, "slow")
	var slowErr strings.Builder
	slow.Stderr = &slowErr
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			slow.Process.Kill()
			t.Fatalf("the slow push's pre-receive never ran: %s", slowErr.String())
		}
	}
	r := pushAs(c.Devices[out], "alice", "team/app")
	if r.Code != 5 || !strings.Contains(r.Stderr, "you already have 1 gitmesh session running that wait or push (max_user_sessions)") {
		t.Errorf("alice's second push, through %s: exit %d, stderr %q; want the holder's max_user_sessions refusal, exit 5", out, r.Code, r.Stderr)
	}
	refusedThere := false // by a holder, serving the request passed on as alice
	for _, l := range strings.Split(readFile(t, c.Devices[out].Log), "\n") {
		if strings.Contains(l, `"refused: session limit"`) && strings.Contains(l, `"passed_on":true`) && strings.Contains(l, `"user":"alice"`) {
			refusedThere = true
		}
	}
	if !refusedThere {
		t.Errorf("no holder refused alice's push passed on from %s (its log has no such line)", out)
	}
	os.Remove(mark)
	if err := slow.Wait(); err != nil {
		t.Fatalf("the slow push: %v: %s", err, slowErr.String())
	}
	noCopy(t, c.Devices[out], "team/app")
}
