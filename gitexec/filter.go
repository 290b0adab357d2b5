package gitexec

import "strings"

// partialCloneConfig lets a client that speaks protocol v2 clone with
// --filter (git clone --filter=blob:none) and fetch what it left out
// later: v2's fetch takes wants by object id without more settings. A
// protocol v0 client gets no filter (git then clones in full, saying so):
// its later fetches by id would need uploadpack.allowReachableSHA1InWant,
// which counts hidden refs as tips and so would serve refs/gitmesh/stage/,
// a push staged but not yet recorded.
func partialCloneConfig(verb Verb, env []string) []string {
	if verb != UploadPack || !speaksV2(env) {
		return nil
	}
	return []string{"uploadpack.allowFilter=true"}
}

// speaksV2 reports whether the client asked for protocol v2 in GIT_PROTOCOL
// (colon-separated key=value pairs, as Env lets them through).
func speaksV2(env []string) bool {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GIT_PROTOCOL="); ok {
			for _, p := range strings.Split(v, ":") {
				if p == "version=2" {
					return true
				}
			}
		}
	}
	return false
}
