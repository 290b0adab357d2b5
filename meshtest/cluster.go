package meshtest

import (
	"bytes"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	pg       *Postgres
	bin      string
	buildErr error
	once     sync.Once
)

// Main starts PostgreSQL and builds gitmesh for a test package, runs the
// tests, and stops everything it started. Use it as TestMain.
func Main(m *testing.M) {
	code := 1
	defer func() {
		if pg != nil {
			pg.Stop()
		}
		if bin != "" {
			os.RemoveAll(filepath.Dir(bin))
		}
		os.Exit(code)
	}()
	var err error
	if pg, err = StartPostgres(); err != nil {
		fmt.Fprintln(os.Stderr, "meshtest:", err)
		return
	}
	if bin, err = build(); err != nil {
		fmt.Fprintln(os.Stderr, "meshtest:", err)
		return
	}
	code = m.Run()
}

// Server is the PostgreSQL server of this test process.
func Server() *Postgres { return pg }

// Binary is the gitmesh binary built for this test process.
func Binary() string { return bin }

// build compiles gitmesh once per test process.
func build() (string, error) {
	dir, err := os.MkdirTemp("", "gitmesh-bin-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "gitmesh")
	if err := goBuild(out, ""); err != nil {
		return "", err
	}
	binaries = append(binaries, out)
	return out, nil
}

// goBuild builds gitmesh into out as the Makefile does (tag: serve starts
// without urfave/cli's docs code; no cgo) with any extra build tags.
func goBuild(out, extraTags string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tags := "urfave_cli_no_docs"
	if extraTags != "" {
		tags += "," + extraTags
	}
	cmd := exec.Command("go", "build", "-tags", tags, "-o", out, ".")
	cmd.Dir = root
	// Without cgo, as the Makefile and the Debian package build it: a
	// static binary that starts without the dynamic loader.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -tags %s: %w: %s", tags, err, b)
	}
	return nil
}

// binaries are every gitmesh binary built by this test process (Processes
// looks for all of them); tagged holds those built with extra tags.
var (
	binaries []string
	tagged   = map[string]string{}
	tagMu    sync.Mutex
)

// BuildTagged builds gitmesh with the extra build tag (a deliberately
// broken build, say: gitmesh_broken_skipstage), once per test process,
// next to the default binary, and returns its path. Give it to a cluster
// as Cluster.Bin.
func BuildTagged(t testing.TB, tag string) string {
	t.Helper()
	tagMu.Lock()
	defer tagMu.Unlock()
	if out, ok := tagged[tag]; ok {
		return out
	}
	if bin == "" {
		t.Fatal("meshtest: no default binary; call meshtest.Main from TestMain")
	}
	out := filepath.Join(filepath.Dir(bin), "gitmesh-"+tag)
	if err := goBuild(out, tag); err != nil {
		t.Fatalf("build gitmesh with tag %s: %v", tag, err)
	}
	tagged[tag] = out
	binaries = append(binaries, out)
	return out
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Cluster is a gitmesh cluster of devices sharing one fresh database.
type Cluster struct {
	T       testing.TB
	Dir     string
	DBURL   string
	Devices map[string]*Device
	// Settings are extra TOML lines written into every device's config.
	Settings string
	// Bin, when set, is the gitmesh binary this cluster runs (BuildTagged)
	// instead of the test process's default one.
	Bin string
}

// binary is the gitmesh binary the cluster's commands and serves run.
func (c *Cluster) binary() string {
	if c.Bin != "" {
		return c.Bin
	}
	return bin
}

// Device is one member of a Cluster.
type Device struct {
	Name   string
	DBURL  string // the database URL in its config (a proxy, say)
	Root   string // repo root
	Config string // TOML settings file
	Log    string // gitmesh's JSON log
	// Env is appended to the environment of git run against this device,
	// and so reaches its serve (TMPDIR, say).
	Env []string
	c   *Cluster
}

// NewCluster migrates a fresh database and registers the named devices,
// each with its own repo root; peers fetch from each other by local path.
func NewCluster(t testing.TB, names ...string) *Cluster {
	t.Helper()
	if pg == nil {
		t.Fatal("meshtest: no PostgreSQL; call meshtest.Main from TestMain")
	}
	return NewClusterOn(t, pg, names...)
}

// NewClusterOn is NewCluster on a given server.
func NewClusterOn(t testing.TB, server *Postgres, names ...string) *Cluster {
	t.Helper()
	dbURL, err := server.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return newCluster(t, dbURL, names...)
}

// NewClusterHA is NewCluster on a highly available database: every device
// reaches it through its multi-host DSN.
func NewClusterHA(t testing.TB, h *HA, names ...string) *Cluster {
	t.Helper()
	dsn, err := h.NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return newCluster(t, dsn, names...)
}

func newCluster(t testing.TB, dbURL string, names ...string) *Cluster {
	t.Helper()
	c := &Cluster{T: t, Dir: t.TempDir(), DBURL: dbURL, Devices: map[string]*Device{}}
	// Before the directories go: a push's detached catch-up may still write.
	t.Cleanup(func() { WaitDetached(t) })
	t.Cleanup(c.logWarnings)
	for _, n := range names {
		c.AddDevice(n, "")
	}
	c.MustAdmin("migrate")
	for _, n := range names {
		c.MustAdmin("device", "add", n, "--url", c.Devices[n].Root)
	}
	return c
}

// logWarnings puts the last warnings and errors of each device's log in a
// failed test's output: what a flaky run in CI leaves to go on.
func (c *Cluster) logWarnings() {
	if !c.T.Failed() {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(c.Devices)) {
		b, _ := os.ReadFile(c.Devices[name].Log)
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
				lines = append(lines, l)
			}
		}
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		if len(lines) > 0 {
			c.T.Logf("device %s's log, its last warnings and errors:\n%s", name, strings.Join(lines, "\n"))
		}
	}
}

