package cli

import "runtime/debug"

// Set at build time by the Makefile:
//
//	-ldflags "-X gitmesh/cli.stampVersion=$(git describe --tags --always --dirty) -X gitmesh/cli.stampCommit=$(git rev-parse HEAD)"
//
// A plain `go build` leaves them empty; then the VCS stamp Go records
// itself (vcs.revision, unless -buildvcs=false) names the commit.
var stampVersion, stampCommit string

// buildVersion is what `gitmesh --version` prints after "gitmesh version".
func buildVersion() string {
	info, _ := debug.ReadBuildInfo()
	return versionString(stampVersion, stampCommit, info)
}

// versionString prefers the stamped version and commit, then Go's own
// build information; it says "unknown commit" rather than nothing.
func versionString(version, commit string, info *debug.BuildInfo) string {
	if info != nil && version == "" {
		version = info.Main.Version
	}
	if info != nil && commit == "" {
		commit = vcsCommit(info)
	}
	if version == "" {
		version = "(devel)"
	}
	if commit == "" {
		return version + " (unknown commit: built without the Makefile's -ldflags or Go's VCS stamp)"
	}
	return version + " (commit " + commit + ")"
}

// vcsCommit is the revision Go stamped, marked when the tree was modified.
func vcsCommit(info *debug.BuildInfo) string {
	var rev, modified string
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			modified = kv.Value
		}
	}
	if rev != "" && modified == "true" {
		rev += ", modified"
	}
	return rev
}
