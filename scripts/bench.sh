#!/usr/bin/env bash
# Runs the benchmarks as a dedicated account, gitmesh-bench, when started as
# root: every sshd in them then logs in as that account, whose shell is
# /bin/sh with no start-up files, as a production git account's would be.
# Root's own shell start-up (an rc file, pyenv) would add tens of
# milliseconds to every session and hide gitmesh's own cost. Arguments go
# to `go test` (make bench passes -tags, -bench and -benchtime).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  exec go test "$@" ./bench/
fi
account=gitmesh-bench
home=/var/lib/$account
if ! id "$account" >/dev/null 2>&1; then
  useradd --system --create-home --home-dir "$home" --shell /bin/sh "$account"
fi
# A password field starting with ! locks the account for sshd when UsePAM
# is off; * allows key logins only.
usermod -p '*' "$account"
# The account reads this checkout (it must be able to reach it) and builds
# into caches of its own.
for d in "$PWD" "$(dirname "$PWD")"; do
  if ! runuser -u "$account" -- test -r "$d/." -a -x "$d/."; then
    echo "bench: $account cannot read $d; make it readable (chmod o+rx) or run make bench as an ordinary user" >&2
    exit 1
  fi
done
# BenchmarkPushIntoGitGit pushes the git/git clone GITMESH_BENCH_GITGIT
# names (bench/gitgit_test.go says how to get one); the account must read
# it. Unset, that benchmark fails saying so.
gitgit=${GITMESH_BENCH_GITGIT:-}
if [ -n "$gitgit" ] && ! runuser -u "$account" -- test -r "$gitgit/HEAD" -a -x "$gitgit/objects"; then
  echo "bench: $account cannot read a repository at GITMESH_BENCH_GITGIT=$gitgit (missing, or not readable by it: chmod -R o+rX)" >&2
  exit 1
fi
exec runuser -u "$account" -- env -i PATH="$PATH" HOME="$home" \
  GOCACHE="$home/.cache/go-build" GOMODCACHE="$home/go/pkg/mod" GOFLAGS=-buildvcs=false \
  GOPROXY="$(go env GOPROXY)" TMPDIR=/tmp GITMESH_BENCH_GITGIT="$gitgit" \
  go test "$@" ./bench/