// AddDevice creates a device's root, config and log; extra is appended to
// its config file. It does not register the device in the database.
func (c *Cluster) AddDevice(name, extra string) *Device {
	d := &Device{Name: name, c: c, DBURL: c.DBURL,
		Root:   filepath.Join(c.Dir, name, "repos"),
		Config: filepath.Join(c.Dir, name, "gitmesh.toml"),
		Log:    filepath.Join(c.Dir, name, "gitmesh.log")}
	if err := os.MkdirAll(d.Root, 0o755); err != nil {
		c.T.Fatal(err)
	}
	d.WriteConfig(extra)
	c.Devices[name] = d
	return d
}

// WriteConfig rewrites the device's config; extra TOML lines override the
// harness's defaults.
func (d *Device) WriteConfig(extra string) {
	lines := []string{
		fmt.Sprintf("database_url = %q", d.DBURL), fmt.Sprintf("device = %q", d.Name),
		fmt.Sprintf("repo_root = %q", d.Root), fmt.Sprintf("log_file = %q", d.Log),
		`lock_timeout = "30s"`, `fetch_timeout = "60s"`,
	}
	var conf []string
	overrides := d.c.Settings + "\n" + extra
	for _, l := range lines {
		key, _, _ := strings.Cut(l, " =")
		if !strings.Contains("\n"+overrides, "\n"+key+" ") && !strings.Contains("\n"+overrides, "\n"+key+"=") {
			conf = append(conf, l)
		}
	}
	conf = append(conf, overrides)
	if err := os.WriteFile(d.Config, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		d.c.T.Fatal(err)
	}
}

// Result is what a command printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs gitmesh with this device's settings and extra environment.
func (d *Device) Run(env []string, args ...string) Result {
	return run(d.Command(env, args...))
}

