// Package proc says whether a process of this device still runs: the one
// test self-repair uses for a dead writer and the hook relay for a dead
// serve's leftovers. It knows nothing else of gitmesh.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
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
