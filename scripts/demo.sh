#!/usr/bin/env bash
# make demo / make demo-stop: a throwaway gitmesh cluster on 127.0.0.1.
#
#   scripts/demo.sh start   PostgreSQL + three devices (a, b, c), each its own
#                           sshd, port, host key, repo root and authorized_keys;
#                           pushes to a and clones from c through ssh.
#   scripts/demo.sh stop    stops exactly the processes start started (by their
#                           pid files) and removes demo/run/.
#
# Everything lives under demo/run/ (gitignored). Starting again stops the
# previous demo first.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN=$ROOT/demo/run
DEVICES=(a b c)

say() { echo "demo: $*" >&2; }
die() { say "$*"; exit 1; }

# pid_of FILE WORD: the pid in FILE's first line when that process is alive
# and its command line contains WORD (so a recycled pid is never killed).
pid_of() {
  local pid
  [ -r "$1" ] || return 1
  pid=$(head -n1 "$1" | tr -dc 0-9)
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}

# stop_pid PID SIGNAL NAME: signal one process and wait (bounded) for it.
stop_pid() {
  local pid=$1 sig=$2 name=$3 i
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || { say "stopped $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  say "$name (pid $pid) ignored SIG$sig for 10s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

stop_processes() {
  local d pid
  for d in "${DEVICES[@]}"; do
    if pid=$(pid_of "$RUN/$d/sshd.pid" "$RUN/$d/sshd_config"); then
      stop_pid "$pid" TERM "sshd of device $d"
    fi
  done
  local pgdir
  pgdir=$(cat "$RUN/pgdir" 2>/dev/null || true)
  if [ -n "$pgdir" ] && pid=$(pid_of "$pgdir/data/postmaster.pid" postgres); then
    stop_pid "$pid" INT "postgres"   # SIGINT: fast shutdown
  fi
}

stop() {
  if [ ! -e "$RUN" ]; then
    say "no demo is running (no $RUN)"
    return 0
  fi
  stop_processes
  local pgdir
  pgdir=$(cat "$RUN/pgdir" 2>/dev/null || true)
  case "$pgdir" in /tmp/gitmesh-demo-pg.*) rm -rf "$pgdir" ;; esac
  rm -rf "$RUN"
  rmdir "$(dirname "$RUN")" 2>/dev/null || true
  say "demo stopped and $RUN removed"
}

# free_port: a loopback TCP port nobody answers on, not handed out before.
USED_PORTS=" "
free_port() {
  local p i
  for i in $(seq 1 500); do
    p=$((20000 + RANDOM % 40000))
    case "$USED_PORTS" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS="$USED_PORTS$p "
      echo "$p"
      return 0
    fi
  done
  die "found no free TCP port on 127.0.0.1"
}

pg_bindir() {
  local d
  if command -v initdb >/dev/null && [ -x "$(dirname "$(readlink -f "$(command -v initdb)")")/pg_ctl" ]; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  die "PostgreSQL server binaries not found; run: apt-get install -y postgresql (or make setup)"
}

# as_pg CMD...: run as the postgres user when root (PostgreSQL refuses root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local bin pgdir
  bin=$(pg_bindir)
  pgdir=$RUN/pg
  mkdir -p "$pgdir"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root, PostgreSQL needs the 'postgres' user; run: apt-get install -y postgresql"
    chown postgres: "$pgdir"
    if ! runuser -u postgres -- test -w "$pgdir"; then
      # The checkout is not reachable for the postgres user: use /tmp.
      rmdir "$pgdir"
      pgdir=$(mktemp -d /tmp/gitmesh-demo-pg.XXXXXX)
      chown postgres: "$pgdir"
    fi
  fi
  echo "$pgdir" >"$RUN/pgdir"
  PGPORT=$(free_port)
  as_pg "$bin/initdb" -D "$pgdir/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$RUN/initdb.log" 2>&1 ||
    die "initdb failed; see $RUN/initdb.log"
  as_pg "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 \
    -o "-p $PGPORT -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off" start >"$RUN/pg_ctl.log" 2>&1 ||
    die "PostgreSQL did not start; see $pgdir/postgres.log"
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres gitmesh
  DBURL="postgres://postgres@127.0.0.1:$PGPORT/gitmesh?sslmode=disable"
  say "PostgreSQL on 127.0.0.1:$PGPORT (data in $pgdir)"
}

keygen() { ssh-keygen -q -t ed25519 -N "" -C "$2" -f "$1"; }

