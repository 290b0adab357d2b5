// Package proc says whether a process of this device still runs: the one
// test self-repair uses for a dead writer and the hook relay for a dead
// serve's leftovers; and which processes work in a directory (a copy
// about to be removed). It knows nothing else of gitmesh.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Alive reports whether pid runs on this device. kill(pid, 0) decides,
// and a process we may not signal (EPERM) exists too; a zombie (killed,
// not yet reaped) does not run. Any other doubt counts as running: a
// caller that acts on a dead process must never act on a live one (a
// reused pid only delays it). A pid of 0 or less names no process.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: trust kill
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// Using lists the processes of this device whose working directory is
// dir or lies under it (a git serving a copy chdirs into it, and its
// children inherit that). Processes whose /proc entry cannot be read
// (another user's) are not listed. Without /proc, none are.
func Using(dir string) ([]int, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err != nil {
			continue
		}
		if cwd == real || strings.HasPrefix(cwd, real+"/") {
			out = append(out, pid)
		}
	}
	return out, nil
}
