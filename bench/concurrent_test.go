package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// slowClientDelay is how long each client of BenchmarkConcurrentPushes
// takes, once it starts sending, before the rest of its ref commands and
// pack reach the server: an upload over a slow or distant link, as most
// pushes are from the server's side.
const slowClientDelay = 300 * time.Millisecond

// BenchmarkConcurrentPushes times rounds of four pushes to one repository
// at once, by four users (each a one-commit fast-forward of its own branch; three
// local-path devices, write quorum 2), each client taking
// slowClientDelay to send its commands and pack, against the same round
// through git shell on a plain bare repository with the same delay. A
// push that holds the write lock while its client uploads serialises the
// uploads too (about 4 x (delay + push) a round); one that takes the lock
// when its commands arrive overlaps them (about delay + 4 x push).
func BenchmarkConcurrentPushes(b *testing.B) {
	const clients = 4
	c := meshtest.NewCluster(b, "a", "b", "c")
	setWriteQuorum(c, 2)
	c.CreateRepo("a", "team/app", "alice")
	delayed := func(name, inner string) string {
		path := filepath.Join(c.Dir, name)
		// The delay starts once the client starts sending (after the
		// server's ref advertisement): the time its upload takes.
		script := fmt.Sprintf("#!/bin/sh\n(dd bs=1 count=4 status=none; sleep %.3f; exec cat) | %q \"$@\"\n", slowClientDelay.Seconds(), inner)
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			b.Fatal(err)
		}
		return path
	}
	a := c.Devices["a"]
	// One user per client: one user's pushes may take at most two places
	// in the queue for the write lock.
	users := []string{"alice", "bob", "carol", "dave"}
	meshes := make([]client, clients)
	for i := range meshes {
		u := users[i]
		c.User(u)
		c.MustAdmin("grant", u, "team/app", "write")
		meshes[i] = client{env: append(append(meshtest.GitEnv(c.Dir), "GIT_SSH_COMMAND="+delayed("slow-mesh-"+u, a.SSHScript(u)), "GIT_SSH_VARIANT=ssh"), a.Env...),
			url: meshtest.URL("team/app")}
	}
	mesh := meshes[0]
	root := filepath.Join(c.Dir, "plain")
	initBare(b, c, filepath.Join(root, "team/app.git"))
	shell := client{env: append(meshtest.GitEnv(c.Dir), "GIT_SSH_COMMAND="+delayed("slow-shell", gitShellScript(b, c.Dir, root)), "GIT_SSH_VARIANT=ssh"),
		url: meshtest.URL("team/app")}

	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	names := make([]string, clients)
	var create string
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
		create += fmt.Sprintf("create refs/heads/%s HEAD\n", names[i])
	}
	localGit(b, c, work, create, "update-ref", "--stdin")
	mesh.mustRun(b, work, append([]string{"push", "-q", mesh.url}, names...)...)
	shell.mustRun(b, work, append([]string{"push", "-q", shell.url}, names...)...)
	waitConverge(b)

	round := func(gs []client) time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		for i, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				gs[i%len(gs)].mustRun(b, work, "push", "-q", gs[i%len(gs)].url, name)
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	loop := newSlowLoop(b, 10)
	var viaGitmesh, viaShell, converge time.Duration
	b.ResetTimer()
	for i := 0; loop.next(); i++ {
		b.StopTimer()
		commitOnEach(b, c, work, names, i+1)
		b.StartTimer()
		viaShell += round([]client{shell})
		viaGitmesh += round(meshes)
		b.StopTimer()
		converge += waitConverge(b)
		b.StartTimer()
	}
	b.StopTimer()
	for _, name := range names {
		want := c.LocalGit(work, "rev-parse", "refs/heads/"+name)
		expectEverywhere(b, c, "team/app", "refs/heads/"+name, want[:40])
	}
	report(b, loop.n, viaGitmesh, viaShell, converge)
}
