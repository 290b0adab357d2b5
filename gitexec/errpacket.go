package gitexec

import (
	"fmt"
	"strings"
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
