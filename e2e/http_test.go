package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// httpCluster is three devices, a repository alice writes to, and nginx
// with fcgiwrap in front of device a.
func httpCluster(t *testing.T, o meshtest.WebOptions) (*meshtest.Cluster, *meshtest.Web, string) {
	t.Helper()
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.CreateRepo("a", "team/app", "alice")
	w := c.Devices["a"].StartWeb(t, o)
	return c, w, c.Token("alice")
}

// get does one HTTP request and returns its status and body.
func get(t *testing.T, method, rawURL, user, pass string, header map[string]string, body io.Reader) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	cl := &http.Client{Timeout: 60 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), resp.Header
}

// Clone, fetch and push over http:// through nginx: the push is stored
// on a majority before git hears "ok", says so as over SSH, and another
// device serves it.
func TestHTTPCloneFetchPush(t *testing.T) {
	c, w, tok := httpCluster(t, meshtest.WebOptions{})
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	url := w.URL("git", "alice", tok, "team/app")
	r := w.Git(work, nil, "push", url, "main")
	if r.Code != 0 {
		t.Fatalf("push over http: exit %d: %s\n%s", r.Code, r.Stderr, webLog(w.ErrorLog))
	}
	if !strings.Contains(r.Stderr, "remote: gitmesh: stored on ") || !strings.Contains(r.Stderr, "of 3 devices") {
		t.Fatalf("push over http did not say where it is stored: %s", r.Stderr)
	}
	t.Logf("push over http:\n%s", r.Stderr)
	head := strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD"))
	// Acknowledged means a majority records it: 2 of 3 devices at least.
	var n int
	if err := c.DB().QueryRow(`SELECT count(*) FROM working_copy_versions v JOIN repositories r ON r.id = v.repository_id
		WHERE r.name = 'team/app' AND v.version = (SELECT max(version) FROM working_copy_versions)`).Scan(&n); err != nil || n < 2 {
		t.Fatalf("devices holding the newest version: %d (%v), want at least 2", n, err)
	}
	// Device c (over SSH-style serve) serves what was pushed over HTTP.
	clone := filepath.Join(c.Dir, "from-c")
	c.Devices["c"].MustGit("alice", "", "clone", "-q", meshtest.URL("team/app"), clone)
	if got := strings.TrimSpace(c.LocalGit(clone, "rev-parse", "HEAD")); got != head {
		t.Fatalf("clone from c: HEAD %s, want %s", got, head)
	}
	// Clone and fetch over HTTP, protocol v0 and v2.
	for _, proto := range []string{"0", "2"} {
		dir := filepath.Join(c.Dir, "http-clone-v"+proto)
		r := w.Git("", nil, "-c", "protocol.version="+proto, "clone", "-q", url, dir)
		if r.Code != 0 {
			t.Fatalf("clone over http (protocol %s): exit %d: %s", proto, r.Code, r.Stderr)
		}
		if got := strings.TrimSpace(c.LocalGit(dir, "rev-parse", "HEAD")); got != head {
			t.Fatalf("clone over http: HEAD %s, want %s", got, head)
		}
	}
	c.Commit(work, "README", "again\n")
	c.Devices["b"].MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	second := strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD"))
	dir := filepath.Join(c.Dir, "http-clone-v2")
	if r := w.Git(dir, nil, "-c", "protocol.version=2", "pull", "-q", "--ff-only"); r.Code != 0 {
		t.Fatalf("fetch over http after a push to b: exit %d: %s", r.Code, r.Stderr)
	}
	if got := strings.TrimSpace(c.LocalGit(dir, "rev-parse", "HEAD")); got != second {
		t.Fatalf("fetch over http after a push to b: HEAD %s, want %s (a caught up first)", got, second)
	}
}