start() {
  [ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing; run: apt-get install -y openssh-server (or make setup)"
  command -v ssh-keygen >/dev/null && command -v ssh >/dev/null || die "ssh is missing; run: apt-get install -y openssh-client"
  [ -x "$ROOT/gitmesh" ] || die "no gitmesh binary; run make demo (it builds one) or make build"
  if [ -e "$RUN" ]; then
    say "a previous demo is in $RUN; stopping it first"
    stop
  fi
  mkdir -p "$RUN"
  trap 'say "failed; stopping what was started (logs stay in $RUN until make demo-stop)"; stop_processes' ERR
  [ "$(id -u)" -ne 0 ] || mkdir -p /run/sshd
  cp "$ROOT/gitmesh" "$RUN/gitmesh"
  GM=$RUN/gitmesh
  LOGIN=$(id -un)

  start_postgres

  keygen "$RUN/cluster_key" gitmesh-cluster
  keygen "$RUN/alice" alice@demo
  : >"$RUN/known_hosts"
  declare -gA PORT
  local d
  for d in "${DEVICES[@]}"; do
    mkdir -p "$RUN/$d/repos"
    chmod 700 "$RUN/$d"
    PORT[$d]=$(free_port)
    keygen "$RUN/$d/ssh_host_ed25519_key" "host-$d"
    echo "[127.0.0.1]:${PORT[$d]} $(cut -d' ' -f1,2 "$RUN/$d/ssh_host_ed25519_key.pub")" >>"$RUN/known_hosts"
    cat >"$RUN/$d/gitmesh.toml" <<EOF
database_url = "$DBURL"
device = "$d"
repo_root = "$RUN/$d/repos"
log_file = "$RUN/$d/gitmesh.log"
cluster_key = "$RUN/cluster_key"
known_hosts = "$RUN/known_hosts"
EOF
    cat >"$RUN/$d/sshd_config" <<EOF
# Device $d of the gitmesh demo. Production: see README.md, "sshd and authorized_keys".
Port ${PORT[$d]}
ListenAddress 127.0.0.1
HostKey $RUN/$d/ssh_host_ed25519_key
PidFile $RUN/$d/sshd.pid
AuthorizedKeysFile $RUN/$d/authorized_keys
PermitRootLogin forced-commands-only
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AcceptEnv GIT_PROTOCOL
PermitUserEnvironment no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
UseDNS no
EOF
  done

  local gma=("$GM" --config "$RUN/a/gitmesh.toml")
  "${gma[@]}" migrate >/dev/null
  for d in "${DEVICES[@]}"; do
    "${gma[@]}" device add "$d" --url "ssh://$LOGIN@127.0.0.1:${PORT[$d]}"
  done
  "${gma[@]}" user add alice
  "${gma[@]}" key add alice "$RUN/alice.pub" >/dev/null
  "${gma[@]}" key add --cluster "$RUN/cluster_key.pub" >/dev/null
  "${gma[@]}" repo create team/app
  "${gma[@]}" grant alice team/app write

  for d in "${DEVICES[@]}"; do
    "$GM" --config "$RUN/$d/gitmesh.toml" authorized-keys >"$RUN/$d/authorized_keys"
    chmod 600 "$RUN/$d/authorized_keys"
    /usr/sbin/sshd -f "$RUN/$d/sshd_config" -E "$RUN/$d/sshd.log" ||
      die "sshd of device $d did not start; see $RUN/$d/sshd.log"
  done
  for d in "${DEVICES[@]}"; do
    local i
    for i in $(seq 1 100); do
      pid_of "$RUN/$d/sshd.pid" "$RUN/$d/sshd_config" >/dev/null && break
      sleep 0.1
    done
    pid_of "$RUN/$d/sshd.pid" "$RUN/$d/sshd_config" >/dev/null || die "sshd of device $d is not running; see $RUN/$d/sshd.log"
    say "device $d: sshd on 127.0.0.1:${PORT[$d]} (pid $(head -n1 "$RUN/$d/sshd.pid"))"
  done

  SSHCMD="ssh -F /dev/null -i $RUN/alice -o IdentitiesOnly=yes -o UserKnownHostsFile=$RUN/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes"
  printf 'export GIT_SSH_COMMAND=%q\n' "$SSHCMD" >"$RUN/env.sh"
  export GIT_SSH_COMMAND="$SSHCMD"
  export GIT_AUTHOR_NAME=Alice GIT_AUTHOR_EMAIL=alice@example.com GIT_COMMITTER_NAME=Alice GIT_COMMITTER_EMAIL=alice@example.com
  local url_a="ssh://$LOGIN@127.0.0.1:${PORT[a]}/team/app.git" url_b="ssh://$LOGIN@127.0.0.1:${PORT[b]}/team/app.git"
  local url_c="ssh://$LOGIN@127.0.0.1:${PORT[c]}/team/app.git"

  git init -q -b main "$RUN/work"
  echo "hello from the gitmesh demo" >"$RUN/work/README"
  git -C "$RUN/work" add README
  git -C "$RUN/work" commit -q -m "first commit"
  git -C "$RUN/work" push -q "$url_a" main
  say "pushed to device a: before answering, a stored it on b and c over ssh with the cluster key"
  git clone -q "$url_c" "$RUN/clone-c"
  [ "$(git -C "$RUN/work" rev-parse HEAD)" = "$(git -C "$RUN/clone-c" rev-parse HEAD)" ] ||
    die "the clone from c does not hold the commit pushed to a"
  say "cloned from device c: it serves the push a acknowledged"
  "$RUN/gitmesh" --config "$RUN/a/gitmesh.toml" status team/app >&2
  trap - ERR

  cat <<EOF

gitmesh demo is running: PostgreSQL and three devices on 127.0.0.1.

  clone URLs of team/app (user alice; every device serves every push):
    a: $url_a
    b: $url_b
    c: $url_c

  use alice's key:
    export GIT_SSH_COMMAND="$SSHCMD"
    (or: source $RUN/env.sh)

  try:
    git clone $url_b /tmp/app-from-b
    $GM --config $RUN/a/gitmesh.toml status team/app

  stop it: make demo-stop    (stops exactly these processes, by their pid files)
EOF
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) die "usage: scripts/demo.sh start|stop" ;;
esac
