package gitexec

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrPacket is git's refusal before the protocol begins: a pkt-line
// "ERR <message>" where a client expects the first line of the ref
// advertisement (or, for git-upload-archive, its ACK). Every git client
// reads it: git dies with "remote error: <message>", JGit, libgit2 and
// go-git report the message, whereas a sentence on ssh's stderr reaches
// only clients that forward it (JGit does not). Only for a connection
// whose stdout git has not written to yet.
func ErrPacket(message string) []byte {
	line := "ERR " + strings.Join(strings.Fields(message), " ")
	const max = 65520 - 4 - 1 // LARGE_PACKET_MAX, less the length and newline
	if len(line) > max {
		line = line[:max]
	}
	return fmt.Appendf(nil, "%04x%s\n", len(line)+5, line)
}

// Refuse tells a git client line both ways: on stderr, then as an ERR
// packet on stdout. Between the two it waits (at most a second) until
// whoever reads stderr, sshd, has taken the line, so that the client's
// ssh gets it first: git then prints gitmesh's line before its own
// "fatal: remote error: ..." instead of in either order.
func Refuse(stdout, stderr *os.File, line string) {
	fmt.Fprintln(stderr, line)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		// TIOCINQ is FIONREAD: the bytes in the pipe not read yet.
		if n, err := unix.IoctlGetInt(int(stderr.Fd()), unix.TIOCINQ); err != nil || n == 0 {
			break // not a pipe (a terminal, a file), or drained
		}
	}
	stdout.Write(ErrPacket(line))
}
