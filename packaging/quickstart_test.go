package packaging

import (
	"database/sql"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gitmesh/meshtest"
)

// The README's "Quick start (by hand)" works as written: its ```sh block,
// taken from the README itself, runs line by line on a fresh PostgreSQL.
// Two things are moved, and nothing else: the URL's port to the test
// server's, and /srv/git/repos to a directory of the test's own. psql
// reaches the test server through PGHOST and PGPORT.
func TestQuickStartAsWritten(t *testing.T) {
	need(t, "dpkg", "apt-get", "make", "psql", "ssh-keygen", "runuser")
	if os.Geteuid() != 0 {
		t.Fatal("the Quick start installs the package and must run as root (CI does); run it as root")
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := quickStart(t, string(readme))
	for _, f := range []string{"alice", "alice.pub"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			t.Fatalf("%s exists in the checkout; the Quick start makes it: move it away first", f)
		}
		t.Cleanup(func() { os.Remove(filepath.Join(root, f)) })
	}
	restoreAfterInstall(t)

	pg, err := meshtest.StartOwnPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	u, err := url.Parse(pg.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "gitmesh-quickstart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755) // git reaches the repo root below it
	repos := filepath.Join(base, "srv", "git", "repos")
	script := block
	for old, new := range map[string]string{"@127.0.0.1:5432/": "@127.0.0.1:" + u.Port() + "/", "/srv/git/repos": repos} {
		if !strings.Contains(script, old) {
			t.Fatalf("the Quick start no longer holds %q, which the test moves; change the test with it:\n%s", old, block)
		}
		script = strings.ReplaceAll(script, old, new)
	}
	cmd := exec.Command("bash", "-c", "set -euxo pipefail\n"+script)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GITMESH_") && !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PGHOST=127.0.0.1", "PGPORT="+u.Port())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the Quick start failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"team/app: 2 of 2 devices hold the newest version, quorum 2 (nothing pushed yet)", "OK: 2 devices, 1 repository: nothing frozen, below quorum"} {
		if !strings.Contains(text, want) {
			t.Errorf("the Quick start's output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "BELOW QUORUM") {
		t.Errorf("a fresh repository is reported below the quorum:\n%s", text)
	}

	// The copy belongs to git, the repo root is git's alone, and the tables
	// belong to the role the Quick start names.
	git, err := user.Lookup("git")
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{repos: 0o700, filepath.Join(repos, "team", "app.git"): 0} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; git.Uid != itoa(uid) || mode != 0 && st.Mode().Perm() != mode {
			t.Errorf("%s: owner uid %d mode %v; want git (%s)%s", path, uid, st.Mode().Perm(), git.Uid, map[bool]string{true: ", mode 700"}[mode != 0])
		}
	}
	u.Path = "/gitmesh"
	d, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var owner string
	if err := d.QueryRow(`SELECT tableowner FROM pg_tables WHERE tablename = 'repositories'`).Scan(&owner); err != nil || owner != "gitmesh_owner" {
		t.Errorf("the tables belong to %q (%v), want gitmesh_owner as the Quick start says", owner, err)
	}
}

// quickStart is the ```sh block of the README's Quick start section.
func quickStart(t *testing.T, readme string) string {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n## Quick start (by hand)\n")
	if ok {
		section, _, _ = strings.Cut(section, "\n## ")
		_, section, ok = strings.Cut(section, "\n```sh\n")
	}
	block, _, closed := strings.Cut(section, "\n```\n")
	if !ok || !closed {
		t.Fatal("README.md has no ```sh block under \"## Quick start (by hand)\"")
	}
	return block + "\n"
}

func itoa(n uint32) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}
