package gitexec

import "strings"

// publicReason says what kind of failure a git run's stderr shows, in
// words fit for any user: no path, host, address or key name. op is
// git's subcommand.
func publicReason(op, stderr string) string {
	for _, k := range []struct{ in, why string }{
		{"REMOTE HOST IDENTIFICATION HAS CHANGED", "its host key does not match the cluster's known_hosts file"},
		{"has changed and you have requested strict checking", "its host key does not match the cluster's known_hosts file"},
		{"host key is known for", "its host key is not in the cluster's known_hosts file"},
		{"Host key verification failed", "host key verification failed"},
		{"Permission denied (publickey", "it refused the cluster key"},
		{"Connection refused", "it cannot be reached"},
		{"Connection timed out", "it cannot be reached"},
		{"No route to host", "it cannot be reached"},
		{"Could not resolve hostname", "it cannot be reached"},
		{"Network is unreachable", "it cannot be reached"},
		{"Connection closed by", "it cannot be reached"},
		{"Connection reset", "it cannot be reached"},
		{"Identity file", "the cluster key cannot be used"},
		{"Load key", "the cluster key cannot be used"},
		{"does not appear to be a git repository", "its copy is missing"},
		{"repository not found", "its copy is missing"},
		{"fsck", "objects failed git's checks"},
		{"index-pack failed", "objects failed git's checks"},
	} {
		if strings.Contains(stderr, k.in) {
			return k.why
		}
	}
	return "git " + op + " failed"
}

// failureReason is the sentence that explains a failed git run, read from
// its stderr: ssh's own complaint when there is one (host key, refused key,
// unreachable peer), otherwise the last line that is not git's boilerplate
// ("Could not read from remote repository. Please make sure...").
func failureReason(stderr string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	find := func(s string) string {
		for _, l := range lines {
			if strings.Contains(l, s) {
				return l
			}
		}
		return ""
	}
	switch {
	case find("REMOTE HOST IDENTIFICATION HAS CHANGED") != "", find("has changed and you have requested strict checking") != "":
		return "the peer's host key does not match its entry in the cluster's known_hosts file (host key verification failed); " +
			"if the peer's host key really changed, replace its line in that file"
	case find("host key is known for") != "":
		return "the peer's host key is not in the cluster's known_hosts file (host key verification failed); add it there"
	case find("Host key verification failed") != "":
		return "host key verification against the cluster's known_hosts file failed"
	case find("Permission denied (publickey") != "":
		return "the peer refused the cluster key (permission denied); its authorized_keys needs the cluster key's line from 'gitmesh authorized-keys'"
	}
	for _, s := range []string{"Connection refused", "Connection timed out", "No route to host",
		"Could not resolve hostname", "Network is unreachable", "Connection closed by", "Connection reset"} {
		if l := find(s); l != "" {
			return "cannot reach the peer (" + l + ")"
		}
	}
	for _, s := range []string{"Identity file", "Load key"} {
		if l := find(s); l != "" {
			return "the cluster key cannot be used (" + l + ")"
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if strings.HasPrefix(l, "fatal: Could not read from remote repository") ||
			strings.HasPrefix(l, "Please make sure you have the correct access rights") ||
			strings.HasPrefix(l, "and the repository exists") {
			continue
		}
		return l
	}
	return ""
}
