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
// takes before its ref commands and pack reach the server: a client on a
// slow or distant link, as most pushes are from the server's side.
const slowClientDelay = 300 * time.Millisecond

// BenchmarkConcurrentPushes times rounds of four pushes to one repository
// at once (each a one-commit fast-forward of its own branch; three
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
		script := fmt.Sprintf("#!/bin/sh\n(sleep %.3f; exec cat) | %q \"$@\"\n", slowClientDelay.Seconds(), inner)
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			b.Fatal(err)
		}
		return path
	}
	a := c.Devices["a"]
	mesh := client{env: append(append(meshtest.GitEnv(c.Dir), "GIT_SSH_COMMAND="+delayed("slow-mesh", a.SSHScript("alice")), "GIT_SSH_VARIANT=ssh"), a.Env...),
		url: meshtest.URL("team/app")}
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

	round := func(g client) time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		for _, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.mustRun(b, work, "push", "-q", g.url, name)
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
		viaShell += round(shell)
		viaGitmesh += round(mesh)
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
