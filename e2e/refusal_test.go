package e2e

import (
	"fmt"
	"strings"

	"gitmesh/meshtest"
)

// errPacket is git's pkt-line "ERR <line>": how serve refuses a git
// client's request before the protocol begins, besides saying it on
// stderr (JGit drops ssh's stderr; every client reads this).
func errPacket(line string) string {
	return fmt.Sprintf("%04xERR %s\n", len(line)+4+4+1, line)
}

// onlyRefusal reports whether serve's stdout holds nothing but the
// refusal its stderr says: nothing at all (a malformed request), or the
// ERR packet of that same one line (a git client's request refused
// before git spoke).
func onlyRefusal(r meshtest.Result) bool {
	return r.Stdout == "" || r.Stdout == errPacket(strings.TrimSuffix(r.Stderr, "\n"))
}
