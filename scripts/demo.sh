#!/usr/bin/env bash
# make demo / make demo-stop: a throwaway gitmesh cluster on 127.0.0.1.
#
#   scripts/demo.sh start     PostgreSQL, PgBouncer (session mode) in front of
#                             it, and DEVICES devices (default 3: a, b, c), each its own
#                             sshd asking gitmesh for keys (AuthorizedKeysCommand)
#                             and, with nginx and fcgiwrap installed, its HTTP
#                             front door (gitmesh http-backend, tokens checked
#                             by gitmesh http-auth); pushes to a, clones from
#                             c, pushes over HTTP to b, shows what the cluster did.
#   scripts/demo.sh add-user NAME PUBKEY-FILE
#                             a user with that key and write access to
#                             team/app, on every device at once.
#   scripts/demo.sh stop-device D
#                             stops device D's sshd: the device is down (its
#                             copies fall behind; pushes go on with the others).
#   scripts/demo.sh start-device D
#                             brings device D back: its sshd again; it catches
#                             up on its next read (or gitmesh sync on it).
#   scripts/demo.sh stop      stops exactly the processes start started (by
#                             their pid files) and removes demo/run/.
#
# demo/run/ holds this run (database, repositories, configs, logs);
# demo/keep/ what stays between runs so that clones keep working: the ports,
# the host keys, alice's key, the cluster key, known_hosts and an ssh config.
# Starting again stops the previous demo first. Both are gitignored.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO=$ROOT/demo
BASE=$DEMO
# Set by start when the git account could not use demo/ (a checkout under
# /root, say): the files then live where it can.
[ -r "$DEMO/base" ] && BASE=$(cat "$DEMO/base")
RUN=$BASE/run
KEEP=$BASE/keep
# How many devices: DEVICES=N (make demo DEVICES=5), 1 to 9, named a, b,
# c...; a running demo's own number is in demo/run/devices.
ALL_DEVICES=(a b c d e f g h i)
COUNT=${DEVICES:-3}
[ -r "$RUN/devices" ] && [ "${1:-}" != start ] && COUNT=$(tr -dc 0-9 <"$RUN/devices")
[[ $COUNT =~ ^[1-9]$ ]] || {
  echo "demo: DEVICES must be a number of devices from 1 to 9, not '$COUNT'" >&2
  exit 2
}
DEVICES=("${ALL_DEVICES[@]:0:$COUNT}")
REPO=team/app
# More repositories when there are more devices than copies (three each),
# so that placement has something to spread.
EXTRA_REPOS=(team/api team/web team/docs team/ops)
# Fixed ports below the ephemeral range, so URLs stay the same run after run.
declare -A DEFAULT_PORT=([postgres]=25432 [pgbouncer]=26432 [fcgi]=28080)
declare -A PORT
PORT_NAMES=("${DEVICES[@]}" postgres pgbouncer fcgi)
for i in "${!ALL_DEVICES[@]}"; do
  DEFAULT_PORT[${ALL_DEVICES[$i]}]=$((22201 + i))
  DEFAULT_PORT[http${ALL_DEVICES[$i]}]=$((28081 + i))
done
for d in "${DEVICES[@]}"; do PORT_NAMES+=("http$d"); done

say() { echo "demo: $*" >&2; }
die() {
  say "$*"
  exit 1
}

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
    [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || {
      say "stopped $name (pid $pid)"
      return 0
    }
    sleep 0.1
  done
  say "$name (pid $pid) ignored SIG$sig for 10s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

stop_processes() {
  local d pid
  if pid=$(pid_of "$RUN/web/nginx.pid" nginx); then
    stop_pid "$pid" TERM "nginx"
  fi
  if pid=$(pid_of "$RUN/web/fcgiwrap.pid" fcgiwrap); then
    # Its preforked workers outlive it: they are stopped by their ids too.
    local workers
    workers=$(ps -o pid= --ppid "$pid" | tr -dc '0-9 \n')
    stop_pid "$pid" TERM "fcgiwrap"
    for d in $workers; do stop_pid "$d" TERM "fcgiwrap worker"; done
  fi
  for d in "${ALL_DEVICES[@]}"; do
    if pid=$(pid_of "$RUN/$d/sshd.pid" "$RUN/$d/sshd_config"); then
      stop_pid "$pid" TERM "sshd of device $d"
    fi
  done
  if pid=$(pid_of "$RUN/pg/pgbouncer.pid" pgbouncer); then
    stop_pid "$pid" TERM "pgbouncer"   # SIGTERM: immediate shutdown
  fi
  if pid=$(pid_of "$RUN/pg/data/postmaster.pid" postgres); then
    stop_pid "$pid" INT "postgres"     # SIGINT: fast shutdown
  fi
}

stop() {
  if [ ! -e "$RUN" ]; then
    say "no demo is running (no $RUN)"
    return 0
  fi
  stop_processes
  rm -rf "$RUN"
  say "demo stopped and $RUN removed; ports and keys stay in $KEEP for the next run (rm -rf $KEEP forgets them)"
}

# port_busy PORT: something answers on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_taken PORT: a server without SO_REUSEADDR could not bind
# 127.0.0.1:PORT now: something answers there, or a socket of a finished
# run still holds it (TIME-WAIT, after a demo stopped and started again).
port_taken() {
  port_busy "$1" && return 0
  command -v ss >/dev/null && ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .
}

# free_port: a loopback TCP port nobody answers on, not handed out before.
free_port() {
  local p i
  for i in $(seq 1 500); do
    p=$((20000 + RANDOM % 10000))
    case " ${PORT[*]} " in *" $p "*) continue ;; esac
    port_taken "$p" || {
      echo "$p"
      return 0
    }
  done
  die "found no free TCP port on 127.0.0.1"
}

