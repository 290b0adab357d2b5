package e2e

import (
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// Mistakes a newcomer makes get one sentence that says what to do.
func TestNewcomerMistakesSayWhatToDo(t *testing.T) {
	c := meshtest.NewSSHCluster(t, "a")
	a := c.Hosts["a"]
	key := c.SSHUser("alice")
	one := func(what string, r meshtest.Result, code int, want string) {
		t.Helper()
		if r.Code != code || r.Stdout != "" || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and one line saying %q", what, r.Code, r.Stdout, r.Stderr, code, want)
		}
	}

	// ssh with a git verb but no repository, through the real sshd.
	one("ssh git-upload-pack", a.SSH(key, nil, "git-upload-pack"), 2,
		"the repository path is missing: git-upload-pack needs one, as in git-upload-pack 'team/app.git'")
	one("ssh git receive-pack", a.SSH(key, nil, "git", "receive-pack"), 2, "the repository path is missing")

	// A global flag after the subcommand.
	one("status --config", a.Run(nil, "status", "--config", a.Config), 2,
		"flag --config is a global flag: put it before the subcommand: gitmesh --config "+a.Config+" status")
	// serve without a user.
	one("serve", a.Run(nil, "serve"), 2, "or --cluster for the cluster key's line")

	// A server without SSL, asked for SSL (lib/pq's default).
	var ssl string
	if err := c.DB().QueryRow(`SHOW ssl`).Scan(&ssl); err != nil || ssl != "off" {
		t.Fatalf("this test needs a PostgreSQL without SSL (ssl = %q, %v)", ssl, err)
	}
	url := strings.Replace(meshtest.Server().AdminURL, "sslmode=disable", "sslmode=require", 1)
	one("sslmode=require", a.Run(nil, "--database-url", url, "device", "list"), 1,
		"SSL is not enabled on the server; add sslmode=disable to the database URL, or enable SSL on the PostgreSQL server")
}
