#!/usr/bin/env bash
# User-space instructions per transaction of each proxy, counted by
# valgrind's callgrind: ddlguard with usage tracking on and off, and
# PgBouncer (session mode).
#
# On a shared 2-core machine the proxies' CPU per transaction moves by up to
# 3 µs between rounds of `benches/e2e.sh`, more than the differences in
# question. An instruction count does not move: it says what work each
# proxy does per transaction in user space (not its kernel share, nor what
# a cache miss costs), and an A/B of two builds is exact.
#
#   PGPORT=5432 benches/instructions.sh
#
# Needs: a running Postgres on 127.0.0.1:$PGPORT that trusts user postgres
# and has pgbench's tables (`pgbench -i`), valgrind (`apt-get install
# valgrind`), pgbench, pg_isready; PgBouncer is measured if installed (as
# root it runs as the postgres OS user). Settings (environment):
#   PGPORT=5432          the Postgres to relay to
#   DDLGUARD_BIN=PATH    the ddlguard binary (default target/release/ddlguard)
#   TXNS=4000            transactions counted per cell (after a warm-up)
#   CLIENTS=4            pgbench clients
#   MODES="simple prepared"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGPORT="${PGPORT:-5432}"
BIN="${DDLGUARD_BIN:-$ROOT/target/release/ddlguard}"
TXNS="${TXNS:-4000}"
CLIENTS="${CLIENTS:-4}"
MODES="${MODES:-simple prepared}"

die() { echo "instructions.sh: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
command -v callgrind_control >/dev/null || die "callgrind_control not found (part of valgrind)"
command -v pgbench >/dev/null || die "pgbench not found"
command -v python3 >/dev/null || die "python3 not found (it picks free ports)"
[ -x "$BIN" ] || die "$BIN is not an executable (cargo build --release, or set DDLGUARD_BIN)"
pg_isready -q -h 127.0.0.1 -p "$PGPORT" || die "no Postgres on 127.0.0.1:$PGPORT"
[ $((TXNS % CLIENTS)) = 0 ] || die "TXNS must be a multiple of CLIENTS"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ddlguard-ir.XXXXXX")"
chmod 755 "$TMP"
VG_PID=""
cleanup() {
  [ -n "$VG_PID" ] && kill -INT "$VG_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ddlguard_config() { # port tracking(true|false)
  cat <<EOF
[server]
listen = "127.0.0.1:$1"
worker_threads = 1
[upstream]
host = "127.0.0.1"
port = $PGPORT
tls = "disable"
[admin]
http_listen = ""
[usage]
store = "memory"
enabled = $2
[log]
level = "warn"
EOF
}

pgbouncer_config() { # port
  cat <<EOF
[databases]
postgres = host=127.0.0.1 port=$PGPORT dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $1
unix_socket_dir =
auth_type = trust
auth_file = $TMP/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
logfile = $TMP/pgbouncer-server.log
EOF
}

# measure NAME PORT CMD...: user-space instructions per transaction, per mode.
measure() {
  local name="$1" port="$2" mode out i
  shift 2
  "$@" >"$TMP/$name.log" 2>&1 &
  for ((i = 0; i < 120; i++)); do
    sleep 0.5
    pg_isready -q -h 127.0.0.1 -p "$port" && break
  done
  pg_isready -q -h 127.0.0.1 -p "$port" || die "$name did not start: $(tail -3 "$TMP/$name.log")"
  # valgrind's own process (not runuser's, whose command line has it too).
  VG_PID="$(pgrep -af "callgrind-out-file=$TMP/$name" | awk '$2 != "runuser" { print $1; exit }')"
  [ -n "$VG_PID" ] || die "no callgrind process for $name"
  for mode in $MODES; do
    pgbench -h 127.0.0.1 -p "$port" -U postgres -S -n -M "$mode" -c "$CLIENTS" -j 1 \
      -t 100 postgres >/dev/null 2>&1 || die "pgbench warm-up through $name failed"
    "${AS[@]}" callgrind_control -z "$VG_PID" >/dev/null
    out="$(pgbench -h 127.0.0.1 -p "$port" -U postgres -S -n -M "$mode" -c "$CLIENTS" -j 1 \
      -t $((TXNS / CLIENTS)) postgres 2>&1)" || die "pgbench through $name failed: $out"
    "${AS[@]}" callgrind_control --dump="$mode" "$VG_PID" >/dev/null
    # The last dump is the one just written (dumps are numbered).
    local dump ir
    dump="$(ls -t "$TMP/$name".*.* 2>/dev/null | head -1)"
    ir="$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")"
    echo "$name $mode $((ir / TXNS))" >>"$TMP/results"
    rm -f "$dump"
  done
  kill -INT "$VG_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  VG_PID=""
}

# As root, PgBouncer runs as the postgres OS user, and so does whatever
# talks to its valgrind.
AS=()
VG=(valgrind --tool=callgrind --dump-instr=no --collect-jumps=no)
for tracking in true false; do
  port="$(free_port)"
  name="ddlguard-tracking-$([ $tracking = true ] && echo on || echo off)"
  ddlguard_config "$port" "$tracking" >"$TMP/$name.toml"
  measure "$name" "$port" "${VG[@]}" --callgrind-out-file="$TMP/$name.%p" "$BIN" serve --config "$TMP/$name.toml"
done

PGB="$(command -v pgbouncer 2>/dev/null || true)"
[ -z "$PGB" ] && [ -x /usr/sbin/pgbouncer ] && PGB=/usr/sbin/pgbouncer
if [ -n "$PGB" ]; then
  port="$(free_port)"
  echo '"postgres" ""' >"$TMP/userlist.txt"
  pgbouncer_config "$port" >"$TMP/pgbouncer.ini"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$TMP"
    AS=(runuser -u postgres --)
  fi
  measure pgbouncer "$port" "${AS[@]}" "${VG[@]}" --callgrind-out-file="$TMP/pgbouncer.%p" "$PGB" "$TMP/pgbouncer.ini"
else
  echo "PgBouncer not installed: measured ddlguard only" >&2
fi

echo
# The checkout's commit names the build only when the default binary is used.
if [ -n "${DDLGUARD_BIN:-}" ]; then BUILD="binary $BIN"; else BUILD="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), binary $BIN"; fi
echo "User-space instructions per transaction (callgrind; pgbench -S -c $CLIENTS, $TXNS transactions after a warm-up; $BUILD):"
echo
echo "| proxy | $(echo "$MODES" | sed 's/ / | /g') |"
echo "|---|$(for _ in $MODES; do printf -- '---:|'; done)"
for name in $(awk '{ print $1 }' "$TMP/results" | uniq); do
  printf '| %s |' "$name"
  for mode in $MODES; do
    printf ' %s |' "$(awk -v n="$name" -v m="$mode" '$1 == n && $2 == m { print $3 }' "$TMP/results")"
  done
  echo
done