# choose_ports: last run's ports (demo/keep/ports), else the defaults; a
# port another program took meanwhile is replaced, and the user told.
choose_ports() {
  local k v name
  if [ -r "$KEEP/ports" ]; then
    while IFS='=' read -r k v; do
      [[ $k =~ ^[a-z]+$ && $v =~ ^[0-9]+$ ]] && PORT[$k]=$v
    done <"$KEEP/ports"
  fi
  for name in "${PORT_NAMES[@]}"; do
    PORT[$name]=${PORT[$name]:-${DEFAULT_PORT[$name]}}
    # sshd, nginx, PostgreSQL and PgBouncer bind over TIME-WAIT; fcgiwrap
    # does not, and its port is the demo's own business.
    if port_busy "${PORT[$name]}" || { [ "$name" = fcgi ] && port_taken "${PORT[$name]}"; }; then
      v=$(free_port)
      case "$name" in
      postgres | pgbouncer | fcgi) say "port ${PORT[$name]} ($name) is taken by another program; using $v" ;;
      http?) say "port ${PORT[$name]} (HTTP of device ${name#http}) is taken by another program; using $v (clones that name the old port need 'git remote set-url')" ;;
      *) say "port ${PORT[$name]} (device $name) is taken by another program; using $v (clones that name the old port need 'git remote set-url')" ;;
      esac
      PORT[$name]=$v
    fi
  done
  : >"$KEEP/ports"
  for name in "${PORT_NAMES[@]}"; do echo "$name=${PORT[$name]}" >>"$KEEP/ports"; done
}

pg_bindir() {
  local d
  if command -v initdb >/dev/null && [ -x "$(dirname "$(readlink -f "$(command -v initdb)")")/pg_ctl" ]; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    [ -x "$d/initdb" ] && {
      echo "$d"
      return
    }
  done
  die "PostgreSQL server binaries not found; run: apt-get install -y postgresql (or make setup)"
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# as_pg CMD...: run as the postgres user when root (PostgreSQL and
# PgBouncer refuse root).
as_pg() { if is_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

# as_login CMD...: run as the account users log in as (git when root).
as_login() { if is_root && [ "$LOGIN" != root ]; then (cd / && runuser -u "$LOGIN" -- "$@"); else "$@"; fi; }

# choose_login: users log in as git, as the README says, when the demo runs
# as root (an existing git account, or a system account made for it);
# otherwise sshd cannot switch users and they log in as whoever runs it.
choose_login() {
  LOGIN_NOTE=""
  if ! is_root; then
    LOGIN=$(id -un)
    LOGIN_NOTE="not run as root, so its sshd can log users in only as $LOGIN, not as git (production: README, 'The git account')"
    return
  fi
  if ! id git >/dev/null 2>&1; then
    useradd --system --create-home --home-dir /var/lib/gitmesh-demo-git --shell /bin/sh --comment "gitmesh demo" git
    usermod -p '*' git # no password, yet not locked: sshd refuses every key of a locked account
    say "created the system account git (home /var/lib/gitmesh-demo-git) that users log in as; make demo-stop keeps it, 'userdel -r git' removes it"
  fi
  case "$(getent passwd git | cut -d: -f7)" in
  */nologin | */false | */git-shell) die "the account git has the shell $(getent passwd git | cut -d: -f7), which cannot run gitmesh's forced command; run: usermod -s /bin/sh git" ;;
  esac
  case "$(getent shadow git | cut -d: -f2)" in
  '!'*) die "the account git is locked, so sshd refuses its keys; run: usermod -p '*' git (no password, not locked)" ;;
  esac
  LOGIN=git
}

