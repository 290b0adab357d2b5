package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
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

var _ = bytes.NewReader
var _ = gzip.NewWriter
var _ = fmt.Sprintf
var _ = net.Dial
var _ = url.Parse
