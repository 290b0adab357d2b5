package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gitmesh/meshtest"
)

func TestLockWaitNamesTheHolderAndGivesUpAtTheLimit(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	work, _ := pushed(t, c)
	a := c.Devices["a"]
	a.WriteConfig(`lock_timeout = "2s"`)

	// Another gitmesh process holds the write lock, named as serve names it.
	holder, err := sql.Open("postgres", c.DBURL+"&application_name="+strings.ReplaceAll("gitmesh push team/app 4242 bob@b", " ", "%20"))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	conn, err := holder.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_lock(x'676d5700'::int, (SELECT id FROM repositories WHERE name = 'team/app'))`); err != nil {
		t.Fatal(err)
	}

	c.Commit(work, "README", "waits\n")
	r := a.Git("alice", work, "push", meshtest.URL("team/app"), "main")
	if r.Code == 0 {
		t.Fatal("push succeeded while another process held the write lock")
	}
	for _, want := range []string{"waiting for the write lock of team/app: another push holds it", "gave up waiting for the write lock"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	// Another user's session is not the pusher's business (issue 19):
	// the log and status name it.
	for _, secret := range []string{"bob", "4242"} {
		if strings.Contains(r.Stderr, secret) {
			t.Errorf("stderr names the holder's session (%q):\n%s", secret, r.Stderr)
		}
	}
	if log, _ := os.ReadFile(a.Log); !strings.Contains(string(log), "bob@b") {
		t.Errorf("the log does not name the lock holder")
	}
	st := c.MustAdmin("status", "team/app")
	if !strings.Contains(st, "bob@b") {
		t.Errorf("status does not name the lock holder:\n%s", st)
	}
	// Exit 5 from serve itself (the write lock is asked for once the
	// push's commands arrive).
	res := rawPush(t, c, "a", "alice", "team/app", gitexecZero+" "+c.Rev("a", "team/app", "refs/heads/main")+" refs/heads/w")
	if res.Code != 5 || !strings.Contains(res.Stderr, "gave up waiting for the write lock") {
		t.Errorf("serve waiting too long: exit %d (want 5), stderr %q", res.Code, res.Stderr)
	}
}

// silentPeer accepts TCP connections and never says a word, like a host
// whose sshd hangs.
func silentPeer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func TestFetchFromAHangingPeerTimesOutAndFailsOver(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b", "c")
	url := meshtest.URL("team/app")
	work, _ := pushed(t, c)
	// ssh settings that pass the checks; the peer never answers anyway.
	key := filepath.Join(c.Dir, "cluster_key")
	known := filepath.Join(c.Dir, "known_hosts")
	os.WriteFile(key, []byte("not used\n"), 0o600)
	os.WriteFile(known, []byte("# empty\n"), 0o644)
	cdev := c.Devices["c"]
	cdev.WriteConfig("fetch_timeout = \"2s\"\nconnect_timeout = \"30s\"\ncluster_key = \"" + key + "\"\nknown_hosts = \"" + known + "\"")
	hanging := "ssh://git@" + silentPeer(t)

	// Each round a and b hold the newest version, a's URL is a peer that
	// never answers, and c reads: when c tries a first, the fetch times
	// out and c fetches from b. Rounds go on until that happens.
	failovers(t, c, "a", "b", "timed out", func(round int) string {
		latest := c.Commit(work, "README", fmt.Sprintf("round %d\n", round))
		pushWithout(t, c, "b", work, []string{"c"}, url, "main") // a and b at the newest, c behind
		if _, err := c.DB().Exec(`UPDATE devices SET url = $1 WHERE name = 'a'`, hanging); err != nil {
			t.Fatal(err)
		}
		return latest
	})
	// With the hanging peer the only leader, the read fails in bounded time.
	newer := c.Commit(work, "README", "newer\n")
	c.Devices["b"].MustGit("alice", work, "push", "-q", url, "main")
	c.Devices["a"].MustGit("alice", "", "ls-remote", url)
	if _, err := c.DB().Exec(`UPDATE devices SET url = '/nonexistent/b' WHERE name = 'b'`); err != nil {
		t.Fatal(err)
	}
	// a holds the newest version but hangs: make b look behind by moving a ahead.
	if _, err := c.DB().Exec(`UPDATE working_copy_versions SET version = version + 1
		WHERE device_id = (SELECT id FROM devices WHERE name = 'a')`); err != nil {
		t.Fatal(err)
	}
	r := cdev.Git("alice", "", "ls-remote", url, "refs/heads/main")
	if r.Code == 0 || strings.Contains(r.Stdout, newer) || !strings.Contains(r.Stderr, "timed out") {
		t.Fatalf("read with only a hanging peer: exit %d, stdout %q, stderr %s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestMigrateIsIdempotentAndSafeConcurrently(t *testing.T) {
	pg := meshtest.Server()
	dbURL, err := pg.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	c := meshtest.NewCluster(t, "a")
	dev := c.Devices["a"]
	dev.DBURL = dbURL
	dev.WriteConfig("")
	var wg sync.WaitGroup
	res := make([]meshtest.Result, 4)
	for i := range res {
		wg.Add(1)
		go func(i int) { defer wg.Done(); res[i] = dev.Run(nil, "migrate") }(i)
	}
	waitAll(t, &wg, "4 concurrent migrates")
	applied := 0
	for i, r := range res {
		if r.Code != 0 {
			t.Fatalf("concurrent migrate %d: exit %d: %s", i, r.Code, r.Stderr)
		}
		applied += strings.Count(r.Stdout, "applied ")
	}
	var files int
	if err := dbOpen(t, dbURL).QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&files); err != nil {
		t.Fatal(err)
	}
	if applied != files {
		t.Fatalf("four concurrent migrates applied %d migrations, the schema records %d", applied, files)
	}
	if r := dev.Run(nil, "migrate"); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("a second migrate: exit %d, stdout %q", r.Code, r.Stdout)
	}
}

func dbOpen(t *testing.T, url string) *sql.DB {
	d, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
