package e2e

import (
	"net/url"
	"os"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// A database setting that is wrong is told as one: exit 1, one sentence
// naming database_url, never the password; serve's user hears that the
// server is misconfigured (or that the database is unreachable). A
// database that was reached and went away mid-way stays exit 6.
func TestDatabaseSettingMistakesNameTheSetting(t *testing.T) {
	pg, err := meshtest.StartOwnPostgres()
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	c := meshtest.NewClusterOn(t, pg, "a")
	c.CreateRepo("a", "team/app", "alice")
	a := c.Devices["a"]
	const password = "Right-Pass-9"
	if _, err := c.DB().Exec(`CREATE ROLE gm_pw LOGIN SUPERUSER PASSWORD '` + password + `'`); err != nil {
		t.Fatal(err)
	}
	if err := pg.RequirePassword("gm_pw"); err != nil {
		t.Fatal(err)
	}
	good, _ := url.Parse(c.DBURL)
	with := func(user, host, path string) string {
		u := *good
		if user != "" {
			u.User = url.UserPassword(user, "Wrong-Pass-1")
		}
		if host != "" {
			u.Host = host
		}
		if path != "" {
			u.Path = path
		}
		return u.String()
	}
	empty, err := pg.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dsn, admin, user string
	}{
		{"connection refused", with("", closedPort(t), ""), "nothing accepts connections at its address", "database is unreachable from device a"},
		{"unknown host", with("", "no-such-host.invalid:5432", ""), "its host name is unknown", "database is unreachable from device a"},
		{"wrong password", with("gm_pw", "", ""), "refused the password", "the server is misconfigured (device a)"},
		{"missing role", with("nobody_here", "", ""), "refused the role", "the server is misconfigured (device a)"},
		{"missing database", with("", "", "/no_such_db"), "has no such database", "the server is misconfigured (device a)"},
		{"no schema", empty, "run 'gitmesh migrate'", "the server is misconfigured (device a)"},
		{"multi-host URL", "postgres://postgres@127.0.0.1:1,127.0.0.1:2/x?sslmode=disable", "host=h1,h2 port=p1,p2", "the server is misconfigured (device a)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{{"status"}, {"repo", "list"}, {"user", "add", "mallory"}} {
				r := a.Run(nil, append([]string{"--database-url", tc.dsn}, args...)...)
				what := strings.Join(args, " ")
				if r.Code != 1 || !strings.Contains(r.Stderr, tc.admin) || (tc.name != "no schema" && !strings.Contains(r.Stderr, "database_url")) {
					t.Errorf("%s: exit %d, %q; want exit 1 saying %q and naming database_url", what, r.Code, r.Stderr, tc.admin)
				}
				oneLine(t, what, r.Stderr)
				if strings.Contains(r.Stderr, "Wrong-Pass-1") || strings.Contains(r.Stderr, password) {
					t.Errorf("%s prints the password: %s", what, r.Stderr)
				}
			}
			os.Remove(a.Log)
			r := serveAs(a, "alice", "git-upload-pack 'team/app.git'", "GITMESH_DATABASE_URL="+tc.dsn)
			if r.Code != 1 || !strings.Contains(r.Stderr, tc.user) || strings.Contains(r.Stderr, "Wrong-Pass-1") {
				log, _ := os.ReadFile(a.Log)
				t.Errorf("serve: exit %d, %q; want exit 1 saying %q; log: %s", r.Code, r.Stderr, tc.user, log)
			}
		})
	}

	// Reached, then gone mid-way: an outage, exit 6, try again later.
	proxy := proxiedDevice(t, c, "a", "")
	fired := proxy.CutOn("pg_try_advisory_lock", true)
	r := serveAs(a, "alice", "git-receive-pack 'team/app.git'")
	<-fired
	if r.Code != 6 || !strings.Contains(r.Stderr, "unreachable from device a; try again later") {
		t.Errorf("push whose database went away mid-way: exit %d, %q; want exit 6, try again later", r.Code, r.Stderr)
	}
}
