// Package e2e runs gitmesh end to end: real PostgreSQL, real git, the
// gitmesh binary run as sshd would run it.
package e2e
