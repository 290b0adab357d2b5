package access

import (
	"fmt"
	"strings"
)

// CheckFrom refuses a cluster_from value that cannot stand, as written,
// inside sshd's from="..." option: a comma-separated list of host or
// address patterns (*, ?, a leading ! to negate, address/bits for CIDR).
// "" means no restriction.
func CheckFrom(patterns string) error {
	if patterns == "" {
		return nil
	}
	for _, p := range strings.Split(patterns, ",") {
		name := strings.TrimPrefix(p, "!")
		if name == "" {
			return fmt.Errorf("cluster_from %q holds an empty pattern; write addresses or host patterns separated by commas, without spaces, e.g. 10.0.0.0/24,192.0.2.7", patterns)
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_:/*?", r)) {
				return fmt.Errorf("cluster_from may hold only addresses and host patterns separated by commas (letters, digits and . - _ : / * ?, a leading !), not %q; e.g. 10.0.0.0/24,192.0.2.7", patterns)
			}
		}
	}
	return nil
}

// From limits an authorized_keys line to connections from patterns
// (checked by CheckFrom); "" leaves it as it is.
func From(patterns, line string) string {
	if patterns == "" {
		return line
	}
	return `from="` + patterns + `",` + line
}
