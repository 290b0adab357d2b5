//go:build gitmesh_broken_skipstage

package version

// A deliberately broken build: see broken.go.
const (
	brokenSkipStage = true
	brokenEarlyAck  = false
)
