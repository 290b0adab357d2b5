package meshtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ServeExitLine starts the line GitReporting's ssh command adds to git's
// stderr once serve has exited: "meshtest: serve exited N" (N is 128 plus
// the signal for a killed serve, as sh reports it).
const ServeExitLine = "meshtest: serve exited "

// reportingScript is SSHScript with serve run as a child whose exit
// status is reported on stderr: git itself only says that the remote end
// hung up, whatever serve's documented exit code was.
func (d *Device) reportingScript(user string) string {
	path := filepath.Join(d.c.Dir, fmt.Sprintf("ssh-report-%s-%s", d.Name, user))
	scriptMu.Lock()
	defer scriptMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	script := fmt.Sprintf(`#!/bin/sh
for last; do :; done
SSH_ORIGINAL_COMMAND=$last %q --config %q serve %q
rc=$?
echo "%s$rc" >&2
exit $rc
`, d.c.binary(), d.Config, user, ServeExitLine)
	tmp := fmt.Sprintf("%s.%d.tmp", path, rand.Int64())
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		d.c.T.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		d.c.T.Fatal(err)
	}
	return path
}

// GitReporting is Git with serve's own exit status: it returns git's
// result (with the report line removed from its stderr) and the exit
// status of the last serve it ran, or -1 when none reported one.
func (d *Device) GitReporting(user, dir string, args ...string) (Result, int) {
	cmd := d.GitCmd(user, dir, args...)
	cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND="+d.reportingScript(user))
	r := run(cmd)
	code := -1
	var kept []string
	for _, line := range strings.SplitAfter(r.Stderr, "\n") {
		if rest, ok := strings.CutPrefix(line, ServeExitLine); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
				code = n
			}
			continue
		}
		kept = append(kept, line)
	}
	r.Stderr = strings.Join(kept, "")
	return r, code
}
