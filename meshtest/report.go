package meshtest

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
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

// pidScript is SSHScript that first writes serve's pid (its own, before
// exec) to the file MESHTEST_SERVE_PID names.
func (d *Device) pidScript(user string) string {
	path := filepath.Join(d.c.Dir, fmt.Sprintf("ssh-pid-%s-%s", d.Name, user))
	scriptMu.Lock()
	defer scriptMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	script := fmt.Sprintf(`#!/bin/sh
for last; do :; done
echo $$ > "$MESHTEST_SERVE_PID"
SSH_ORIGINAL_COMMAND=$last exec %q --config %q serve %q
`, d.c.binary(), d.Config, user)
	tmp := fmt.Sprintf("%s.%d.tmp", path, rand.Int64())
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		d.c.T.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		d.c.T.Fatal(err)
	}
	return path
}

// PushAnswered runs a git push like Git and calls answered with the pid
// of its serve the moment git has read the push's whole report (from
// git's packet trace), before git waits for serve to end: a test kills
// serve there to check that what was answered was already recorded.
func (d *Device) PushAnswered(user, dir string, answered func(servePID int), args ...string) Result {
	pidFile := filepath.Join(d.c.Dir, fmt.Sprintf("serve-pid-%d", rand.Int64()))
	defer os.Remove(pidFile)
	pr, pw, err := os.Pipe()
	if err != nil {
		return Result{Code: -1, Stderr: err.Error()}
	}
	defer pr.Close()
	cmd := d.GitCmd(user, dir, args...)
	cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND="+d.pidScript(user), "MESHTEST_SERVE_PID="+pidFile, "GIT_TRACE_PACKET=3")
	cmd.ExtraFiles = []*os.File{pw}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		pw.Close()
		return Result{Code: -1, Stderr: err.Error()}
	}
	pw.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		// The report: "push< unpack ok", a line per ref, "push< 0000";
		// over side-band, git also reads the band's own "sideband< 0000",
		// traced by the demultiplexer's thread before or after the report.
		report, sideband, ended, flushed := false, false, false, false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.Contains(line, "sideband< 0000"):
				flushed = true
			case strings.Contains(line, "sideband<"):
				sideband = true
			case strings.Contains(line, "push< unpack "):
				report = true
			case report && strings.HasSuffix(line, "push< 0000"):
				report, ended = false, true
			}
			if !ended || (sideband && !flushed) {
				continue
			}
			ended, flushed = false, false
			if b, err := os.ReadFile(pidFile); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					answered(pid)
				}
			}
		}
	}()
	err = cmd.Wait()
	// serve's children may hold the pipe open (a detached converge): stop
	// reading once git is done.
	pr.Close()
	<-done
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		r.Code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		}
	}
	return r
}
