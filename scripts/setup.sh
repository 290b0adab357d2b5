#!/usr/bin/env bash
# Installs what gitmesh's tests and demo need, or says exactly what to run.
# Debian packages through apt-get (when root), Go modules through the proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null || need+=(git)
command -v make >/dev/null || need+=(make)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v psql >/dev/null || need+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
[ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
# Other git clients for the interoperability tests (e2e/clients_test.go):
# libgit2 through Debian's pygit2, and JGit (its jars; JGIT_CLASSPATH is
# set by the test). go-git comes from the module proxy (go mod download).
/usr/bin/python3 -c 'import pygit2' 2>/dev/null || need+=(python3-pygit2)
[ -x /usr/bin/jgit ] || need+=(jgit-cli)
[ -f /usr/share/java/org.eclipse.jgit.lfs.jar ] || need+=(libjgit-java)
command -v java >/dev/null || need+=(default-jre-headless)
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -x /usr/sbin/fcgiwrap ] || need+=(fcgiwrap)
command -v openssl >/dev/null || need+=(openssl)
# gitexec's durability test watches git's fsync and syncfs calls.
command -v strace >/dev/null || need+=(strace)
# make deb and its test (packaging/): lintian checks the package;
# promtool (in Debian's prometheus package) the alert rules in contrib/.
command -v adduser >/dev/null || need+=(adduser)   # the package's postinst
command -v lintian >/dev/null || need+=(lintian)
command -v promtool >/dev/null || need+=(prometheus)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  else
    echo "setup: missing ${need[*]}; run: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
# A fresh postgresql (pgbouncer, nginx) package may start a service on 5432 (6432, 80);
# the tests and the demo start their own, so those are left alone.
mkdir -p /run/sshd 2>/dev/null || true

if ! command -v go >/dev/null; then
  if [ -x /usr/local/go/bin/go ]; then
    echo "setup: Go is at /usr/local/go/bin; run: export PATH=\$PATH:/usr/local/go/bin" >&2
  else
    echo "setup: Go 1.26 or newer is missing; install it from the Go project and put it on PATH" >&2
  fi
  exit 1
fi
go mod download
