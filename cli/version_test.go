package cli

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	devel := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}}
	tests := []struct {
		name, version, commit string
		info                  *debug.BuildInfo
		want                  string
	}{
		{"Makefile stamp", "v1.2.0-3-g0123456-dirty", "0123456789abcdef0123456789abcdef01234567", stamped,
			"v1.2.0-3-g0123456-dirty (commit 0123456789abcdef0123456789abcdef01234567)"},
		{"go build in a checkout", "", "", stamped,
			"(devel) (commit 0123456789abcdef0123456789abcdef01234567, modified)"},
		{"go build without VCS", "", "", devel,
			"(devel) (unknown commit: built without the Makefile's -ldflags or Go's VCS stamp)"},
		{"no build information", "", "", nil,
			"(devel) (unknown commit: built without the Makefile's -ldflags or Go's VCS stamp)"},
	}
	for _, tt := range tests {
		if got := versionString(tt.version, tt.commit, tt.info); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// A binary built with the Makefile's linker flags names the commit of the
// checkout it was built from.
func TestMakeBuildStampsTheCommit(t *testing.T) {
	for _, tool := range []string{"make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s: run scripts/setup.sh", tool)
		}
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v (the test runs in a git checkout of gitmesh)", err)
	}
	mk := exec.Command("make", "-s", "--no-print-directory", "ldflags")
	mk.Dir = ".." // the Makefile is at the root; this test runs in cli/
	flags, err := mk.Output()
	if err != nil {
		t.Fatalf("make ldflags: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "gitmesh")
	build := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-ldflags", strings.TrimSpace(string(flags)), "-o", bin, ".")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %s: %v: %s", flags, err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("gitmesh --version: %v", err)
	}
	commit := strings.TrimSpace(string(head))
	if want := "(commit " + commit + ")"; !strings.HasPrefix(string(out), "gitmesh version ") || !strings.Contains(string(out), want) {
		t.Fatalf("gitmesh --version printed %q; want it to name %s", out, want)
	}
	if strings.Contains(string(out), "(devel)") {
		t.Fatalf("gitmesh --version printed %q: the Makefile's version stamp is missing", out)
	}
}
