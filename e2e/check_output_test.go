package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"gitmesh/meshtest"
)

// A check whose report cannot be written (a full disk, a closed pipe) did
// not tell monitoring anything: it exits 3 (UNKNOWN), in text and JSON
// alike, never 1, which a monitoring system reads as a WARNING.
func TestCheckThatCannotWriteItsReportIsUnknown(t *testing.T) {
	c := meshtest.NewCluster(t, "a")
	c.CreateRepo("a", "team/app", "alice")
	for _, args := range [][]string{{"check", "--no-probe"}, {"check", "--no-probe", "--json"}} {
		full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("open /dev/full: %v", err)
		}
		cmd := exec.Command(meshtest.Binary(), append([]string{"--config", c.Devices["a"].Config}, args...)...)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = full, &stderr
		err = cmd.Run()
		full.Close()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != 3 || !strings.Contains(stderr.String(), "could not write its report") {
			t.Errorf("gitmesh %s with stdout on a full disk: exit %d, stderr %q; want 3 (UNKNOWN) and why", strings.Join(args, " "), code, stderr.String())
		}
	}
}
