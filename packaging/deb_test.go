package packaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitmesh/meshtest"
)

func TestMain(m *testing.M) { meshtest.Main(m) }

// root is the checkout: the test runs in packaging/.
const root = ".."

// units are the systemd units the package installs.
var units = []string{"gitmesh-replicate.service", "gitmesh-metrics.service", "gitmesh-metrics.timer", "gitmesh-gc.service", "gitmesh-gc.timer"}

// make deb builds a package lintian accepts; dpkg -i installs the program,
// the units, the examples and the git account, and the version it prints is
// the package's; dpkg -r leaves only the settings and the data.
func TestDebianPackage(t *testing.T) {
	need(t, "dpkg-deb", "dpkg", "lintian", "make")
	if os.Geteuid() != 0 {
		t.Fatal("the package test installs into this system and must run as root (CI does); run it as root")
	}

	version := strings.TrimSpace(mustRun(t, root, "packaging/deb.sh", "version"))
	if !regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`).MatchString(version) {
		t.Fatalf("deb.sh version = %q: not a Debian version without a revision", version)
	}
	arch := strings.TrimSpace(mustRun(t, root, "dpkg", "--print-architecture"))
	lines := strings.Fields(mustRun(t, root, "make", "-s", "deb"))
	deb := lines[len(lines)-1]
	if want := fmt.Sprintf("dist/gitmesh_%s_%s.deb", version, arch); deb != want {
		t.Fatalf("make deb built %q, want %s", deb, want)
	}
	if r := run(root, "lintian", "--fail-on", "error", "--tag-display-limit", "0", deb); r.code != 0 {
		t.Fatalf("lintian found errors (exit %d):\n%s", r.code, r.out)
	} else {
		t.Logf("lintian:\n%s", r.out)
	}

	hadAccount := restoreAfterInstall(t)

	dpkg(t, "-i", deb)
	if got := strings.TrimSpace(mustRun(t, root, "dpkg-query", "-W", "-f", "${Version}", "gitmesh")); got != version {
		t.Errorf("installed version %q, want %q", got, version)
	}
	out := mustRun(t, root, "/usr/bin/gitmesh", "--version")
	if !strings.HasPrefix(out, "gitmesh version "+version+" (commit ") {
		t.Errorf("gitmesh --version = %q, want the package's version %s", out, version)
	}
	files := []string{"/usr/bin/gitmesh", "/usr/lib/gitmesh/write-metrics", "/usr/share/doc/gitmesh/copyright",
		"/usr/share/doc/gitmesh/changelog.gz", "/usr/share/doc/gitmesh/examples/gitmesh.toml",
		"/usr/share/doc/gitmesh/examples/sshd_config", "/usr/share/man/man1/gitmesh.1.gz"}
	for _, u := range units {
		files = append(files, "/lib/systemd/system/"+u)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("installed package lacks %s: %v", f, err)
		}
	}
	for _, u := range units {
		b, _ := os.ReadFile("/lib/systemd/system/" + u)
		if strings.Contains(string(b), "ExecStart=") && !strings.Contains(string(b), "/etc/gitmesh/gitmesh.toml") {
			t.Errorf("%s does not read /etc/gitmesh/gitmesh.toml:\n%s", u, b)
		}
	}

	// The git account: created when missing, a system account with a shell
	// (sshd runs the forced command through it).
	acct, err := user.Lookup("git")
	if err != nil {
		t.Fatalf("no git account after installing: %v", err)
	}
	passwd := strings.Split(strings.TrimSpace(mustRun(t, root, "getent", "passwd", "git")), ":")
	if uid, _ := strconv.Atoi(acct.Uid); !hadAccount && (uid >= 1000 || passwd[6] != "/bin/sh" || acct.HomeDir != "/var/lib/gitmesh") {
		t.Errorf("the git account the package made: %v; want a system account, shell /bin/sh, home /var/lib/gitmesh", passwd)
	}
	if st, err := os.Stat("/etc/gitmesh"); err != nil || st.Mode().Perm()&0o007 != 0 {
		t.Errorf("/etc/gitmesh: %v, %v; want it closed to others (it will hold the database password)", st.Mode(), err)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		args := append([]string{"verify"}, prefixed("/lib/systemd/system/", units)...)
		if r := run(root, "systemd-analyze", args...); r.code != 0 && !strings.Contains(r.out, "sysinit.target not found") {
			t.Errorf("systemd-analyze verify: exit %d\n%s", r.code, r.out)
		}
	}

	// The example settings are ones gitmesh reads: it gets as far as the
	// database, which is not there.
	if r := run(root, "runuser", "-u", "git", "--", "/usr/bin/gitmesh", "--config", "/usr/share/doc/gitmesh/examples/gitmesh.toml",
		"--connect-timeout", "1s", "device", "list"); r.code == 0 || strings.Contains(r.out, "config /usr/share") || !strings.Contains(r.out, "database") {
		t.Errorf("gitmesh with the example settings: exit %d, %q; want it to read them and fail on the database", r.code, r.out)
	}

	writeMetrics(t)

	// Enabled units are disabled on removal: no dangling symlink stays.
	var links []string
	if _, err := exec.LookPath("systemctl"); err == nil {
		mustRun(t, root, "systemctl", "enable", "gitmesh-replicate.service", "gitmesh-metrics.timer", "gitmesh-gc.timer")
		links, _ = filepath.Glob("/etc/systemd/system/*/gitmesh-*")
		if len(links) != 3 {
			t.Errorf("systemctl enable made %v, want 3 links", links)
		}
	}

	dpkg(t, "-r", "gitmesh")
	for _, f := range append(files, links...) {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s is still there after dpkg -r", f)
		}
	}
	for _, d := range []string{"/usr/share/doc/gitmesh", "/usr/lib/gitmesh"} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s is still there after dpkg -r", d)
		}
	}
	if _, err := user.Lookup("git"); err != nil {
		t.Error("dpkg -r removed the git account: it owns the repositories, it must stay")
	}
	if _, err := os.Stat("/etc/gitmesh"); err != nil {
		t.Errorf("dpkg -r removed /etc/gitmesh (settings stay until purge): %v", err)
	}
}

// writeMetrics runs the metrics service's command on a test cluster: the
// file appears whole, as `gitmesh metrics` prints it; a failed run leaves
// the previous file and no temporary one.
func writeMetrics(t *testing.T) {
	c := meshtest.NewCluster(t, "a", "b")
	c.CreateRepo("a", "team/app")
	dir, err := os.MkdirTemp("", "gitmesh-textfile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The git account reads the settings, as from /etc/gitmesh (root:git 640).
	config := filepath.Join(dir, "gitmesh.toml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf("database_url = %q\n", c.DBURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	prom := filepath.Join(dir, "gitmesh.prom")
	unit, _ := os.ReadFile("/lib/systemd/system/gitmesh-metrics.service")
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+) (\S+)$`).FindStringSubmatch(string(unit))
	if m == nil || m[2] != "/var/lib/prometheus/node-exporter/gitmesh.prom" {
		t.Fatalf("gitmesh-metrics.service does not write node_exporter's textfile directory:\n%s", unit)
	}
	cmd := exec.Command(m[1], prom)
	cmd.Env = append(os.Environ(), "GITMESH_CONFIG="+config)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", m[1], err, b)
	}
	got, _ := os.ReadFile(prom)
	want := c.MustAdmin("metrics", "--probe")
	types := regexp.MustCompile(`(?m)^# TYPE .*$`)
	if !strings.Contains(string(got), `gitmesh_copy_version{repository="team/app",device="a"} 0`) ||
		!strings.Contains(string(got), "gitmesh_device_up{") ||
		strings.Join(types.FindAllString(string(got), -1), "\n") != strings.Join(types.FindAllString(want, -1), "\n") {
		t.Errorf("gitmesh.prom holds:\n%s\nwant what gitmesh metrics --probe prints:\n%s", got, want)
	}
	if st, err := os.Stat(prom); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("gitmesh.prom: %v %v; want mode 644 (node_exporter reads it)", st.Mode(), err)
	}
	// A failed run: the database URL cannot be read.
	os.WriteFile(config, []byte("database_url = \"mysql://x\"\n"), 0o644)
	cmd = exec.Command(m[1], prom)
	cmd.Env = append(os.Environ(), "GITMESH_CONFIG="+config)
	if err := cmd.Run(); err == nil {
		t.Error("write-metrics succeeded with a bad database URL")
	}
	if after, _ := os.ReadFile(prom); !bytes.Equal(after, got) {
		t.Error("a failed run changed gitmesh.prom")
	}
	if left, _ := filepath.Glob(prom + ".*"); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// restoreAfterInstall makes sure no gitmesh package is installed, and has