func webLog(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// Answers in HTTP's terms: 401 without a user or with a bad token, the
// same 404 for an unknown repository and one without access, 403 with
// SSH's sentence for a reader's push, dumb HTTP and archives refused.
func TestHTTPRefusals(t *testing.T) {
	c, w, tok := httpCluster(t, meshtest.WebOptions{})
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	if r := w.Git(work, nil, "push", "-q", w.URL("git", "alice", tok, "team/app"), "main"); r.Code != 0 {
		t.Fatalf("push: %s", r.Stderr)
	}
	c.User("bob")
	c.MustAdmin("grant", "bob", "team/app", "read")
	bobTok := c.Token("bob")
	c.User("mallory")
	malTok := c.Token("mallory")
	refs := func(prefix, repo string) string {
		return w.Base() + "/" + prefix + "/" + repo + ".git/info/refs?service=git-upload-pack"
	}

	// No credentials: nginx's auth_request (gitmesh http-auth) asks for them.
	code, _, h := get(t, "GET", refs("git", "team/app"), "", "", nil, nil)
	if code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("no credentials: %d, WWW-Authenticate %q; want 401 with a Basic challenge", code, h.Get("WWW-Authenticate"))
	}
	// A server that sets no REMOTE_USER gets 401 from http-backend itself.
	code, body, h := get(t, "GET", refs("open", "team/app"), "", "", nil, nil)
	if code != 401 || h.Get("WWW-Authenticate") == "" || !strings.Contains(body, "authentication required") {
		t.Fatalf("no REMOTE_USER: %d %q; want 401", code, body)
	}
	// Wrong token, another user's token, a token that is not one.
	for _, cred := range [][2]string{{"alice", "gm_wrong"}, {"alice", bobTok}, {"bob", tok}, {"alice", ""}, {"alice", strings.Repeat("x", 5000)}} {
		if code, _, _ := get(t, "GET", refs("git", "team/app"), cred[0], cred[1], nil, nil); code != 401 {
			t.Fatalf("user %s with a wrong token: %d, want 401", cred[0], code)
		}
	}
	// The right token works.
	if code, body, _ := get(t, "GET", refs("git", "team/app"), "alice", tok, nil, nil); code != 200 || !strings.Contains(body, "refs/heads/main") {
		t.Fatalf("alice with her token: %d %q", code, body)
	}
	// Unknown and forbidden: the same answer.
	c1, b1, _ := get(t, "GET", refs("git", "team/app"), "mallory", malTok, nil, nil)
	c2, b2, _ := get(t, "GET", refs("git", "team/none"), "mallory", malTok, nil, nil)
	if c1 != 404 || c2 != 404 || b1 != b2 || !strings.Contains(b1, "not found") {
		t.Fatalf("forbidden: %d %q; unknown: %d %q; want the same 404", c1, b1, c2, b2)
	}
	// git shows that body as "remote: ...".
	r := w.Git("", nil, "clone", w.URL("git", "mallory", malTok, "team/app"), filepath.Join(c.Dir, "mal"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "remote: gitmesh: repository not found, or you do not have access to it") {
		t.Fatalf("mallory's clone: exit %d: %s", r.Code, r.Stderr)
	}
	// A reader's push: 403 with SSH's sentence, shown by git.
	bobWork := filepath.Join(c.Dir, "bob")
	if r := w.Git("", nil, "clone", "-q", w.URL("git", "bob", bobTok, "team/app"), bobWork); r.Code != 0 {
		t.Fatalf("bob's clone: %s", r.Stderr)
	}
	before := c.Rev("a", "team/app", "refs/heads/main")
	c.Commit(bobWork, "README", "bob\n")
	r = w.Git(bobWork, nil, "push", "origin", "main")
	if r.Code == 0 || !strings.Contains(r.Stderr, "remote: gitmesh: you may read team/app but not push to it") || !strings.Contains(r.Stderr, "403") {
		t.Fatalf("bob's push: exit %d: %s", r.Code, r.Stderr)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != before {
		t.Fatalf("a reader's push moved main")
	}
	code, _, _ = get(t, "GET", w.Base()+"/git/team/app.git/info/refs?service=git-receive-pack", "bob", bobTok, nil, nil)
	if code != 403 {
		t.Fatalf("bob's receive-pack advertisement: %d, want 403", code)
	}
	// Dumb HTTP and archives are refused, whoever asks.
	for _, p := range []string{"/info/refs", "/HEAD", "/objects/info/packs", "/config", "/description"} {
		code, body, _ := get(t, "GET", w.Base()+"/git/team/app.git"+p, "alice", tok, nil, nil)
		if code != 403 || !strings.Contains(body, "dumb protocol is not served") {
			t.Fatalf("dumb GET %s: %d %q", p, code, body)
		}
	}
	code, body, _ = get(t, "POST", w.Base()+"/git/team/app.git/git-upload-archive", "alice", tok,
		map[string]string{"Content-Type": "application/x-git-upload-archive-request"}, strings.NewReader("0000"))
	if code != 403 || !strings.Contains(body, "archives") {
		t.Fatalf("upload-archive over HTTP: %d %q", code, body)
	}
	// No answer names a server path.
	for _, b := range []string{b1, body} {
		if strings.Contains(b, c.Dir) {
			t.Fatalf("answer names a server path: %q", b)
		}
	}
}

// Tokens: shown once, listed without the secret, refused once expired or
// removed.
func TestHTTPTokens(t *testing.T) {
	c, w, tok := httpCluster(t, meshtest.WebOptions{})
	refs := w.Base() + "/git/team/app.git/info/refs?service=git-upload-pack"
	second := c.Token("alice", "--expires", "30d")
	list := c.MustAdmin("token", "list")
	if strings.Contains(list, tok) || strings.Contains(list, second) || strings.Count(list, "alice") != 2 {
		t.Fatalf("token list:\n%s", list)
	}
	for _, s := range []string{tok, second} {
		if code, _, _ := get(t, "GET", refs, "alice", s, nil, nil); code != 200 {
			t.Fatalf("a fresh token: %d", code)
		}
	}
	// Expired (moved into the past in the database: nobody waits 30 days).
	if _, err := c.DB().Exec(`UPDATE tokens SET expires_at = now() - interval '1 second' WHERE expires_at IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, "GET", refs, "alice", second, nil, nil); code != 401 {
		t.Fatalf("an expired token: %d, want 401", code)
	}
	if !strings.Contains(c.MustAdmin("token", "list"), "(expired)") {
		t.Fatal("token list does not say which token expired")
	}
	// Removed.
	var id string
	if err := c.DB().QueryRow(`SELECT min(id)::text FROM tokens`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	c.MustAdmin("token", "remove", id)
	if code, _, _ := get(t, "GET", refs, "alice", tok, nil, nil); code != 401 {
		t.Fatalf("a removed token: %d, want 401", code)
	}
	// Bad input changes nothing, with a documented exit code.
	for _, args := range [][]string{{"token", "add", "nobody"}, {"token", "add", "alice", "--expires", "soon"}, {"token", "remove", "x"}, {"token", "remove", "999"}} {
		if r := c.Admin(args...); r.Code != 2 || r.Stdout != "" || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Fatalf("gitmesh %s: exit %d, stdout %q, stderr %q; want exit 2 and one sentence", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		}
	}
}

// Protocol v2 over HTTP (the Git-Protocol header reaches git), and a
// partial clone that fetches its blobs later.
func TestHTTPProtocolV2PartialClone(t *testing.T) {
	c, w, tok := httpCluster(t, meshtest.WebOptions{})
	work := c.Work("alice")
	c.Commit(work, "big", strings.Repeat("blob\n", 1000))
	c.Commit(work, "README", "hello\n")
	url := w.URL("git", "alice", tok, "team/app")
	if r := w.Git(work, nil, "push", "-q", url, "main"); r.Code != 0 {
		t.Fatalf("push: %s", r.Stderr)
	}
	r := w.Git("", []string{"GIT_TRACE_PACKET=1"}, "-c", "protocol.version=2", "ls-remote", url)
	if r.Code != 0 || !strings.Contains(r.Stderr, "version 2") || !strings.Contains(r.Stdout, "refs/heads/main") {
		t.Fatalf("ls-remote with protocol v2: exit %d, stdout %q, trace %s", r.Code, r.Stdout, r.Stderr)
	}
	dir := filepath.Join(c.Dir, "partial")
	r = w.Git("", nil, "-c", "protocol.version=2", "clone", "-q", "--no-checkout", "--filter=blob:none", url, dir)
	if r.Code != 0 || strings.Contains(r.Stderr, "filtering not recognized") {
		t.Fatalf("partial clone: exit %d: %s", r.Code, r.Stderr)
	}
	missing := c.LocalGit(dir, "rev-list", "--objects", "--all", "--missing=print")
	if !strings.Contains(missing, "\n?") && !strings.HasPrefix(missing, "?") {
		t.Fatalf("the partial clone holds every blob: %s", missing)
	}
	if r := w.Git(dir, nil, "-c", "protocol.version=2", "checkout", "-q", "main"); r.Code != 0 {
		t.Fatalf("checkout fetching the missing blobs over http: %s", r.Stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "big")); err != nil || len(b) != 5000 {
		t.Fatalf("big after checkout: %d bytes, %v", len(b), err)
	}
}

// A fetch request compressed with gzip (as git sends large ones) is
// inflated before upload-pack reads it.
func TestHTTPGzipRequest(t *testing.T) {
	c, w, tok := httpCluster(t, meshtest.WebOptions{})
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	if r := w.Git(work, nil, "push", "-q", w.URL("git", "alice", tok, "team/app"), "main"); r.Code != 0 {
		t.Fatalf("push: %s", r.Stderr)
	}
	head := strings.TrimSpace(c.LocalGit(work, "rev-parse", "HEAD"))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	want := "want " + head + "\n"
	fmt.Fprintf(zw, "%04x%s00000009done\n", len(want)+4, want)
	zw.Close()
	hdr := map[string]string{"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"}
	code, body, h := get(t, "POST", w.Base()+"/git/team/app.git/git-upload-pack", "alice", tok, hdr, &z)
	if code != 200 || h.Get("Content-Type") != "application/x-git-upload-pack-result" || !strings.Contains(body, "NAK") || !strings.Contains(body, "PACK") {
		t.Fatalf("gzip fetch request: %d %s %q", code, h.Get("Content-Type"), body[:min(len(body), 200)])
	}
	// Not gzip after all: refused, not passed on.
	code, body, _ = get(t, "POST", w.Base()+"/git/team/app.git/git-upload-pack", "alice", tok, hdr, strings.NewReader("0000"))
	if code != 400 || !strings.Contains(body, "not valid gzip") {
		t.Fatalf("a broken gzip body: %d %q", code, body)
	}
}

// One https:// round trip with a throwaway certificate.
func TestHTTPS(t *testing.T) {
	c, w, tok := httpCluster(t, meshtest.WebOptions{TLS: true})
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	env := []string{"GIT_SSL_CAINFO=" + w.CA}
	r := w.Git(work, env, "push", w.TLSURL("git", "alice", tok, "team/app"), "main")
	if r.Code != 0 || !strings.Contains(r.Stderr, "stored on") {
		t.Fatalf("push over https: exit %d: %s", r.Code, r.Stderr)
	}
	dir := filepath.Join(c.Dir, "tls-clone")
	if r := w.Git("", env, "clone", "-q", w.TLSURL("git", "alice", tok, "team/app"), dir); r.Code != 0 {
		t.Fatalf("clone over https: %s", r.Stderr)
	}
	// Without the certificate, git refuses the server: it is checked.
	if r := w.Git("", nil, "ls-remote", w.TLSURL("git", "alice", tok, "team/app")); r.Code == 0 {
		t.Fatal("ls-remote over https trusted an unknown certificate")
	}
}

// A push refused after the advertisement (frozen, no quorum) tells git
// the same sentence as SSH does, in git's side band (git never shows the
// body of a failed POST), and changes nothing; without a side band the
// answer is the status code with the sentence.
func TestHTTPPushRefusedSaysWhy(t *testing.T) {
	c, w, tok := httpCluster(t, meshtest.WebOptions{})
	work := c.Work("alice")
	acked := c.Commit(work, "README", "hello\n")
	url := w.URL("git", "alice", tok, "team/app")
	if r := w.Git(work, nil, "push", "-q", url, "main"); r.Code != 0 {
		t.Fatalf("push: %s", r.Stderr)
	}
	// No quorum: b and c cannot be reached.
	breakURL(t, c, "b")
	breakURL(t, c, "c")
	c.Commit(work, "README", "no quorum\n")
	r := w.Git(work, nil, "push", url, "main")
	if r.Code == 0 || !strings.Contains(r.Stderr, "only 1 of 3 devices could store the push") {
		t.Fatalf("push without a quorum: exit %d: %s", r.Code, r.Stderr)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != acked {
		t.Fatalf("main moved to %s without a quorum", got)
	}
	for _, d := range []string{"b", "c"} {
		if _, err := c.DB().Exec(`UPDATE devices SET url = $2 WHERE name = $1`, d, c.Devices[d].Root); err != nil {
			t.Fatal(err)
		}
	}
	// Frozen for good: a writer on a was killed while a alone held the
	// newest version and its copy had been changed by hand, so self-repair
	// cannot open it again.
	c.Commit(work, "README", "only on a\n")
	pushWithout(t, c, "a", work, []string{"b", "c"}, meshtest.URL("team/app"), "main")
	acked = c.Rev("a", "team/app", "refs/heads/main")
	frozenForGood(t, c, "team/app", "a", work)
	r = w.Git(work, nil, "push", url, "main")
	// The writer is not named to the pusher (issue 19): status and the log name it.
	if r.Code == 0 || !strings.Contains(r.Stderr, "remote: gitmesh: team/app is frozen for writes: an earlier push on device a") {
		t.Fatalf("push to a frozen repository: exit %d: %s", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stderr, c.Dir) {
		t.Fatalf("the refusal names a server path: %s", r.Stderr)
	}
	if got := c.Rev("a", "team/app", "refs/heads/main"); got != acked {
		t.Fatalf("main moved to %s while frozen", got)
	}
	// A client without a side band gets 409 and the sentence.
	zero := strings.Repeat("0", 40)
	cmd := zero + " " + acked + " refs/heads/other\x00report-status"
	code, body, _ := get(t, "POST", w.Base()+"/git/team/app.git/git-receive-pack", "alice", tok,
		map[string]string{"Content-Type": "application/x-git-receive-pack-request"},
		strings.NewReader(fmt.Sprintf("%04x%s0000", len(cmd)+4, cmd)))
	if code != 409 || !strings.Contains(body, "is frozen for writes") {
		t.Fatalf("push without a side band to a frozen repository: %d %q", code, body)
	}
}

// A push whose client stops sending midway over HTTP is stopped at
// push_idle_timeout, as over SSH: the write lock goes with it, nothing
// moves, and the next push goes through without waiting for the web
// server's own timeout (client_body_timeout, 20s here).
func TestHTTPStalledPushIsBounded(t *testing.T) {
	c, w, tok, work, acked := stallCluster(t, "push_idle_timeout = \"2s\"\nlock_timeout = \"8s\"")
	url := w.URL("git", "alice", tok, "team/app")
	stalled := time.Now()
	never := stallPush(t, c, w, tok, work, acked)
	c.Commit(work, "README", "next\n")
	r := w.Git(work, nil, "push", "-f", url, "main")
	took := time.Since(stalled)
	if r.Code != 0 {
		t.Fatalf("the next push after a stalled one: exit %d after %s: %s", r.Code, took, r.Stderr)
	}
	if took > 15*time.Second {
		t.Fatalf("the next push took %s after the stall; push_idle_timeout is 2s", took)
	}
	// The stalled push held no write lock (issue 19: the lock comes with
	// the commands), so the next one did not wait for it; it is still
	// stopped at push_idle_timeout.
	waitFor(t, "the stalled push to be stopped at push_idle_timeout", func() bool {
		return strings.Contains(webLog(c.Devices["a"].Log), "push_idle_timeout")
	})
	if got := c.Rev("a", "team/app", "refs/heads/main"); got == never {
		t.Fatalf("the stalled push moved main")
	}
}

// A push that finds the write lock held with no place in its queue
// (max_push_waiters = 0) hears SSH's sentence at once: in git's side
// band, or as 503 for a client without one.
func TestHTTPBusyPushSaysSo(t *testing.T) {
	c, w, tok, work, acked := stallCluster(t, "push_idle_timeout = \"1m\"\nmax_push_waiters = 0")
	url := w.URL("git", "alice", tok, "team/app")
	// Another push holds the write lock (a stalled upload no longer does).
	defer holdWriteLock(t, c, "team/app").Close()
	c.Commit(work, "README", "next\n")
	r := w.Git(work, nil, "push", "-f", url, "main")
	if r.Code == 0 || !strings.Contains(r.Stderr, "remote: gitmesh: push to team/app refused:") || !strings.Contains(r.Stderr, "max_push_waiters") {
		t.Fatalf("a push while the write lock is held: exit %d: %s", r.Code, r.Stderr)
	}
	cmd := acked + " " + acked + " refs/heads/other\x00report-status"
	code, body, h := get(t, "POST", w.Base()+"/git/team/app.git/git-receive-pack", "alice", tok,
		map[string]string{"Content-Type": "application/x-git-receive-pack-request"},
		strings.NewReader(fmt.Sprintf("%04x%s0000", len(cmd)+4, cmd)))
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(body, "max_push_waiters") {
		t.Fatalf("a push without a side band while the write lock is held: %d %q", code, body)
	}
}

// stallCluster is three devices with settings, nginx on a, and main
// pushed by alice.
func stallCluster(t *testing.T, settings string) (*meshtest.Cluster, *meshtest.Web, string, string, string) {
	t.Helper()
	c := meshtest.NewCluster(t, "a", "b", "c")
	c.Settings = settings
	for _, d := range c.Devices {
		d.WriteConfig("")
	}
	c.CreateRepo("a", "team/app", "alice")
	w := c.Devices["a"].StartWeb(t, meshtest.WebOptions{})
	tok := c.Token("alice")
	work := c.Work("alice")
	acked := c.Commit(work, "README", "hello\n")
	if r := w.Git(work, nil, "push", "-q", w.URL("git", "alice", tok, "team/app"), "main"); r.Code != 0 {
		t.Fatalf("push: %s", r.Stderr)
	}
	return c, w, tok, work, acked
}

// stallPush starts a push over HTTP that sends half its pack and then
// nothing, and returns once it holds the write lock; the connection
// closes with the test.
func stallPush(t *testing.T, c *meshtest.Cluster, w *meshtest.Web, tok, work, acked string) string {
	t.Helper()
	// A commit with 256 KiB that does not compress, so the part sent
	// passes fcgiwrap's buffer and reaches receive-pack.
	noise := make([]byte, 256<<10)
	rand.Read(noise)
	never := c.Commit(work, "noise", string(noise))
	pack := exec.Command("git", "pack-objects", "--stdout", "--revs")
	pack.Dir = work
	pack.Stdin = strings.NewReader(never + "\n^" + acked + "\n")
	packData, err := pack.Output()
	if err != nil || len(packData) < 200<<10 {
		t.Fatalf("pack-objects: %d bytes, %v", len(packData), err)
	}
	c.LocalGit(work, "reset", "-q", "--hard", acked)
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", w.Port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cmd := fmt.Sprintf("%s %s refs/heads/main\x00report-status side-band-64k\n", acked, never)
	body := fmt.Sprintf("%04x%s0000", len(cmd)+4, cmd) + string(packData[:128<<10])
	req := "POST /git/team/app.git/git-receive-pack HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
		"Authorization: Basic " + basic("alice", tok) + "\r\n" +
		"Content-Type: application/x-git-receive-pack-request\r\nTransfer-Encoding: chunked\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n", len(body), body)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(webLog(c.Devices["a"].Log), "receive-pack starts") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled push never started receive-pack; log:\n%s", webLog(c.Devices["a"].Log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return never
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// The hostile request corpus, sent raw to nginx with a valid token: every
// answer is a 4xx that names no server path, and no file changes.
func TestHTTPHostilePaths(t *testing.T) {
	c, w, tok := httpCluster(t, meshtest.WebOptions{})
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	if r := w.Git(work, nil, "push", "-q", w.URL("git", "alice", tok, "team/app"), "main"); r.Code != 0 {
		t.Fatalf("push: %s", r.Stderr)
	}
	c.WaitConverged("team/app")
	before, err := meshtest.Snapshot(c.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../testdata/hostile-http-paths.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		same := strings.HasPrefix(line, "same ")
		target := strings.ReplaceAll(strings.TrimPrefix(line, "same "), "<LONG>", strings.Repeat("a", 3000))
		for _, method := range []string{"GET", "POST"} {
			n++
			status, body := rawRequest(t, w, method, target, basic("alice", tok))
			if same && status == 200 && method == "GET" {
				continue // team/app itself, which alice may read
			}
			if status < 400 || status > 499 {
				t.Errorf("%s %s: status %d, want 4xx; body %q", method, line, status, body)
			}
			if strings.Contains(body, c.Dir) || strings.Contains(body, "/tmp/") || strings.Contains(body, tok) {
				t.Errorf("%s %s: the answer names a server path or the token: %q", method, line, body)
			}
		}
	}
	if n < 80 {
		t.Fatalf("only %d hostile requests", n)
	}
	after, err := meshtest.Snapshot(c.Dir, func(p string) bool {
		// The logs and the web server's own files change with every request.
		return strings.HasSuffix(p, ".log") || strings.Contains(p, "/web/")
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range before {
		if strings.HasSuffix(k, ".log") || strings.Contains(k, "/web/") {
			delete(before, k)
		}
	}
	if diff := meshtest.SnapshotDiff(before, after); len(diff) > 0 {
		t.Fatalf("hostile requests changed files:\n%s", meshtest.SnapshotString(diff))
	}
}

// rawRequest sends one request as written, without a client's cleaning,
// and returns the status and body.
func rawRequest(t *testing.T, w *meshtest.Web, method, target, auth string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", w.Port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	ctype := ""
	if method == "POST" {
		ctype = "Content-Type: application/x-git-upload-pack-request\r\nContent-Length: 4\r\n"
	}
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\n%sConnection: close\r\n\r\n", method, target, auth, ctype)
	if method == "POST" {
		io.WriteString(conn, "0000")
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body)
}

// http_anonymous_user lets a server without authentication serve reads
// as that user's grants; pushes still need a user. Off by default (see
// TestHTTPRefusals: 401).
func TestHTTPAnonymousRead(t *testing.T) {
	c, w, tok := httpCluster(t, meshtest.WebOptions{})
	work := c.Work("alice")
	head := c.Commit(work, "README", "hello\n")
	if r := w.Git(work, nil, "push", "-q", w.URL("git", "alice", tok, "team/app"), "main"); r.Code != 0 {
		t.Fatalf("push: %s", r.Stderr)
	}
	c.Devices["a"].WriteConfig(`http_anonymous_user = "guest"`)
	c.User("guest")
	c.CreateRepo("a", "team/secret", "alice")
	c.MustAdmin("grant", "guest", "team/app", "read")
	out := w.Git("", nil, "ls-remote", w.URL("open", "", "", "team/app"))
	if out.Code != 0 || !strings.HasPrefix(out.Stdout, head) {
		t.Fatalf("anonymous ls-remote: exit %d: %s %s", out.Code, out.Stdout, out.Stderr)
	}
	if code, _, _ := get(t, "GET", w.Base()+"/open/team/secret.git/info/refs?service=git-upload-pack", "", "", nil, nil); code != 404 {
		t.Fatalf("anonymous read of a repository guest may not read: %d, want 404", code)
	}
	if code, _, _ := get(t, "GET", w.Base()+"/open/team/app.git/info/refs?service=git-receive-pack", "", "", nil, nil); code != 401 {
		t.Fatalf("anonymous push advertisement: %d, want 401", code)
	}
}

// The server's own trouble is answered in HTTP's terms too, naming no
// path or address: an unreachable database is 503 with Retry-After, a
// settings file that does not load is 500 "misconfigured".
func TestHTTPServerTrouble(t *testing.T) {
	c, w, _ := httpCluster(t, meshtest.WebOptions{})
	a := c.Devices["a"]
	port, err := meshtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	a.WriteConfig(fmt.Sprintf("http_anonymous_user = \"alice\"\ndatabase_url = \"postgres://gitmesh@127.0.0.1:%d/gitmesh?sslmode=disable\"\nconnect_timeout = \"2s\"", port))
	refs := w.Base() + "/open/team/app.git/info/refs?service=git-upload-pack"
	code, body, h := get(t, "GET", refs, "", "", nil, nil)
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(body, "coordination database is unreachable from device a") ||
		strings.Contains(body, fmt.Sprint(port)) {
		t.Fatalf("database unreachable: %d %q (Retry-After %q)", code, body, h.Get("Retry-After"))
	}
	a.WriteConfig("no_such_setting = 1")
	code, body, _ = get(t, "GET", refs, "", "", nil, nil)
	if code != 500 || !strings.Contains(body, "the server is misconfigured (device") || strings.Contains(body, a.Config) {
		t.Fatalf("settings that do not load: %d %q", code, body)
	}
}
