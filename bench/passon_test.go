package bench

import (
	"fmt"
	"testing"
	"time"

	"gitmesh/meshtest"
)

// The passing-on benchmarks time a request that reaches a device holding
// no copy (passed on to a holder over the cluster key's shared ssh
// connection) against the same request sent straight to a holder, through
// real sshd, alternating the two in one run; ratio is passed on over
// direct (goal: one hop, at most 1.3).

// passOnCluster is three devices behind sshd, team/app placed on two of
// them (write quorum 2), with one commit pushed: a client straight to a
// holder and a client to the device without a copy.
func passOnCluster(b *testing.B) (c *meshtest.SSHCluster, direct, passed client, work string) {
	c = meshtest.NewSSHCluster(b, "a", "b", "c")
	c.MustAdmin("repo", "create", "team/app", "--copies", "2")
	c.SSHUser("alice")
	c.MustAdmin("grant", "alice", "team/app", "write")
	var out, holder string
	rows, err := c.DB().Query(`SELECT d.name, h.device_id IS NOT NULL FROM devices d
		LEFT JOIN holders h ON h.device_id = d.id AND h.repository_id = (SELECT id FROM repositories WHERE name = 'team/app')
		ORDER BY d.name`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var name string
		var holds bool
		if err := rows.Scan(&name, &holds); err != nil {
			b.Fatal(err)
		}
		if holds && holder == "" {
			holder = name
		} else if !holds {
			out = name
		}
	}
	rows.Close()
	if out == "" || holder == "" {
		b.Fatalf("repo create --copies 2 left no device without a copy (holder %q)", holder)
	}
	env := sshEnv(c, c.UserKey("alice"))
	direct = client{env: env, url: c.Hosts[holder].URL("team/app")}
	passed = client{env: env, url: c.Hosts[out].URL("team/app")}
	work = c.Work("alice")
	c.Commit(work, "README", "0\n")
	direct.mustRun(b, work, "push", "-q", direct.url, "main")
	waitConverge(b)
	// Both ways once untimed: the shared connections are open.
	direct.mustRun(b, "", "ls-remote", direct.url)
	passed.mustRun(b, "", "ls-remote", passed.url)
	return c, direct, passed, work
}

// BenchmarkPassOnLsRemoteSSH times `git ls-remote` through the device
// without a copy against the same through a holder.
func BenchmarkPassOnLsRemoteSSH(b *testing.B) {
	_, direct, passed, _ := passOnCluster(b)
	loop := newSlowLoop(b, b.N)
	var viaDirect, viaPassed time.Duration
	b.ResetTimer()
	for loop.next() {
		viaDirect += direct.mustRun(b, "", "ls-remote", direct.url)
		viaPassed += passed.mustRun(b, "", "ls-remote", passed.url)
	}
	b.StopTimer()
	reportPassOn(b, loop.n, viaPassed, viaDirect)
}

// BenchmarkPassOnPushSSH times a one-commit fast-forward push through the
// device without a copy against one straight to a holder, each push's
// converge waited for, untimed, before the next.
func BenchmarkPassOnPushSSH(b *testing.B) {
	c, direct, passed, work := passOnCluster(b)
	loop := newSlowLoop(b, b.N)
	var viaDirect, viaPassed time.Duration
	b.ResetTimer()
	for i := 0; loop.next(); i++ {
		for _, way := range []struct {
			cl  client
			sum *time.Duration
		}{{direct, &viaDirect}, {passed, &viaPassed}} {
			b.StopTimer()
			c.Commit(work, "README", fmt.Sprintf("%d %p\n", i, way.sum))
			b.StartTimer()
			*way.sum += way.cl.mustRun(b, work, "push", "-q", way.cl.url, "main")
			b.StopTimer()
			waitConverge(b)
			b.StartTimer()
		}
	}
	b.StopTimer()
	reportPassOn(b, loop.n, viaPassed, viaDirect)
}

func reportPassOn(b *testing.B, n int, viaPassed, viaDirect time.Duration) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) / 1000 }
	if n != b.N {
		b.ReportMetric(float64(n), "iterations")
	}
	b.ReportMetric(ms(viaPassed), "passed-on-ms/op")
	b.ReportMetric(ms(viaDirect), "direct-ms/op")
	b.ReportMetric(float64(viaPassed)/float64(viaDirect), "ratio")
}
