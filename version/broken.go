//go:build !gitmesh_broken_skipstage && !gitmesh_broken_earlyack

package version

// Deliberately broken builds, for the test of the randomised history
// test (e2e TestHistoryCatchesBrokenBuild): a binary built with the tag
// gitmesh_broken_skipstage acknowledges pushes without staging them on
// any peer (it claims they stored it); one built with
// gitmesh_broken_earlyack answers "ok" to every ref of a push before
// deciding and recording it. Both are false in every other build, so
// the compiler drops their code.
const (
	brokenSkipStage = false
	brokenEarlyAck  = false
)