// the test leave the machine as it found it: the package purged, and the
// git account and the directories the package made removed when they were
// not there before. It reports whether the git account was there.
func restoreAfterInstall(t *testing.T) bool {
	t.Helper()
	if out, _ := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Status}", "gitmesh").Output(); string(out) == "installed" {
		t.Fatal("a gitmesh package is installed on this machine; the test installs and removes its own: remove it first (dpkg -r gitmesh)")
	}
	_, accountErr := user.Lookup("git")
	hadAccount := accountErr == nil
	var made []string
	for _, dir := range []string{"/etc/gitmesh", "/var/log/gitmesh", "/var/lib/gitmesh"} {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			made = append(made, dir)
		}
	}
	t.Cleanup(func() {
		dpkg(t, "--purge", "gitmesh")
		if !hadAccount {
			run(root, "userdel", "git")
			run(root, "groupdel", "git")
		}
		for _, dir := range made {
			os.RemoveAll(dir)
		}
	})
	return hadAccount
}

func prefixed(p string, names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, p+n)
	}
	return out
}

// dpkg runs dpkg, waiting (up to 3 minutes) while another dpkg or apt holds
// its lock.
func dpkg(t *testing.T, args ...string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := run(root, "dpkg", args...)
		if r.code == 0 {
			return
		}
		if !strings.Contains(r.out, "lock") || time.Now().After(deadline) {
			t.Fatalf("dpkg %s: exit %d\n%s", strings.Join(args, " "), r.code, r.out)
		}
		time.Sleep(2 * time.Second) // another dpkg holds the lock; no event tells when it is done
	}
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	pkgs := map[string]string{"lintian": "lintian", "promtool": "prometheus", "dpkg-deb": "dpkg", "dpkg": "dpkg", "make": "make",
		"apt-get": "apt", "psql": "postgresql-client", "ssh-keygen": "openssh-client", "runuser": "util-linux"}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing; install it: apt-get install -y --no-install-recommends %s (scripts/setup.sh does)", tool, pkgs[tool])
		}
	}
}

type result struct {
	out  string
	code int
}

func run(dir, name string, args ...string) result {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return result{string(b), code}
}

func mustRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(b)
}
