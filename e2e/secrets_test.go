package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// No message carries a secret or a server internal (issue 12, items 6
// and 7): a key holder reads the device's name and what to do; the
// detail is in the log, without the password.

// withPassword is dbURL with user's password set to pw (written as is,
// so that a % makes a URL that does not parse), on host:port if given.
func withPassword(t *testing.T, dbURL, pw, hostPort string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	host := u.Host
	if hostPort != "" {
		host = hostPort
	}
	return u.Scheme + "://" + u.User.Username() + ":" + pw + "@" + host + u.Path + "?" + u.RawQuery
}

// closedPort is a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	p, err := meshtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

func TestDatabasePasswordIsNeverPrinted(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	c.CreateRepo("a", "team/app", "alice")
	a := c.Devices["a"]
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	a.MustGit("alice", work, "push", "-q", meshtest.URL("team/app"), "main")
	good := a.DBURL

	unreachable := closedPort(t)
	u, _ := url.Parse(good)
	for _, tc := range []struct {
		name, pw, hostPort, path string
		user                     string // what serve's user must read
	}{
		{"a password with %", "s3cr%zz%et-Pw", "", "", "the server is misconfigured (device a)"},
		{"a plain password, database down", "PlainSecret42", unreachable, "", "database is unreachable from device a"},
		{"a plain password, no such database", "PlainSecret42", "", "/no_such_db", "the server is misconfigured (device a)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := withPassword(t, good, tc.pw, tc.hostPort)
			if tc.path != "" {
				dsn = strings.Replace(dsn, u.Path, tc.path, 1)
			}
			secrets := []string{tc.pw, strings.ReplaceAll(tc.pw, "%", "%25"), dsn}
			if dec, err := url.PathUnescape(tc.pw); err == nil {
				secrets = append(secrets, dec)
			}
			internals := []string{c.Dir, unreachable, u.Host}
			clean := func(what, text string, noInternals bool) {
				t.Helper()
				for _, s := range secrets {
					if strings.Contains(text, s) {
						t.Errorf("%s shows the secret %q:\n%s", what, s, text)
					}
				}
				for _, s := range internals {
					if noInternals && strings.Contains(text, s) {
						t.Errorf("%s shows the server internal %q:\n%s", what, s, text)
					}
				}
			}
			os.Remove(a.Log)
			defer func() { a.DBURL = good; a.WriteConfig("") }()
			a.DBURL = dsn
			a.WriteConfig("")
			for _, cmd := range []string{"git-upload-pack 'team/app.git'", "git-receive-pack 'team/app.git'"} {
				r := serveAs(a, "alice", cmd)
				if r.Code == 0 || !strings.Contains(r.Stderr, tc.user) || !onlyRefusal(r) {
					t.Errorf("serve %s: exit %d, stderr %q; want %q", cmd, r.Code, r.Stderr, tc.user)
				}
				oneLine(t, "serve "+cmd, r.Stderr)
				clean("serve's stderr", r.Stderr, true)
			}
			r := a.Git("alice", "", "ls-remote", meshtest.URL("team/app"))
			clean("git ls-remote's stderr", r.Stderr, true)
			// Admin commands may name the setting and the server, never the password;
			// the same from the environment and from a flag.
			for _, run := range []meshtest.Result{
				a.Run(nil, "status"),
				a.Run([]string{"GITMESH_DATABASE_URL=" + dsn}, "--config", "/dev/null", "status"),
				a.Run(nil, "--database-url", dsn, "user", "add", "mallory"),
				a.Run(nil, "repo", "create", "team/other"),
			} {
				if run.Code == 0 {
					t.Errorf("an admin command succeeded with a bad database URL: %q", run.Stdout)
				}
				clean("an admin command's stderr", run.Stderr, false)
			}
			log, err := os.ReadFile(a.Log)
			if err != nil || !strings.Contains(string(log), `"level":"error"`) {
				t.Fatalf("no error was logged (%v):\n%s", err, log)
			}
			clean("the log", string(log), false)
		})
	}
}

// A user of a device hears which device failed and what to do; the
// paths, the database's address and git's own lines go to the log.
func TestUserMessagesHoldNoServerInternals(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	repo, url := "team/app", meshtest.URL("team/app")
	c.CreateRepo("a", repo, "alice")
	work := c.Work("alice")
	c.Commit(work, "README", "hello\n")
	c.Devices["a"].MustGit("alice", work, "push", "-q", url, "main")
	c.WaitConverged(repo)
	// b lags: a alone holds the newest version.
	c.Commit(work, "README", "newer\n")
	pushWithout(t, c, "a", work, []string{"b"}, url, "main")

	noInternals := func(what string, r meshtest.Result, wants ...string) {
		t.Helper()
		t.Logf("%s: exit %d: %s", what, r.Code, r.Stderr)
		if r.Code == 0 {
			t.Errorf("%s succeeded", what)
		}
		for _, bad := range []string{c.Dir, "/nonexistent", "127.0.0.1"} {
			if strings.Contains(r.Stderr, bad) {
				t.Errorf("%s: stderr shows %q:\n%s", what, bad, r.Stderr)
			}
		}
		for _, w := range wants {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", what, w, r.Stderr)
			}
		}
	}

	// The leader's copy is gone: b cannot catch up.
	aCopy := filepath.Join(c.Devices["a"].Root, repo+".git")
	if err := os.Rename(aCopy, aCopy+".away"); err != nil {
		t.Fatal(err)
	}
	noInternals("read on b while a's copy is gone", c.Devices["b"].Git("alice", "", "ls-remote", url),
		"device b", "a: its copy is missing", "tell an administrator")
	if err := os.Rename(aCopy+".away", aCopy); err != nil {
		t.Fatal(err)
	}

	// The leader's URL is wrong: the fetch fails.
	db := c.DB()
	if _, err := db.Exec(`UPDATE devices SET url = '/nonexistent/a' WHERE name = 'a'`); err != nil {
		t.Fatal(err)
	}
	noInternals("read on b while a's URL is wrong", c.Devices["b"].Git("alice", "", "ls-remote", url), "device b", "a:")
	noInternals("push on b while a's URL is wrong", c.Devices["b"].Git("alice", work, "push", url, "main:other"), "device b", "a:")
	restoreURLs(t, c)

	// The database is unreachable.
	b := c.Devices["b"]
	good := b.DBURL
	b.DBURL = withPassword(t, good, "x", closedPort(t))
	b.WriteConfig("")
	noInternals("read on b without its database", b.Git("alice", "", "ls-remote", url), "database is unreachable from device b")
	b.DBURL = good
	b.WriteConfig("")

	// git itself names the copy it cannot open: as ".", never by its path.
	objects := filepath.Join(aCopy, "objects")
	if err := os.Rename(objects, objects+".away"); err != nil {
		t.Fatal(err)
	}
	r := c.Devices["a"].Git("alice", "", "ls-remote", url)
	noInternals("read of a broken copy", r)
	if err := os.Rename(objects+".away", objects); err != nil {
		t.Fatal(err)
	}

	// The detail is in the log of the device the user reached.
	log, err := os.ReadFile(c.Devices["b"].Log)
	if err != nil || !strings.Contains(string(log), "/nonexistent/a") {
		t.Errorf("b's log lacks the detail of the failed fetch (%v)", err)
	}
}
