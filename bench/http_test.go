package bench

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// The HTTP benchmarks time git over http:// through real nginx and
// fcgiwrap: `gitmesh http-backend` against git's own `git http-backend`
// behind the same nginx, alternating the two in one run. gitmesh's
// requests pass nginx's auth_request to `gitmesh http-auth` (a token);
// git http-backend's pass no authentication at all, so the ratio counts
// the token check as gitmesh's cost. LsRemote also reports gitmesh
// without the auth subrequest (http_anonymous_user, "noauth").

// httpBench is a three-device cluster (write quorum 2) behind nginx on
// a, and a plain bare repository with the same first commit that git
// http-backend serves through the same nginx.
func httpBench(b *testing.B) (*meshtest.Cluster, *meshtest.Web, client, client, string) {
	c := meshtest.NewCluster(b, "a", "b", "c")
	setWriteQuorum(c, 2)
	c.CreateRepo("a", "team/app", "alice")
	a := c.Devices["a"]
	a.WriteConfig(`http_anonymous_user = "alice"`)
	w := a.StartWeb(b, meshtest.WebOptions{})
	tok := c.Token("alice")
	initBare(b, c, filepath.Join(a.Root, "plainbench", "app.git"))
	localGit(b, c, filepath.Join(a.Root, "plainbench", "app.git"), "", "config", "http.receivepack", "true")
	env := append(meshtest.GitEnv(c.Dir), "GIT_TERMINAL_PROMPT=0")
	mesh := client{env: env, url: w.URL("git", "alice", tok, "team/app")}
	plain := client{env: env, url: w.URL("plain", "", "", "plainbench/app")}
	work := c.Work("alice")
	c.Commit(work, "README", "0\n")
	mesh.mustRun(b, work, "push", "-q", mesh.url, "main")
	plain.mustRun(b, work, "push", "-q", plain.url, "main")
	waitConverge(b)
	return c, w, mesh, plain, work
}

// BenchmarkHTTPLsRemote times `git ls-remote` over HTTP against a
// current device.
func BenchmarkHTTPLsRemote(b *testing.B) {
	_, w, mesh, plain, _ := httpBench(b)
	noauth := client{env: mesh.env, url: w.URL("open", "", "", "team/app")}
	var viaGitmesh, viaNoAuth, viaPlain time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		viaPlain += plain.mustRun(b, "", "ls-remote", plain.url)
		viaGitmesh += mesh.mustRun(b, "", "ls-remote", mesh.url)
		viaNoAuth += noauth.mustRun(b, "", "ls-remote", noauth.url)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) / 1000 }
	b.ReportMetric(ms(viaGitmesh), "gitmesh-ms/op")
	b.ReportMetric(ms(viaNoAuth), "gitmesh-noauth-ms/op")
	b.ReportMetric(ms(viaPlain), "http-backend-ms/op")
	b.ReportMetric(float64(viaGitmesh)/float64(viaPlain), "ratio")
	b.ReportMetric(float64(viaNoAuth)/float64(viaPlain), "ratio-noauth")
}

// BenchmarkHTTPPush times a one-commit fast-forward push over HTTP,
// stored on a quorum of three devices, against the same push into a
// plain repository through git http-backend. Each iteration waits,
// untimed, for the push's background catch-up, as the SSH push
// benchmarks do.
func BenchmarkHTTPPush(b *testing.B) {
	c, _, mesh, plain, work := httpBench(b)
	loop := newSlowLoop(b, b.N)
	var viaGitmesh, viaPlain, converge time.Duration
	var last string
	b.ResetTimer()
	for i := 0; loop.next(); i++ {
		b.StopTimer()
		last = c.Commit(work, "README", fmt.Sprintf("%d\n", i+1))
		b.StartTimer()
		viaPlain += plain.mustRun(b, work, "push", "-q", plain.url, "main")
		viaGitmesh += mesh.mustRun(b, work, "push", "-q", mesh.url, "main")
		b.StopTimer()
		converge += waitConverge(b)
		b.StartTimer()
	}
	b.StopTimer()
	expectEverywhere(b, c, "team/app", "refs/heads/main", last)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(loop.n) / 1000 }
	if loop.n != b.N {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(loop.n), "ns/op")
		b.ReportMetric(float64(loop.n), "iterations")
	}
	b.ReportMetric(ms(viaGitmesh), "gitmesh-ms/op")
	b.ReportMetric(ms(viaPlain), "http-backend-ms/op")
	b.ReportMetric(float64(viaGitmesh)/float64(viaPlain), "ratio")
	b.ReportMetric(ms(converge), "converge-ms/op")
}