# root_safe DIR: DIR and every directory above it belong to root and are
# writable by no one else (sshd runs AuthorizedKeysCommand only then), and
# the path holds no blank (sshd splits the command on blanks).
root_safe() {
  local d=$1 owner mode
  case "$d" in *[[:space:]]*) return 1 ;; esac
  while :; do
    read -r owner mode < <(stat -c '%u %a' "$d") || return 1
    [ "$owner" = 0 ] || return 1
    (((8#$mode & 8#022) == 0)) || return 1
    [ "$d" = / ] && return 0
    d=$(dirname "$d")
  done
}

# choose_base: demo/ in the checkout, unless (as root) the login account
# or postgres cannot reach it or sshd would refuse to run gitmesh from it:
# then /var/lib/gitmesh-demo.
choose_base() {
  mkdir -p "$DEMO"
  chmod 755 "$DEMO"
  rm -f "$DEMO/base"
  BASE=$DEMO
  if is_root && ! { root_safe "$DEMO" && runuser -u "$LOGIN" -- test -x "$DEMO" && runuser -u postgres -- test -x "$DEMO"; }; then
    BASE=/var/lib/gitmesh-demo/$(printf %s "$ROOT" | md5sum | cut -c1-8)
    mkdir -p "$BASE"
    chmod 755 /var/lib/gitmesh-demo "$BASE"
    echo "$BASE" >"$DEMO/base"
    say "the accounts git and postgres cannot use $DEMO (or sshd would refuse it); the demo's files are in $BASE"
  fi
  RUN=$BASE/run
  KEEP=$BASE/keep
}

# choose_keys: sshd asks gitmesh for keys (AuthorizedKeysCommand) when it
# may run the binary: a path that root owns all the way up. Otherwise (not
# root, typically) each device gets an authorized_keys file, which
# refresh_keys regenerates after every key change.
choose_keys() {
  KEYS=command
  root_safe "$GM" && return
  KEYS=file
  local why="sshd runs an AuthorizedKeysCommand only from a path that root owns all the way up"
  LOGIN_NOTE="${LOGIN_NOTE:+$LOGIN_NOTE; }$why, so the devices use authorized_keys files that add-user regenerates"
}

# refresh_keys: each device's authorized_keys, written aside and renamed
# only when gitmesh succeeded (file mode only).
refresh_keys() {
  local d f
  grep -q '^AuthorizedKeysFile none' "$RUN/a/sshd_config" && return 0
  for d in "${DEVICES[@]}"; do
    f=$RUN/$d/authorized_keys
    "$GM" --config "$RUN/$d/gitmesh.toml" authorized-keys >"$f.new"
    chmod 600 "$f.new"
    mv "$f.new" "$f"
  done
}

start_postgres() {
  local bin=$1 pgdir=$RUN/pg
  mkdir -p "$pgdir"
  if is_root; then
    id postgres >/dev/null 2>&1 || die "running as root, PostgreSQL needs the 'postgres' user; run: apt-get install -y postgresql"
    chown postgres: "$pgdir"
  fi
  as_pg "$bin/initdb" -D "$pgdir/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$RUN/initdb.log" 2>&1 ||
    die "initdb failed; see $RUN/initdb.log"
  as_pg "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 \
    -o "-p ${PORT[postgres]} -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off" start >"$RUN/pg_ctl.log" 2>&1 ||
    die "PostgreSQL did not start; see $pgdir/postgres.log"
  as_pg "$bin/createdb" -h 127.0.0.1 -p "${PORT[postgres]}" -U postgres gitmesh
  say "PostgreSQL on 127.0.0.1:${PORT[postgres]} (data in $pgdir/data), with fsync off: a throwaway demo server; never turn fsync off in production"
}

# start_pgbouncer: PgBouncer in session mode in front of PostgreSQL, the
# way the README recommends; the devices reach the database through it.
start_pgbouncer() {
  local dir=$RUN/pg i
  cat >"$dir/pgbouncer.ini" <<EOF
; gitmesh demo. Production: README.md, "PgBouncer".
[databases]
gitmesh = host=127.0.0.1 port=${PORT[postgres]} dbname=gitmesh user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${PORT[pgbouncer]}
unix_socket_dir =
; session mode: gitmesh's advisory locks belong to the client's session
pool_mode = session
; releases the advisory locks of a client that went away
server_reset_query = DISCARD ALL
; loopback only, in front of a throwaway server; production: auth_file
auth_type = any
default_pool_size = 50
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  is_root && chown postgres: "$dir/pgbouncer.ini"
  as_pg /usr/sbin/pgbouncer -d "$dir/pgbouncer.ini" >"$RUN/pgbouncer.out" 2>&1 ||
    die "PgBouncer did not start; see $RUN/pgbouncer.out and $dir/pgbouncer.log"
  for i in $(seq 1 100); do
    port_busy "${PORT[pgbouncer]}" && break
    sleep 0.1
  done
  pid_of "$dir/pgbouncer.pid" pgbouncer >/dev/null || die "PgBouncer is not running; see $dir/pgbouncer.log"
  DBURL="postgres://postgres@127.0.0.1:${PORT[pgbouncer]}/gitmesh?sslmode=disable"
  say "PgBouncer (session mode) on 127.0.0.1:${PORT[pgbouncer]} in front of it; every gitmesh connection goes through it"
}

keygen() { [ -e "$1" ] || ssh-keygen -q -t ed25519 -N "" -C "$2" -f "$1"; }

# keep_keys: host keys, alice's key and the cluster key, made once and kept.
keep_keys() {
  local d
  mkdir -p "$KEEP"
  chmod 755 "$KEEP"
  keygen "$KEEP/cluster_key" gitmesh-cluster
  keygen "$KEEP/alice" alice@demo
  for d in "${DEVICES[@]}"; do keygen "$KEEP/ssh_host_ed25519_key_$d" "host-$d"; done
  # The devices fetch from each other as the login account, with this key.
  is_root && chown "$LOGIN" "$KEEP/cluster_key"
  chmod 600 "$KEEP/cluster_key"
  : >"$KEEP/known_hosts"
  for d in "${DEVICES[@]}"; do
    echo "[127.0.0.1]:${PORT[$d]} $(cut -d' ' -f1,2 "$KEEP/ssh_host_ed25519_key_$d.pub")" >>"$KEEP/known_hosts"
  done
  chmod 644 "$KEEP/known_hosts"
}

# ssh_config KEY: a Host per device (gitmesh-a, ...) for the holder of KEY.
ssh_config() {
  local d
  echo "# gitmesh demo: git clone gitmesh-a:$REPO.git (and gitmesh-b, gitmesh-c)"
  for d in "${DEVICES[@]}"; do
    cat <<EOF
Host gitmesh-$d
    HostName 127.0.0.1
    Port ${PORT[$d]}
    User $LOGIN
    IdentityFile $1
    IdentitiesOnly yes
    UserKnownHostsFile $KEEP/known_hosts
    StrictHostKeyChecking yes
EOF
  done
}

write_device() {
  local d=$1
  mkdir -p "$RUN/$d/repos"
  chmod 755 "$RUN/$d"
  touch "$RUN/$d/gitmesh.log"
  if is_root; then chown "$LOGIN" "$RUN/$d/repos" "$RUN/$d/gitmesh.log"; fi
  cat >"$RUN/$d/gitmesh.toml" <<EOF
database_url = "$DBURL"
device = "$d"
repo_root = "$RUN/$d/repos"
log_file = "$RUN/$d/gitmesh.log"
cluster_key = "$KEEP/cluster_key"
known_hosts = "$KEEP/known_hosts"
EOF
  chmod 644 "$RUN/$d/gitmesh.toml"
  local keys="# sshd asks gitmesh about every offered key: a key added with 'gitmesh key
# add' opens every device at once, a removed one closes them.
AuthorizedKeysFile none
AuthorizedKeysCommand $GM --config $RUN/$d/gitmesh.toml keys-command %u %t %k
AuthorizedKeysCommandUser $LOGIN"
  [ "$KEYS" = command ] || keys="# Written by 'gitmesh authorized-keys' (scripts/demo.sh refresh_keys).
AuthorizedKeysFile $RUN/$d/authorized_keys"
  cat >"$RUN/$d/sshd_config" <<EOF
# Device $d of the gitmesh demo. Production: README.md, "sshd and authorized_keys".
Port ${PORT[$d]}
ListenAddress 127.0.0.1
HostKey $KEEP/ssh_host_ed25519_key_$d
PidFile $RUN/$d/sshd.pid
$keys
AllowUsers $LOGIN
PermitRootLogin no
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
}

start_sshd() {
  local d=$1 i
  /usr/sbin/sshd -f "$RUN/$d/sshd_config" -E "$RUN/$d/sshd.log" ||
    die "sshd of device $d did not start; see $RUN/$d/sshd.log"
  for i in $(seq 1 100); do
    pid_of "$RUN/$d/sshd.pid" "$RUN/$d/sshd_config" >/dev/null && port_busy "${PORT[$d]}" && break
    sleep 0.1
  done
  pid_of "$RUN/$d/sshd.pid" "$RUN/$d/sshd_config" >/dev/null || die "sshd of device $d is not running; see $RUN/$d/sshd.log"
  say "device $d: sshd on 127.0.0.1:${PORT[$d]} (pid $(head -n1 "$RUN/$d/sshd.pid")), users log in as $LOGIN"
}

# start_web: nginx with a server per device (port httpX), passing requests
# to fcgiwrap, which runs `gitmesh http-backend` with that device's
# settings, users' tokens checked by `gitmesh http-auth` (nginx's
# auth_request): the README's configuration, on plain http://.
start_web() {
  WEB=""
  if [ ! -x /usr/sbin/nginx ] || [ ! -x /usr/sbin/fcgiwrap ]; then
    say "nginx or fcgiwrap is missing, so the demo serves SSH only; apt-get install -y nginx fcgiwrap (or make setup) adds HTTP"
    return 0
  fi
  local w=$RUN/web d servers="" user="" i
  mkdir -p "$w"
  chmod 755 "$w"
  for d in "${DEVICES[@]}"; do
    printf '#!/bin/sh\nexport PATH=%q\nexec %q --config %q http-backend\n' "$PATH" "$GM" "$RUN/$d/gitmesh.toml" >"$w/http-backend-$d"
  done
  printf '#!/bin/sh\nexport PATH=%q\nexec %q --config %q http-auth\n' "$PATH" "$GM" "$RUN/admin.toml" >"$w/http-auth"
  chmod 755 "$w"/http-*
  for d in "${DEVICES[@]}"; do
    servers+="
  server {
    listen 127.0.0.1:${PORT[http$d]};
    client_max_body_size 0;
    location = /_gitmesh_auth {
      internal;
      fastcgi_pass 127.0.0.1:${PORT[fcgi]};
      fastcgi_param REQUEST_METHOD \$request_method;
      fastcgi_param GATEWAY_INTERFACE CGI/1.1;
      fastcgi_param SCRIPT_FILENAME $w/http-auth;
      fastcgi_param HTTP_AUTHORIZATION \$http_authorization;
      fastcgi_param CONTENT_LENGTH \"\";
      fastcgi_pass_request_body off;
    }
    location ~ ^/git(/.*)\$ {
      auth_request /_gitmesh_auth;
      auth_request_set \$gitmesh_user \$upstream_http_x_gitmesh_user;
      fastcgi_pass 127.0.0.1:${PORT[fcgi]};
      fastcgi_param QUERY_STRING \$query_string;
      fastcgi_param REQUEST_METHOD \$request_method;
      fastcgi_param CONTENT_TYPE \$content_type;
      fastcgi_param CONTENT_LENGTH \$content_length;
      fastcgi_param GATEWAY_INTERFACE CGI/1.1;
      fastcgi_param SERVER_PROTOCOL \$server_protocol;
      fastcgi_param REMOTE_ADDR \$remote_addr;
      fastcgi_param SCRIPT_FILENAME $w/http-backend-$d;
      fastcgi_param PATH_INFO \$1;
      fastcgi_param REMOTE_USER \$gitmesh_user;
      fastcgi_param HTTP_AUTHORIZATION \"\";
      fastcgi_request_buffering off;
      fastcgi_buffering off;
      fastcgi_read_timeout 30m;
    }
  }"
  done
  is_root && user="user $LOGIN;"
  cat >"$w/nginx.conf" <<EOF
# The gitmesh demo's web server. Production: README.md, "Smart HTTP(S)".
$user
worker_processes 1;
pid $w/nginx.pid;
error_log $w/error.log;
events { worker_connections 256; }
http {
  access_log $w/access.log;
  client_body_temp_path $w/tmp-body;
  fastcgi_temp_path $w/tmp-fastcgi;
  proxy_temp_path $w/tmp-proxy;
  uwsgi_temp_path $w/tmp-uwsgi;
  scgi_temp_path $w/tmp-scgi;
$servers
}
EOF
  # fcgiwrap runs gitmesh as the login account, which owns the copies.
  touch "$w/fcgiwrap.log"
  is_root && chown "$LOGIN" "$w/fcgiwrap.log" "$w"
  as_login sh -c 'echo $$ >"$1"; exec /usr/sbin/fcgiwrap -c 4 -s "tcp:127.0.0.1:$2" >>"$3" 2>&1 </dev/null' sh \
    "$w/fcgiwrap.pid" "${PORT[fcgi]}" "$w/fcgiwrap.log" </dev/null >/dev/null 2>&1 &
  for i in $(seq 1 100); do port_busy "${PORT[fcgi]}" && break; sleep 0.1; done
  pid_of "$w/fcgiwrap.pid" fcgiwrap >/dev/null || die "fcgiwrap did not start; see $w/fcgiwrap.log"
  /usr/sbin/nginx -p "$w/" -c "$w/nginx.conf" -e "$w/error.log" || die "nginx did not start; see $w/error.log"
  for i in $(seq 1 100); do port_busy "${PORT[httpa]}" && break; sleep 0.1; done
  pid_of "$w/nginx.pid" nginx >/dev/null || die "nginx is not running; see $w/error.log"
  TOKEN=$("$GM" --config "$RUN/admin.toml" token add alice 2>/dev/null)
  WEB=yes
  for d in "${DEVICES[@]}"; do say "device $d: HTTP on 127.0.0.1:${PORT[http$d]} (nginx, fcgiwrap, gitmesh http-backend)"; done
}

# observe CMD [ARGS...]: show what `gitmesh CMD` says about the demo cluster;
# a command this build does not have gets one line and the demo goes on.
observe() {
  local out rc=0
  out=$("$GM" --config "$RUN/admin.toml" "$@" 2>&1) || rc=$?
  if [ $rc -ne 0 ] && grep -q "unknown command \"$1\"" <<<"$out"; then
    echo "\$ gitmesh $*    (this build of gitmesh has no '$1' command yet; skipped)"
    echo
    return 0
  fi
  echo "\$ gitmesh $*"
  if [ "$1" = metrics ]; then
    head -n 12 <<<"$out"
    echo "  ... ($(wc -l <<<"$out") lines in all)"
  else
    echo "$out"
  fi
  [ $rc -eq 0 ] || echo "  (exit $rc)"
  echo
}

start() {
  [ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing; run: apt-get install -y openssh-server (or make setup)"
  [ -x /usr/sbin/pgbouncer ] || die "/usr/sbin/pgbouncer is missing; run: apt-get install -y pgbouncer (or make setup)"
  command -v ssh-keygen >/dev/null && command -v ssh >/dev/null || die "ssh is missing; run: apt-get install -y openssh-client"
  [ -x "$ROOT/gitmesh" ] || die "no gitmesh binary; run make demo (it builds one) or make build"
  if [ -e "$RUN" ]; then
    say "a previous demo is in $RUN; stopping it first"
    stop
  fi
  local bin
  bin=$(pg_bindir)
  choose_login
  choose_base
  mkdir -p "$RUN" "$KEEP"
  chmod 755 "$RUN"
  trap 'say "failed; stopping what was started (logs stay in $RUN until make demo-stop)"; stop_processes' ERR
  is_root && mkdir -p /run/sshd
  install -m 755 "$ROOT/gitmesh" "$RUN/gitmesh"
  GM=$RUN/gitmesh
  choose_keys

  choose_ports
  keep_keys
  start_postgres "$bin"
  start_pgbouncer
  for d in "${DEVICES[@]}"; do write_device "$d"; done
  # The cluster's settings without a device: admin commands for the whole
  # cluster; verify and thaw read the devices' copies with the cluster key.
  printf 'database_url = "%s"\ncluster_key = "%s"\nknown_hosts = "%s"\n' "$DBURL" "$KEEP/cluster_key" "$KEEP/known_hosts" >"$RUN/admin.toml"
  chmod 644 "$RUN/admin.toml"
  ssh_config "$KEEP/alice" >"$KEEP/ssh_config"

  local gm=("$GM" --config "$RUN/admin.toml")
  "${gm[@]}" migrate >/dev/null
  echo "$COUNT" >"$RUN/devices"
  for d in "${DEVICES[@]}"; do
    "${gm[@]}" device add "$d" --url "ssh://$LOGIN@127.0.0.1:${PORT[$d]}" >/dev/null
  done
  "${gm[@]}" key add --cluster "$KEEP/cluster_key.pub" >/dev/null
  # A repository's first copy is made by its device, as the login account.
  as_login "$GM" --config "$RUN/a/gitmesh.toml" repo create "$REPO" >/dev/null
  if [ "$COUNT" -gt 3 ]; then
    local r
    for r in "${EXTRA_REPOS[@]}"; do as_login "$GM" --config "$RUN/a/gitmesh.toml" repo create "$r" >/dev/null; done
  fi
  "${gm[@]}" user add alice >/dev/null
  "${gm[@]}" key add alice "$KEEP/alice.pub" >/dev/null
  "${gm[@]}" grant alice "$REPO" write >/dev/null
  refresh_keys
  for d in "${DEVICES[@]}"; do start_sshd "$d"; done

  SSHCMD="ssh -F /dev/null -i $KEEP/alice -o IdentitiesOnly=yes -o UserKnownHostsFile=$KEEP/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes"
  printf 'export GIT_SSH_COMMAND=%q\n' "$SSHCMD" >"$KEEP/env.sh"
  export GIT_SSH_COMMAND="$SSHCMD"
  # A fixed date: the first commit is the same in every run, so a clone of
  # an earlier run fetches from this one as if nothing had happened.
  export GIT_AUTHOR_NAME=Alice GIT_AUTHOR_EMAIL=alice@example.com GIT_COMMITTER_NAME=Alice GIT_COMMITTER_EMAIL=alice@example.com
  export GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z
  declare -gA URL
  for d in "${DEVICES[@]}"; do URL[$d]="ssh://$LOGIN@127.0.0.1:${PORT[$d]}/$REPO.git"; done

  git init -q -b main "$RUN/work"
  echo "hello from the gitmesh demo" >"$RUN/work/README"
  git -C "$RUN/work" add README
  git -C "$RUN/work" commit -q -m "first commit"
  git -C "$RUN/work" push -q "${URL[a]}" main
  say "pushed to device a: before answering, a stored it on b and c over ssh with the cluster key"
  git clone -q "${URL[c]}" "$RUN/clone-c"
  [ "$(git -C "$RUN/work" rev-parse HEAD)" = "$(git -C "$RUN/clone-c" rev-parse HEAD)" ] ||
    die "the clone from c does not hold the commit pushed to a"
  say "cloned from device c: it serves the push a acknowledged"
  if [ "$COUNT" -gt 3 ]; then
    git clone -q "${URL[d]}" "$RUN/clone-d"
    [ "$(git -C "$RUN/work" rev-parse HEAD)" = "$(git -C "$RUN/clone-d" rev-parse HEAD)" ] ||
      die "the clone from d does not hold the commit pushed to a"
    say "cloned from device d, which holds no copy of $REPO (three copies: a, b, c): d passed the request on to a holder"
  fi
  start_web
  if [ -n "$WEB" ]; then
    echo "over http too" >>"$RUN/work/README"
    git -C "$RUN/work" commit -q -am "a commit pushed over HTTP"
    git -C "$RUN/work" push "http://alice:$TOKEN@127.0.0.1:${PORT[httpb]}/git/$REPO.git" main 2>&1 | grep 'gitmesh:' >&2 || true
    git clone -q "http://alice:$TOKEN@127.0.0.1:${PORT[httpc]}/git/$REPO.git" "$RUN/clone-http-c"
    [ "$(git -C "$RUN/work" rev-parse HEAD)" = "$(git -C "$RUN/clone-http-c" rev-parse HEAD)" ] ||
      die "the clone over HTTP from c does not hold the commit pushed over HTTP to b"
    say "pushed over HTTP to device b, cloned over HTTP from c (a token of alice, checked by gitmesh http-auth)"
  fi
  trap - ERR

  echo
  echo "What the cluster says about itself (every command: $GM --config $RUN/admin.toml ...):"
  echo
  observe status
  observe metrics
  observe check
  observe sync-log
  summary
}

# placement: which devices hold the demo's repositories.
placement() {
  if [ "$COUNT" -le 3 ]; then
    echo "every device holds a copy"
    return
  fi
  echo "three copies of each repository, spread over the $COUNT devices: see gitmesh status"
}

summary() {
  cat <<EOF
gitmesh demo is running: PostgreSQL, PgBouncer and $COUNT devices on 127.0.0.1.
Ports, host keys and keys stay the same in the next run ($KEEP), so clones keep working.
${LOGIN_NOTE:+Note: $LOGIN_NOTE.
}
  clone URLs of $REPO (user alice; every device serves every push; $(placement)):
$(for d in "${DEVICES[@]}"; do echo "    $d: ${URL[$d]}"; done)
${WEB:+  over HTTP (the token of alice, made by gitmesh token add alice; nginx + fcgiwrap, config in $RUN/web/nginx.conf):
$(for d in "${DEVICES[@]}"; do echo "    $d: http://alice:$TOKEN@127.0.0.1:${PORT[http$d]}/git/$REPO.git"; done)
}
  with alice's key:   source $KEEP/env.sh     (sets GIT_SSH_COMMAND)
    git clone ${URL[b]} /tmp/app-from-b

  or an ssh config (also in $KEEP/ssh_config; add it to ~/.ssh/config, or use it as it is):
$(ssh_config "$KEEP/alice" | sed 's/^/    /')
    GIT_SSH_COMMAND="ssh -F $KEEP/ssh_config" git clone gitmesh-b:$REPO.git /tmp/app-from-b

  admin commands for the whole cluster (one config, no device needed):
    $GM --config $RUN/admin.toml status $REPO
    $GM --config $RUN/admin.toml log $REPO
  a new user with write access to $REPO, on every device at once:
    scripts/demo.sh add-user bob ~/.ssh/id_ed25519.pub

  the database: PostgreSQL on 127.0.0.1:${PORT[postgres]}; gitmesh connects through PgBouncer:
    database_url = "$DBURL"    (PgBouncer's config: $RUN/pg/pgbouncer.ini)

  a device down and back (pushes go on with the other two; it catches up on its next read):
    scripts/demo.sh stop-device b
    scripts/demo.sh start-device b

  stop it: make demo-stop    (stops exactly these processes, by their pid files)
EOF
  if [ "$BASE" != "$DEMO" ]; then
    cat <<EOF

  The demo's files are in $BASE, not in demo/ (the git or postgres account
  cannot reach $DEMO, or sshd would refuse it): where the README says
  demo/keep/ read $KEEP/, and for demo/run/ read $RUN/.
EOF
  fi
}

# device_arg D: D names a device of a running demo.
device_arg() {
  [ $# -eq 1 ] && [[ " ${DEVICES[*]} " == *" $1 "* ]] || die "usage: scripts/demo.sh $CMD DEVICE (one of: ${DEVICES[*]})"
  [ -r "$RUN/$1/sshd_config" ] || die "no demo is running; start one with make demo"
}

# stop_device D: device D goes down (its sshd stops); the others go on.
stop_device() {
  device_arg "$@"
  local pid
  if ! pid=$(pid_of "$RUN/$1/sshd.pid" "$RUN/$1/sshd_config"); then
    say "device $1 is already down; bring it back with: scripts/demo.sh start-device $1"
    return 0
  fi
  stop_pid "$pid" TERM "sshd of device $1"
  say "device $1 is down: pushes go on with the other devices, reads there fail; bring it back with: scripts/demo.sh start-device $1"
}

# start_device D: device D comes back (its sshd again).
start_device() {
  device_arg "$@"
  load_ports_and_login
  if pid_of "$RUN/$1/sshd.pid" "$RUN/$1/sshd_config" >/dev/null; then
    say "device $1 is already up"
    return 0
  fi
  start_sshd "$1"
  local as=""
  is_root && [ "$LOGIN" != root ] && as="runuser -u $LOGIN -- "
  say "device $1 is back: it catches up on its next read, or now with: $as$RUN/gitmesh --config $RUN/$1/gitmesh.toml sync"
}

# add_user NAME PUBKEY-FILE: user add, key add and a write grant on the demo
# repository, through the cluster's one database: every device at once.
add_user() {
  [ $# -eq 2 ] || die "usage: scripts/demo.sh add-user NAME PUBKEY-FILE (the .pub file of the user's key)"
  local name=$1 key=$2 out rc
  [ -r "$RUN/admin.toml" ] && pid_of "$RUN/a/sshd.pid" "$RUN/a/sshd_config" >/dev/null ||
    die "no demo is running; start one with make demo"
  [ -r "$key" ] || die "cannot read $key; give the user's public key file (ssh-keygen -t ed25519 -f KEY makes KEY.pub)"
  if grep -q 'PRIVATE KEY' "$key" 2>/dev/null; then
    [ -r "$key.pub" ] || die "$key is a private key; give its public half (KEY.pub), which never leaves the user's machine unprotected"
    say "$key is a private key; using its public half $key.pub"
    key=$key.pub
  fi
  GM=$RUN/gitmesh
  local gm=("$GM" --config "$RUN/admin.toml")
  rc=0
  out=$("${gm[@]}" user add "$name" 2>&1) || rc=$?
  if [ $rc -ne 0 ]; then
    grep -q "already exists" <<<"$out" || die "user add $name: $out"
    say "user $name exists already; adding the key"
  fi
  "${gm[@]}" key add "$name" "$key" | sed 's/; regenerate.*//'
  "${gm[@]}" grant "$name" "$REPO" write
  load_ports_and_login
  if grep -q '^AuthorizedKeysFile none' "$RUN/a/sshd_config"; then
    say "$name may now push to and clone $REPO through every device; sshd asks gitmesh for keys, so nothing else is needed"
  else
    refresh_keys
    say "$name may now push to and clone $REPO through every device (their authorized_keys files were regenerated)"
  fi
  local d private=${key%.pub}
  ssh_config "$private" >"$KEEP/ssh_config-$name"
  echo "  URLs (log in as $LOGIN with $name's key):"
  for d in "${DEVICES[@]}"; do echo "    $d: ssh://$LOGIN@127.0.0.1:${PORT[$d]}/$REPO.git"; done
  echo "  ssh config for $name (also in $KEEP/ssh_config-$name):"
  ssh_config "$private" | sed 's/^/    /'
  echo "  clone with it:"
  echo "    GIT_SSH_COMMAND=\"ssh -F $KEEP/ssh_config-$name\" git clone gitmesh-b:$REPO.git"
}

# load_ports_and_login: what the running demo uses, for commands after start.
load_ports_and_login() {
  local k v
  while IFS='=' read -r k v; do PORT[$k]=$v; done <"$KEEP/ports"
  LOGIN=$(sed -n 's/^AllowUsers //p' "$RUN/a/sshd_config")
}

CMD=${1:-}
case "$CMD" in
start) start ;;
stop) stop ;;
add-user)
  shift
  add_user "$@"
  ;;
stop-device)
  shift
  stop_device "$@"
  ;;
start-device)
  shift
  start_device "$@"
  ;;
*) die "usage: scripts/demo.sh start|stop|add-user NAME PUBKEY-FILE|stop-device DEVICE|start-device DEVICE" ;;
esac
