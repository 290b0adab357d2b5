// Package packaging is the Debian package: deb.sh (run by `make deb`)
// builds dist/gitmesh_VERSION_ARCH.deb with dpkg-deb from the files here
// (systemd units, maintainer scripts, examples, copyright), and the test
// builds it, runs lintian on it, installs it into the running system and
// removes it again. Nothing here is linked into gitmesh.
package packaging