// Command is gitmesh with this device's settings and extra environment,
// to start (and perhaps kill) rather than run.
func (d *Device) Command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(d.c.binary(), append([]string{"--config", d.Config}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	return cmd
}

// Admin runs a gitmesh admin command on the first device's settings.
func (c *Cluster) Admin(args ...string) Result {
	return c.first().Run(nil, args...)
}

// MustAdmin runs an admin command and fails the test unless it exits 0.
func (c *Cluster) MustAdmin(args ...string) string {
	c.T.Helper()
	r := c.Admin(args...)
	if r.Code != 0 {
		c.T.Fatalf("gitmesh %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

func (c *Cluster) first() *Device {
	var first *Device
	for _, d := range c.Devices {
		if first == nil || d.Name < first.Name {
			first = d
		}
	}
	return first
}

// DB opens the cluster's database for assertions.
func (c *Cluster) DB() *sql.DB {
	d, err := sql.Open("postgres", c.DBURL)
	if err != nil {
		c.T.Fatal(err)
	}
	c.T.Cleanup(func() { d.Close() })
	return d
}

// CreateRepo creates repo on device dev and lets user write to it.
func (c *Cluster) CreateRepo(dev, repo string, writers ...string) {
	c.T.Helper()
	if r := c.Devices[dev].Run(nil, "repo", "create", repo); r.Code != 0 {
		c.T.Fatalf("repo create %s on %s: %s", repo, dev, r.Stderr)
	}
	for _, u := range writers {
		c.User(u)
		c.MustAdmin("grant", u, repo, "write")
	}
}

// User adds a user unless it exists.
func (c *Cluster) User(name string) {
	c.Admin("user", "add", name)
}

// SSHScript writes the GIT_SSH_COMMAND that makes git reach device dev as
// user, exactly as sshd would: SSH_ORIGINAL_COMMAND set to what git asked
// for, then `gitmesh serve USER` with the device's settings.
func (d *Device) SSHScript(user string) string {
	path := filepath.Join(d.c.Dir, fmt.Sprintf("ssh-%s-%s", d.Name, user))
	scriptMu.Lock()
	defer scriptMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	script := fmt.Sprintf(`#!/bin/sh
# git runs: ssh [options] HOST COMMAND; sshd passes COMMAND as SSH_ORIGINAL_COMMAND.
for last; do :; done
SSH_ORIGINAL_COMMAND=$last exec %q --config %q serve %q
`, d.c.binary(), d.Config, user)
	// Written aside and renamed: a concurrent exec never sees a half file.
	tmp := fmt.Sprintf("%s.%d.tmp", path, rand.Int64())
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		d.c.T.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		d.c.T.Fatal(err)
	}
	return path
}

// scriptMu keeps script writes apart from concurrent readers' execs.
var scriptMu sync.Mutex

// URL is the address a git client uses for repo on any device (the
// GIT_SSH_COMMAND picks the device).
func URL(repo string) string { return "gitmesh:" + repo + ".git" }

// Git runs git as user against device dev, in dir (may be "").
func (d *Device) Git(user, dir string, args ...string) Result {
	return run(d.GitCmd(user, dir, args...))
}

// GitCmd is Git, not yet started: for pushes a test interrupts.
func (d *Device) GitCmd(user, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(GitEnv(d.c.Dir), "GIT_SSH_COMMAND="+d.SSHScript(user), "GIT_SSH_VARIANT=ssh")
	cmd.Env = append(cmd.Env, d.Env...)
	return cmd
}

// MustGit runs Git and fails the test unless git exits 0.
func (d *Device) MustGit(user, dir string, args ...string) string {
	d.c.T.Helper()
	r := d.Git(user, dir, args...)
	if r.Code != 0 {
		d.c.T.Fatalf("git %s on %s as %s: exit %d: %s", strings.Join(args, " "), d.Name, user, r.Code, r.Stderr)
	}
	return r.Stdout
}

// GitEnv is a clean environment for git with an identity and a private HOME.
func GitEnv(home string) []string {
	return append(cleanEnv(), "HOME="+home,
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
}

// cleanEnv drops GITMESH_ and GIT_ variables the test runner may carry.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GITMESH_") && !strings.HasPrefix(kv, "GIT_") {
			out = append(out, kv)
		}
	}
	return out
}

func run(cmd *exec.Cmd) Result {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		r.Code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		}
	}
	return r
}

// Work makes a client work tree with one commit of file=content.
func (c *Cluster) Work(name string) string {
	dir := filepath.Join(c.Dir, "work-"+name)
	cmd := exec.Command("git", "init", "-q", "-b", "main", dir)
	cmd.Env = GitEnv(c.Dir)
	if r := run(cmd); r.Code != 0 {
		c.T.Fatalf("git init: %s", r.Stderr)
	}
	return dir
}

// Commit writes file=content in work tree dir and commits it; it returns
// the new commit id.
func (c *Cluster) Commit(dir, file, content string) string {
	c.T.Helper()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		c.T.Fatal(err)
	}
	c.LocalGit(dir, "add", file)
	c.LocalGit(dir, "commit", "-q", "-m", "edit "+file)
	return strings.TrimSpace(c.LocalGit(dir, "rev-parse", "HEAD"))
}

// LocalGit runs git in dir without any device, failing the test on error.
func (c *Cluster) LocalGit(dir string, args ...string) string {
	c.T.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = GitEnv(c.Dir)
	r := run(cmd)
	if r.Code != 0 {
		c.T.Fatalf("git %s: %s", strings.Join(args, " "), r.Stderr)
	}
	return r.Stdout
}

// Rev returns the object id of ref in device dev's copy of repo, or "".
func (c *Cluster) Rev(dev, repo, ref string) string {
	cmd := exec.Command("git", "--git-dir", filepath.Join(c.Devices[dev].Root, repo+".git"), "rev-parse", "--verify", "-q", ref)
	cmd.Env = GitEnv(c.Dir)
	return strings.TrimSpace(run(cmd).Stdout)
}
