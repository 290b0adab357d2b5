#!/usr/bin/env bash
# make deb: builds dist/gitmesh_VERSION_ARCH.deb with dpkg-deb.
#
#   packaging/deb.sh version   the Debian version of this checkout
#   packaging/deb.sh build     the package (prints its path)
#
# dpkg-deb rather than nfpm or debhelper: it is in every Debian system
# already (nothing to fetch or pin), and a binary package of one static Go
# program, five units and three maintainer scripts is a short script.
#
# The version is the one `gitmesh --version` prints: `make build` stamps
# `git describe --tags --always --dirty`; here the same description is made
# a valid Debian version (v1.2.0-3-g0123abc -> 1.2.0+3.g0123abc; without a
# tag, 0123abc -> 0~g0123abc) and stamped instead.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

debian_version() {
  local v
  v=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo unknown)}
  case $v in
    v[0-9]*) v=${v#v} ;;
    [0-9]*.*) ;;
    *) v=0~g$v ;;
  esac
  v=${v/-/+}   # the first hyphen (commits since the tag) starts a local part
  v=${v//-/.}  # a Debian version without a revision holds no other hyphen
  printf '%s\n' "${v//[^A-Za-z0-9.+~]/.}"
}

build() {
  local version arch pkg root doc out
  version=$(debian_version)
  arch=$(dpkg --print-architecture)
  pkg=gitmesh_${version}_${arch}
  root=dist/$pkg
  out=dist/$pkg.deb
  rm -rf "$root" "$out" dist/gitmesh_*_"$arch".deb  # one package in dist/: apt-get install ./dist/gitmesh_*.deb
  MAINTAINER=${DEBFULLNAME:-gitmesh developers}" <${DEBEMAIL:-gitmesh@example.org}>"
  mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/gitmesh" "$root/lib/systemd/system"
  doc=$root/usr/share/doc/gitmesh
  mkdir -p "$doc/examples" "$root/usr/share/man/man1"

  # The Makefile's linker flags with this version; stripped (-s -w) as
  # Debian ships binaries. Without cgo: no libc version to depend on, and a
  # static binary. Not position-independent: sshd starts one `gitmesh
  # serve` per connection, and a PIE's start-up relocations (about 240
  # more page faults) cost it a millisecond of CPU, an eighth of a small
  # read's (README "Speed"); gitmesh is memory-safe Go without cgo.
  local ldflags
  ldflags=$(make -s --no-print-directory ldflags VERSION="$version")
  CGO_ENABLED=0 go build -trimpath -buildvcs=false -tags urfave_cli_no_docs \
    -ldflags "$ldflags -s -w" -o "$root/usr/bin/gitmesh" .

  install -m 755 packaging/write-metrics "$root/usr/lib/gitmesh/write-metrics"
  # lintian knows Go binaries are static, but only from a source package's
  # Build-Depends, which a dpkg-deb build has not.
  mkdir -p "$root/usr/share/lintian/overrides"
  echo "gitmesh: statically-linked-binary [usr/bin/gitmesh]" >"$root/usr/share/lintian/overrides/gitmesh"
  chmod 644 "$root/usr/share/lintian/overrides/gitmesh"
  install -m 644 packaging/systemd/* "$root/lib/systemd/system/"
  install -m 644 packaging/examples/gitmesh.toml packaging/examples/sshd_config "$doc/examples/"
  gzip -9n <README.md >"$doc/README.md.gz"
  gzip -9n <packaging/gitmesh.1 >"$root/usr/share/man/man1/gitmesh.1.gz"
  changelog "$version" | gzip -9n >"$doc/changelog.gz"
  copyright "$root/usr/bin/gitmesh" >"$doc/copyright"

  install -m 755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
  (cd "$root" && find usr lib -type f -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
  chmod 644 "$root/DEBIAN/md5sums"
  cat >"$root/DEBIAN/control" <<CONTROL
Package: gitmesh
Version: $version
Architecture: $arch
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: adduser, git, openssh-client
Recommends: openssh-server
Suggests: postgresql, pgbouncer, prometheus-node-exporter
Section: vcs
Priority: optional
Description: multi-master git cluster of plain git hosts behind OpenSSH
 gitmesh makes a few ordinary git hosts behave as one multi-master
 cluster: sshd runs "gitmesh serve USER" as the forced command of each
 key; PostgreSQL records which host holds which version of each
 repository and orders the work with advisory locks; a push is
 acknowledged once a majority of the hosts holds it.
 .
 This package installs the program, systemd units for replication,
 metrics (node_exporter's textfile collector) and nightly gc, and
 creates the git system account. Examples are in
 /usr/share/doc/gitmesh/examples.
CONTROL
  find "$root" -type d -exec chmod 755 {} +
  dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
  rm -rf "$root"
  echo "$out"
}

# changelog VERSION: a one-entry changelog for the native package.
changelog() {
  local date
  date=$(git log -1 --format=%cD 2>/dev/null || date -R)
  cat <<CHANGELOG
gitmesh ($1) unstable; urgency=medium

  * Built from $(git rev-parse HEAD 2>/dev/null || echo "a source tree without git").
    See the README for what changed.

 -- $MAINTAINER  $date
CHANGELOG
}

# copyright BINARY: the machine-readable copyright file, with the license of
# every Go module linked into BINARY, from the module cache.
copyright() {
  local mod ver dir lic short
  cat <<HEAD
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: gitmesh
Comment: /usr/bin/gitmesh is a static Go program; it contains the Go
 standard library and the Go modules below, each under its own license.

Files: *
Copyright: the gitmesh authors
License: gitmesh
 gitmesh itself has not been given a license yet: all rights are
 reserved by its authors, who may be asked for permission.

Files: go/*
Copyright: The Go Authors
License: BSD-3-Clause
HEAD
  printf '%s\n' "$(fold_license "$(go env GOROOT)/LICENSE")"
  go version -m "$1" | awk '$1 == "dep" { print $2, $3 }' | while read -r mod ver; do
    dir=$(go env GOMODCACHE)/$(echo "$mod" | sed 's/[A-Z]/!\L&/g')@$ver
    lic=$(ls "$dir"/LICENSE* "$dir"/COPYING* 2>/dev/null | head -n1 || true)
    [ -n "$lic" ] || { echo "deb.sh: no license file in $dir" >&2; exit 1; }
    if grep -q "Permission is hereby granted, free of charge" "$lic"; then short=Expat
    elif grep -q "Redistribution and use in source and binary forms" "$lic"; then short=BSD-3-Clause
    elif grep -q "Apache License" "$lic"; then short=Apache-2.0
    else short=other
    fi
    printf '\nFiles: go-modules/%s/*\nCopyright: %s\nLicense: %s\n' "$mod" \
      "$(grep -m1 -i 'copyright' "$lic" | sed 's/^[[:space:]]*//; s/^Copyright[[:space:]]*//I' || echo "the $mod authors")" "$short"
    fold_license "$lic"
  done
}

# fold_license FILE: FILE's text as a DEP-5 continuation block.
fold_license() {
  sed 's/[[:space:]]*$//; s/^$/./; s/^/ /' "$1"
}

case ${1:-} in
  version) debian_version ;;
  build) build ;;
  *) echo "usage: $0 version|build" >&2; exit 2 ;;
esac
