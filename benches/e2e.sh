#!/usr/bin/env bash
# End-to-end benchmark: pgbench straight to Postgres vs. through ddlguard vs.
# through PgBouncer (session mode), plus each proxy's own CPU time per
# transaction and its memory per idle session.
#
# Usage (from anywhere; the script works relative to its own location):
#   benches/e2e.sh
#   DURATION=3 SCALE=1 CLIENTS=8 benches/e2e.sh          # quick smoke run
#   ROUNDS=3 DURATION=30 benches/e2e.sh                  # steadier numbers
#
# It builds ddlguard (cargo build --release), starts a throwaway PostgreSQL
# cluster (initdb in a temp dir, free port, 127.0.0.1 only, fsync=off), a
# ddlguard and a PgBouncer in front of it, runs `pgbench -S` against all three
# (order rotated per configuration and round so drift is spread evenly),
# measures idle-session memory, and prints a markdown report, also written to
# $OUT. Everything it started is stopped and the temp dir removed on exit,
# including on Ctrl-C.
#
# Environment knobs:
#   DURATION=15          seconds per pgbench run (-T)
#   SCALE=10             pgbench -i scale factor
#   ROUNDS=1             repeat each measurement; the table shows the median,
#                        every single run is listed under "All runs"
#   CLIENTS="8 32"       client counts (-c), space separated; -j is 2
#   MODES="simple prepared"  pgbench query modes (-M), space separated
#   WARMUP=3             seconds of untimed -S warm-up per target (0 = none)
#   IDLE_SESSIONS=200    idle sessions opened for the memory measurement
#   IDLE_SETTLE=6        seconds between the warm-up session and the "before"
#                        sample: past ddlguard's first usage flush (5 s), whose
#                        first run faults in code pages once (not per session)
#   IDLE_WARM=1          each idle session runs one `SELECT 1` before its
#                        `\sleep 10 s`, so PgBouncer pairs it with a server
#                        connection as ddlguard does at login (PgBouncer only
#                        takes a server connection at the first query);
#                        IDLE_WARM=0: the script is only `\sleep 10 s`
#   SKIP_PGBOUNCER=1     leave PgBouncer out (otherwise it is apt-get installed
#                        when missing, Debian/Ubuntu only)
#   DDLGUARD_BIN=PATH    use this ddlguard binary, do not build
#   TRACKING=off         run ddlguard with [usage] enabled = false (a plain
#                        relay), to measure what usage tracking costs
#   TRACKING=compare     run a second ddlguard with tracking off as one more
#                        target ("ddlguard-notrack") in the same rotation, and
#                        report the tracking cost in TPS and CPU per config
#   BASELINE_BIN=PATH    run a second ddlguard from another binary (e.g. an
#                        older commit's release build) as one more target
#                        ("ddlguard-base") in the same rotation, same config,
#                        and report this build's cost against it (an A/B of
#                        a change in one run)
#   PERF=1               also count each proxy's context switches and CPU
#                        migrations per transaction (perf stat -p), and run
#                        short extra passes per target under `strace -c -f`
#                        (syscalls per transaction) and `perf record` (CPU
#                        split into user space and kernel); both slow the
#                        proxy: reported apart, never in the CPU figures
#   PROFILE=1            perf record (-g, 999 Hz) of ddlguard during its round-1
#                        runs; the top of `perf report` per mode and client
#                        count goes to the runs dir (a profile says where time
#                        goes, not what a feature costs: use the A/B knobs)
#   PGB_KEEP_SERVERS=1   let PgBouncer keep its server connections between
#                        pgbench runs (its default, server_lifetime 3600).
#                        Without it server_lifetime = 0: every client
#                        session gets a fresh backend, as it does through
#                        ddlguard and direct. A backend kept from an earlier
#                        run has its page tables for shared_buffers filled
#                        in already; fresh ones fault them in during the run,
#                        which cost 1.7-2.4% of TPS at -c 32 here: a
#                        difference in Postgres' work, not in the relays'.
#   WORKERS=1            ddlguard's server.worker_threads (session threads,
#                        each a single-thread runtime; 0 = one per core)
#   PGB_PROCS=1          PgBouncer processes sharing the port (so_reuseport =
#                        1 when more than one: PgBouncer's way to use more
#                        cores); CPU and memory are summed over them. Pair
#                        with WORKERS=N for a like-for-like N-core comparison
#   EPOLL_RELAY=false    ddlguard's server.epoll_relay (unset: the default,
#                        on): false relays every session on its tokio task
#   BASELINE_EPOLL_RELAY=true|false  the same for the BASELINE_BIN target, so
#                        BASELINE_BIN=<this build> BASELINE_EPOLL_RELAY=false
#                        is an A/B of the epoll relay in one run (unset: the
#                        key is left out, for builds that predate it)
#   DDLGUARD_EXTRA_CONFIG=TEXT  appended verbatim to the generated ddlguard
#                        config (after its [log] section: start it with a
#                        new [table] header unless it is meant for [log])
#   DDLGUARD_PG_BIN=DIR  PostgreSQL bin dir (else pg_config --bindir, the
#                        newest /usr/lib/postgresql/*/bin, or PATH)
#   OUT=FILE             report file (default: <repo>/target/e2e-report.md;
#                        a relative OUT is relative to the current directory)
#   KEEP_TMP=1           keep the temp dir (configs, logs, pgbench output)
#
# Needs: bash, cargo (unless DDLGUARD_BIN), PostgreSQL server binaries
# (initdb, pg_ctl, postgres, pgbench, psql), and root or a non-root user that
# can run Postgres itself. As root, Postgres and PgBouncer run as the
# `postgres` OS user (both refuse to run as root).
set -euo pipefail
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
START_DIR="$(pwd)"

DURATION="${DURATION:-15}"
SCALE="${SCALE:-10}"
ROUNDS="${ROUNDS:-1}"
CLIENTS="${CLIENTS:-8 32}"
MODES="${MODES:-simple prepared}"
WARMUP="${WARMUP:-3}"
IDLE_SESSIONS="${IDLE_SESSIONS:-200}"
PGB_SERVER_LIFETIME=0
[ "${PGB_KEEP_SERVERS:-0}" = 1 ] && PGB_SERVER_LIFETIME=3600
IDLE_WARM="${IDLE_WARM:-1}"
IDLE_SETTLE="${IDLE_SETTLE:-6}"
PGB_PROCS="${PGB_PROCS:-1}"
SKIP_PGBOUNCER="${SKIP_PGBOUNCER:-0}"
DDLGUARD_EXTRA_CONFIG="${DDLGUARD_EXTRA_CONFIG:-}"
KEEP_TMP="${KEEP_TMP:-0}"
if [ -n "${OUT:-}" ]; then
  case "$OUT" in
    /*) REPORT_OUT="$OUT" ;;
    *) REPORT_OUT="$START_DIR/$OUT" ;;
  esac
else
  REPORT_OUT="$ROOT/target/e2e-report.md"
fi

for v in DURATION SCALE ROUNDS WARMUP IDLE_SESSIONS PGB_PROCS; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then
    echo "e2e: $v must be a non-negative integer, got '${!v}'" >&2
    exit 2
  fi
done
if [ "$DURATION" -lt 1 ] || [ "$ROUNDS" -lt 1 ] || [ "$IDLE_SESSIONS" -lt 1 ] || [ "$PGB_PROCS" -lt 1 ]; then
  echo "e2e: DURATION, ROUNDS and IDLE_SESSIONS must be at least 1" >&2
  exit 2
fi
read -r -a CLIENT_LIST <<<"$CLIENTS"
read -r -a MODE_LIST <<<"$MODES"
if [ "${#CLIENT_LIST[@]}" -eq 0 ] || [ "${#MODE_LIST[@]}" -eq 0 ]; then
  echo "e2e: CLIENTS and MODES must not be empty" >&2
  exit 2
fi
for c in "${CLIENT_LIST[@]}"; do
  [[ "$c" =~ ^[1-9][0-9]*$ ]] || { echo "e2e: bad client count '$c' in CLIENTS" >&2; exit 2; }
done
for m in "${MODE_LIST[@]}"; do
  case "$m" in simple | extended | prepared) ;; *) echo "e2e: bad mode '$m' in MODES" >&2; exit 2 ;; esac
done

# Keep the caller's libpq environment from steering pgbench/psql elsewhere.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGPASSFILE PGSERVICE \
  PGSERVICEFILE PGOPTIONS PGSSLMODE PGREQUIRESSL PGCHANNELBINDING PGTARGETSESSIONATTRS \
  PGAPPNAME PGCONNECT_TIMEOUT 2>/dev/null || true

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup --
TMP=""
PG_DATA=""
DDLGUARD_PID=""
PGBOUNCER_PID=""
BG_PIDS=()
CLEANED=0

wait_gone() { # pid seconds -> 0 when the process is gone
  local pid="$1" i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  ! kill -0 "$pid" 2>/dev/null
}

stop_ddlguard() {
  [ -n "$DDLGUARD_PID" ] || return 0
  local pid="$DDLGUARD_PID"
  DDLGUARD_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    # First TERM drains, a second one closes remaining sessions at once.
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 5; then
      kill -TERM "$pid" 2>/dev/null || true
      wait_gone "$pid" 3 || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

stop_ddlguard_base() {
  [ -n "${BASE_PID:-}" ] || return 0
  local pid="$BASE_PID"
  BASE_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_ddlguard_notrack() {
  [ -n "${NOTRACK_PID:-}" ] || return 0
  local pid="$NOTRACK_PID"
  NOTRACK_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_pgbouncer() {
  [ -n "$PGBOUNCER_PID" ] || return 0
  local pid pids="$PGBOUNCER_PID"
  PGBOUNCER_PID=""
  for pid in $pids; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true # immediate shutdown
      wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 2 || true
    fi
  done
}

cleanup() {
  local rc=$?
  [ "$CLEANED" = 1 ] && return 0
  CLEANED=1
  trap - INT TERM
  set +e
  local pid
  for pid in "${BG_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${BG_PIDS[@]}"; do
    wait_gone "$pid" 3 || kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  stop_ddlguard
  stop_ddlguard_notrack
  stop_ddlguard_base
  stop_pgbouncer
  if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    local pm
    pm="$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null)"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -t 30 -w stop >/dev/null 2>&1
    if [ -n "$pm" ] && kill -0 "$pm" 2>/dev/null; then
      kill -QUIT "$pm" 2>/dev/null
      wait_gone "$pm" 5 || kill -KILL "$pm" 2>/dev/null
    fi
  fi
  if [ -n "$TMP" ] && [ -d "$TMP" ]; then
    if [ "$KEEP_TMP" = 1 ]; then
      log "kept temp dir $TMP"
    else
      rm -rf -- "$TMP"
    fi
  fi
  [ "$rc" -ne 0 ] && log "exiting with status $rc (everything started was stopped)"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers --
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

as_pg() { # run a command as the postgres OS user when we are root
  if [ "$IS_ROOT" = 1 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

find_pg_bin() {
  local d cand=""
  if [ -n "${DDLGUARD_PG_BIN:-}" ] && [ -x "$DDLGUARD_PG_BIN/initdb" ]; then
    echo "$DDLGUARD_PG_BIN"
    return 0
  fi
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pgbench" ]; then
      echo "$d"
      return 0
    fi
  fi
  while IFS= read -r d; do
    [ -x "$d/initdb" ] && [ -x "$d/pgbench" ] && cand="$d"
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
  if [ -n "$cand" ]; then
    echo "$cand"
    return 0
  fi
  if command -v initdb >/dev/null 2>&1 && command -v pgbench >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

USED_PORTS=" "
port_busy() { # true when something accepts on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
# Ports are chosen below the kernel's ephemeral range: a port in it can be
# taken by an outgoing connection between the check and the bind (a run
# failed so, right after another run's thousands of connections).
EPHEMERAL_LOW="$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
free_port() {
  local p i lo=10000 span
  span=$((EPHEMERAL_LOW - lo))
  [ "$span" -ge 1000 ] || { lo=20000 span=40000; }
  for ((i = 0; i < 200; i++)); do
    p=$((lo + RANDOM % span))
    case "$USED_PORTS" in *" $p "*) continue ;; esac
    if ! port_busy "$p"; then
      USED_PORTS="$USED_PORTS$p "
      echo "$p"
      return 0
    fi
  done
  return 1
}

wait_port() { # port pid name seconds: wait until the port accepts, the process still alive
  local port="$1" pid="$2" name="$3" secs="$4" i
  for ((i = 0; i < secs * 10; i++)); do
    port_busy "$port" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  log "$name did not accept connections on 127.0.0.1:$port within ${secs}s"
  return 1
}

proc_ticks() { # utime + stime of processes (all threads), in clock ticks, summed
  local stat f p sum=0
  for p in "$@"; do
    stat="$(cat "/proc/$p/stat")"
    stat="${stat##*) }" # drop "pid (comm) " ; comm may contain spaces
    read -r -a f <<<"$stat"
    # f[0] is field 3 (state): utime (14) is f[11], stime (15) is f[12].
    sum=$((sum + f[11] + f[12]))
  done
  echo "$sum"
}

alive() { # all of the given pids are running
  local p
  for p in "$@"; do kill -0 "$p" 2>/dev/null || return 1; done
}

proc_rss_kib() { # summed over the given pids
  local p
  for p in "$@"; do cat "/proc/$p/status"; done | awk '/^VmRSS:/ { s += $2 } END { print s + 0 }'
}

proc_anon_kib() { # resident anonymous memory (heap, stacks): RSS without the binary's pages; summed
  local p
  for p in "$@"; do cat "/proc/$p/status"; done | awk '/^RssAnon:/ { s += $2 } END { print s + 0 }'
}

established_on() { # accepted, established TCP connections on local port $1 (IPv4+IPv6)
  local hex
  hex="$(printf '%04X' "$1")"
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
    awk -v p="$hex" 'NR > 0 { split($2, a, ":"); if (a[length(a)] == p && $4 == "01") n++ } END { print n + 0 }'
}

run_waited() { # outfile cmd...: run in the background and wait, so a signal to
  # this script is handled at once (bash defers traps while a foreground child runs)
  local out="$1" pid rc=0
  shift
  "$@" >"$out" 2>&1 &
  pid=$!
  BG_PIDS+=("$pid")
  wait "$pid" || rc=$?
  BG_PIDS=() # one background job at a time
  return "$rc"
}

median() { # numbers as args, "n/a" ignored
  printf '%s\n' "$@" | awk '$1 != "n/a" && $1 != ""' | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

fmt() { # printf format, value ("n/a" passes through)
  # shellcheck disable=SC2059 # the format is the argument
  if [ "$2" = "n/a" ] || [ -z "$2" ]; then echo "n/a"; else LC_ALL=C printf "$1" "$2"; fi
}

ratio() {
  if [ "$1" = "n/a" ] || [ "$2" = "n/a" ]; then
    echo "n/a"
  else
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.3f\n", a / b }'
  fi
}

# ------------------------------------------------------------ preparation --
cd "$ROOT"

PG_BIN="$(find_pg_bin)" || {
  if [ -x "$ROOT/scripts/install-postgres.sh" ] || [ -f "$ROOT/scripts/install-postgres.sh" ]; then
    log "PostgreSQL server binaries not found, running scripts/install-postgres.sh"
    bash "$ROOT/scripts/install-postgres.sh"
  fi
  PG_BIN="$(find_pg_bin)" || die "PostgreSQL server binaries not found: install PostgreSQL or set DDLGUARD_PG_BIN"
}
for b in initdb pg_ctl postgres pgbench psql; do
  [ -x "$PG_BIN/$b" ] || die "$PG_BIN/$b is missing"
done
if [ "$IS_ROOT" = 1 ]; then
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user to run Postgres and PgBouncer"
  command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) is needed to run Postgres as the postgres user"
fi
PGBENCH="$PG_BIN/pgbench"
PSQL="$PG_BIN/psql"
CLK_TCK="$(getconf CLK_TCK)"

PGBOUNCER_BIN=""
if [ "$SKIP_PGBOUNCER" != 1 ]; then
  PGBOUNCER_BIN="$(command -v pgbouncer 2>/dev/null || true)"
  [ -z "$PGBOUNCER_BIN" ] && [ -x /usr/sbin/pgbouncer ] && PGBOUNCER_BIN=/usr/sbin/pgbouncer
  if [ -z "$PGBOUNCER_BIN" ]; then
    command -v apt-get >/dev/null 2>&1 || die "PgBouncer is not installed and apt-get is unavailable: install it or set SKIP_PGBOUNCER=1"
    SUDO=()
    if [ "$IS_ROOT" != 1 ]; then
      command -v sudo >/dev/null 2>&1 || die "PgBouncer is not installed: install it (or run as root) or set SKIP_PGBOUNCER=1"
      SUDO=(sudo)
    fi
    log "installing pgbouncer (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get install -y -q pgbouncer >/dev/null; then
      "${SUDO[@]}" apt-get update -q >/dev/null
      "${SUDO[@]}" apt-get install -y -q pgbouncer >/dev/null || die "apt-get install pgbouncer failed (set SKIP_PGBOUNCER=1 to run without it)"
    fi
    PGBOUNCER_BIN="$(command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer)"
    [ -x "$PGBOUNCER_BIN" ] || die "pgbouncer still not found after apt-get install"
  fi
fi

if [ -n "${DDLGUARD_BIN:-}" ]; then
  case "$DDLGUARD_BIN" in /*) ;; *) DDLGUARD_BIN="$START_DIR/$DDLGUARD_BIN" ;; esac
  [ -x "$DDLGUARD_BIN" ] || die "DDLGUARD_BIN=$DDLGUARD_BIN is not an executable"
  BIN="$DDLGUARD_BIN"
  log "using existing binary $BIN (no build)"
else
  command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, or set DDLGUARD_BIN)"
  log "cargo build --release"
  cargo build --release
  BIN="$ROOT/target/release/ddlguard"
  [ -x "$BIN" ] || die "$BIN not found after the build"
fi

GIT_REV="unknown"
if command -v git >/dev/null 2>&1 && git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    GIT_REV="$GIT_REV-dirty"
  fi
fi
[ -n "${DDLGUARD_BIN:-}" ] && GIT_REV="$GIT_REV (binary $BIN)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ddlguard-e2e.XXXXXX")"
if [ "$IS_ROOT" = 1 ]; then
  chown postgres: "$TMP"
fi
chmod 700 "$TMP"
RUNS_DIR="$TMP/runs"
mkdir -p "$RUNS_DIR"

# --------------------------------------------------------------- postgres --
PG_PORT="$(free_port)" || die "no free port"
PG_DATA="$TMP/pgdata"
PG_SOCK="$TMP/sock"
as_pg mkdir -p "$PG_SOCK"
log "initdb ($PG_BIN)"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --no-instructions >"$TMP/initdb.log" 2>&1 ||
  { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null <<EOF

# ddlguard e2e benchmark
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
ssl = off
fsync = off
synchronous_commit = off
max_connections = 400
shared_buffers = 128MB
EOF
log "starting postgres on 127.0.0.1:$PG_PORT"
as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$TMP/postgres.log" -w -t 60 start >/dev/null ||
  { tail -n 30 "$TMP/postgres.log" >&2 || true; die "postgres did not start"; }
PG_VERSION="$("$PSQL" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc 'SHOW server_version')"

log "pgbench -i -s $SCALE"
run_waited "$TMP/pgbench-init.log" "$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -s "$SCALE" -q postgres ||
  { cat "$TMP/pgbench-init.log" >&2; die "pgbench -i failed"; }

# --------------------------------------------------------------- ddlguard --
DG_PORT=""
DG_CONF="$TMP/ddlguard.toml"
write_ddlguard_conf() { # [tracking on|off] [conf file] [epoll_relay true|false|""]; picks a fresh port (a restart must not trip over TIME_WAIT)
  local tracking="${1:-${TRACKING:-on}}" conf="${2:-$DG_CONF}" epoll="${3-${EPOLL_RELAY:-}}"
  [ "$tracking" = compare ] && tracking=on
  DG_PORT="$(free_port)" || die "no free port"
  {
    cat <<EOF
# generated by benches/e2e.sh
[server]
listen = "127.0.0.1:$DG_PORT"
max_client_connections = 1000
worker_threads = ${WORKERS:-1}
$([ -n "$epoll" ] && echo "epoll_relay = $epoll")

[upstream]
host = "127.0.0.1"
port = $PG_PORT
tls = "disable"

[admin]
http_listen = ""

[usage]
store = "memory"
enabled = $([ "$tracking" = "off" ] && echo false || echo true)

[log]
level = "warn"
EOF
    if [ -n "$DDLGUARD_EXTRA_CONFIG" ]; then
      printf '\n# DDLGUARD_EXTRA_CONFIG\n%s\n' "$DDLGUARD_EXTRA_CONFIG"
    fi
  } >"$conf"
}

# Every ddlguard runs in a session of its own, as a service does (systemd
# gives each service its own cgroup) and as PgBouncer does with -d (it calls
# setsid). With the kernel's autogroup scheduling (sched_autogroup_enabled=1)
# a process started as this script's child would otherwise share pgbench's
# scheduling group, and get a smaller share of the CPU than PgBouncer in its
# own group: measured here, 25-30% more involuntary context switches per
# transaction for the same work. `setsid` does not fork when the caller is not
# a process-group leader (a background job of a script is not), so $! is
# still the proxy's pid (the report's CPU figures are read from it).
AS_DAEMON=()
command -v setsid >/dev/null 2>&1 && AS_DAEMON=(setsid)

DG_STARTS=0
start_ddlguard() {
  DG_STARTS=$((DG_STARTS + 1))
  write_ddlguard_conf
  local logf="$TMP/ddlguard.$DG_STARTS.log"
  # RUST_LOG would override [log] level; keep the benchmark at "warn".
  "${AS_DAEMON[@]}" env -u RUST_LOG "$BIN" serve --config "$DG_CONF" >"$logf" 2>&1 </dev/null &
  DDLGUARD_PID=$!
  if ! wait_port "$DG_PORT" "$DDLGUARD_PID" ddlguard 30; then
    tail -n 30 "$logf" >&2 || true
    die "ddlguard did not start (config $DG_CONF)"
  fi
  log "ddlguard pid $DDLGUARD_PID on 127.0.0.1:$DG_PORT"
}

NOTRACK_PORT=""
NOTRACK_PID=""
start_ddlguard_notrack() { # TRACKING=compare: the same binary as a plain relay
  local keep="$DG_PORT" logf="$TMP/ddlguard-notrack.log"
  write_ddlguard_conf off "$TMP/ddlguard-notrack.toml"
  NOTRACK_PORT="$DG_PORT"
  DG_PORT="$keep"
  "${AS_DAEMON[@]}" env -u RUST_LOG "$BIN" serve --config "$TMP/ddlguard-notrack.toml" >"$logf" 2>&1 </dev/null &
  NOTRACK_PID=$!
  if ! wait_port "$NOTRACK_PORT" "$NOTRACK_PID" ddlguard-notrack 30; then
    tail -n 30 "$logf" >&2 || true
    die "ddlguard (tracking off) did not start"
  fi
  log "ddlguard-notrack pid $NOTRACK_PID on 127.0.0.1:$NOTRACK_PORT"
}

BASE_PORT=""
BASE_PID=""
start_ddlguard_base() { # BASELINE_BIN: another build, same config, one more target
  local keep="$DG_PORT" logf="$TMP/ddlguard-base.log"
  write_ddlguard_conf "${TRACKING:-on}" "$TMP/ddlguard-base.toml" "${BASELINE_EPOLL_RELAY:-}"
  BASE_PORT="$DG_PORT"
  DG_PORT="$keep"
  "${AS_DAEMON[@]}" env -u RUST_LOG "$BASELINE_BIN" serve --config "$TMP/ddlguard-base.toml" >"$logf" 2>&1 </dev/null &
  BASE_PID=$!
  if ! wait_port "$BASE_PORT" "$BASE_PID" ddlguard-base 30; then
    tail -n 30 "$logf" >&2 || true
    die "the baseline ddlguard ($BASELINE_BIN) did not start"
  fi
  log "ddlguard-base ($BASELINE_BIN) pid $BASE_PID on 127.0.0.1:$BASE_PORT"
}

# -------------------------------------------------------------- pgbouncer --
PGB_PORT=""
PGB_VERSION="skipped"
if [ -n "$PGBOUNCER_BIN" ]; then
  PGB_VERSION="$("$PGBOUNCER_BIN" --version 2>/dev/null | head -n 1 || echo unknown)"
fi
write_pgbouncer_ini() { # [process index]; index 1 picks a fresh port, like write_ddlguard_conf
  local k="${1:-1}" reuse=0
  if [ "$k" = 1 ]; then
    PGB_PORT="$(free_port)" || die "no free port"
  fi
  [ "$PGB_PROCS" -gt 1 ] && reuse=1
  printf '"postgres" ""\n' >"$TMP/userlist.txt"
  cat >"$TMP/pgbouncer$k.ini" <<EOF
; generated by benches/e2e.sh
[databases]
* = host=127.0.0.1 port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
pool_mode = session
auth_type = trust
auth_file = $TMP/userlist.txt
max_client_conn = 1000
default_pool_size = 300
max_db_connections = 0
server_tls_sslmode = disable
client_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits,options
logfile = $TMP/pgbouncer$k.log
pidfile = $TMP/pgbouncer$k.pid
so_reuseport = $reuse
server_lifetime = $PGB_SERVER_LIFETIME
log_connections = 0
log_disconnections = 0
EOF
  if [ "$IS_ROOT" = 1 ]; then
    chown postgres: "$TMP/userlist.txt" "$TMP/pgbouncer$k.ini"
  fi
}

start_pgbouncer() {
  local i k pid pids=""
  for ((k = 1; k <= PGB_PROCS; k++)); do
    write_pgbouncer_ini "$k"
    as_pg rm -f "$TMP/pgbouncer$k.pid"
    as_pg "$PGBOUNCER_BIN" -d "$TMP/pgbouncer$k.ini" >>"$TMP/pgbouncer.stdout" 2>&1 ||
      { tail -n 30 "$TMP/pgbouncer$k.log" "$TMP/pgbouncer.stdout" >&2 || true; die "pgbouncer did not start"; }
    pid=""
    for ((i = 0; i < 100; i++)); do
      pid="$(cat "$TMP/pgbouncer$k.pid" 2>/dev/null || true)"
      [ -n "$pid" ] && break
      sleep 0.1
    done
    [ -n "$pid" ] || die "pgbouncer wrote no pidfile"
    if ! wait_port "$PGB_PORT" "$pid" pgbouncer 30; then
      tail -n 30 "$TMP/pgbouncer$k.log" >&2 || true
      die "pgbouncer did not start"
    fi
    pids="${pids:+$pids }$pid"
  done
  PGBOUNCER_PID="$pids"
  log "pgbouncer pid(s) $PGBOUNCER_PID on 127.0.0.1:$PGB_PORT"
}

start_ddlguard
[ "${TRACKING:-on}" = compare ] && start_ddlguard_notrack
[ -n "${BASELINE_BIN:-}" ] && start_ddlguard_base
[ -n "$PGBOUNCER_BIN" ] && start_pgbouncer

TARGETS=(direct ddlguard)
[ "${TRACKING:-on}" = compare ] && TARGETS+=(ddlguard-notrack)
[ -n "${BASELINE_BIN:-}" ] && TARGETS+=(ddlguard-base)
[ -n "$PGBOUNCER_BIN" ] && TARGETS+=(pgbouncer)

# A table of ddlguard against another target of the rotation (medians):
# compare_table TARGET TITLE THIS-LABEL OTHER-LABEL
compare_table() {
  local other="$1" title="$2" this_l="$3" other_l="$4" mode c on_tps off_tps on_cpu off_cpu cost dcpu
  echo
  echo "$title"
  echo
  echo "| mode | clients | $this_l TPS | $other_l TPS | TPS cost | $this_l CPU µs/txn | $other_l CPU µs/txn | CPU cost µs/txn |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for mode in "${MODE_LIST[@]}"; do
    for c in "${CLIENT_LIST[@]}"; do
      # shellcheck disable=SC2086 # word splitting of the per-round lists is intended
      {
        on_tps="$(median ${R_TPS["$mode|$c|ddlguard"]})"
        off_tps="$(median ${R_TPS["$mode|$c|$other"]})"
        on_cpu="$(median ${R_CPU["$mode|$c|ddlguard"]})"
        off_cpu="$(median ${R_CPU["$mode|$c|$other"]})"
      }
      cost="$(awk -v a="$on_tps" -v b="$off_tps" 'BEGIN { if (b + 0 > 0) printf "%+.1f%%", (b - a) / b * 100; else print "n/a" }')"
      dcpu="$(awk -v a="$on_cpu" -v b="$off_cpu" 'BEGIN { if (b + 0 > 0) printf "%+.1f", a - b; else print "n/a" }')"
      echo "| $mode | $c | $(fmt '%.0f' "$on_tps") | $(fmt '%.0f' "$off_tps") | $cost | $(fmt '%.1f' "$on_cpu") | $(fmt '%.1f' "$off_cpu") | $dcpu |"
    done
  done
}

# Round by round, ddlguard against PgBouncer: the two ran seconds apart in
# the same round, so each round's ratio cancels the drift the machine shows
# between rounds, which the medians of the main table keep.
# paired_table
paired_table() {
  local mode c r g b tps_r cpu_d tps_list cpu_list n tps_ok cpu_ok gt bt gc bc
  echo
  echo "Paired by round, ddlguard against PgBouncer: the median of the per-round TPS ratios and CPU differences, and in how many rounds ddlguard was on the target's side (TPS ratio >= 1.0, CPU <= PgBouncer's):"
  echo
  echo "| mode | clients | median TPS ratio | rounds TPS >= 1.0 | median CPU difference µs/txn | rounds CPU <= PgBouncer |"
  echo "|---|---:|---:|---:|---:|---:|"
  for mode in "${MODE_LIST[@]}"; do
    for c in "${CLIENT_LIST[@]}"; do
      read -ra gt <<<"${R_TPS["$mode|$c|ddlguard"]}"
      read -ra bt <<<"${R_TPS["$mode|$c|pgbouncer"]}"
      read -ra gc <<<"${R_CPU["$mode|$c|ddlguard"]}"
      read -ra bc <<<"${R_CPU["$mode|$c|pgbouncer"]}"
      tps_list="" cpu_list="" n=0 tps_ok=0 cpu_ok=0
      for ((r = 0; r < ${#gt[@]} && r < ${#bt[@]}; r++)); do
        g="${gt[$r]}" b="${bt[$r]}"
        tps_r="$(ratio "$g" "$b")"
        cpu_d="$(awk -v a="${gc[$r]:-n/a}" -v b="${bc[$r]:-n/a}" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.3f\n", a - b }')"
        tps_list="$tps_list $tps_r" cpu_list="$cpu_list $cpu_d"
        n=$((n + 1))
        awk -v x="$tps_r" 'BEGIN { exit !(x != "n/a" && x + 0 >= 1.0) }' && tps_ok=$((tps_ok + 1))
        awk -v x="$cpu_d" 'BEGIN { exit !(x != "n/a" && x + 0 <= 0) }' && cpu_ok=$((cpu_ok + 1))
      done
      # shellcheck disable=SC2086 # word splitting of the per-round lists is intended
      echo "| $mode | $c | $(fmt '%.3f' "$(median $tps_list)") | $tps_ok of $n | $(fmt '%+.1f' "$(median $cpu_list)") | $cpu_ok of $n |"
    done
  done
}

target_port() {
  case "$1" in
    direct) echo "$PG_PORT" ;;
    ddlguard) echo "$DG_PORT" ;;
    ddlguard-notrack) echo "$NOTRACK_PORT" ;;
    ddlguard-base) echo "$BASE_PORT" ;;
    pgbouncer) echo "$PGB_PORT" ;;
  esac
}
target_pid() {
  case "$1" in
    ddlguard) echo "$DDLGUARD_PID" ;;
    ddlguard-notrack) echo "$NOTRACK_PID" ;;
    ddlguard-base) echo "$BASE_PID" ;;
    pgbouncer) echo "$PGBOUNCER_PID" ;;
    *) echo "" ;;
  esac
}

# ------------------------------------------------------------- throughput --
declare -A R_TPS R_LAT R_FAIL R_CPU R_CSW
PROBLEMS=()
RAW_ROWS=()

run_pgbench() { # round mode clients target
  local round="$1" mode="$2" c="$3" target="$4"
  local port pid out t0=0 t1=0 rc=0 tps lat n failed cpu
  port="$(target_port "$target")"
  pid="$(target_pid "$target")"
  out="$RUNS_DIR/r$round-$mode-c$c-$target.txt"
  log "round $round: -M $mode -c $c -> $target (${DURATION}s)"
  [ -n "$pid" ] && t0="$(proc_ticks $pid)"
  local perf_pid=""
  prof_pid=""
  if [ "${PROFILE:-0}" = 1 ] && [ "$target" = ddlguard ] && [ "$round" = 1 ] && command -v perf >/dev/null; then
    perf record -F 999 -g -p "${pid// /,}" -o "$out.perf.data" >/dev/null 2>&1 &
    prof_pid=$!
  fi
  if [ "${PERF:-0}" = 1 ] && [ -n "$pid" ] && command -v perf >/dev/null; then
    perf stat -x, -e context-switches,cpu-migrations -p "${pid// /,}" -o "$out.perf" 2>/dev/null &
    perf_pid=$!
  fi
  run_waited "$out" "$PGBENCH" -h 127.0.0.1 -p "$port" -U postgres -n -S -M "$mode" -c "$c" -j 2 -T "$DURATION" postgres || rc=$?
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
  fi
  if [ -n "${prof_pid:-}" ]; then
    kill -INT "$prof_pid" 2>/dev/null || true
    wait "$prof_pid" 2>/dev/null || true
    perf report -i "$out.perf.data" --no-children --percent-limit 0.7 --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -n 120 >"$out.profile.txt" || true
    prof_pid=""
  fi
  if [ -n "$pid" ]; then
    if alive $pid; then
      t1="$(proc_ticks $pid)"
    else
      PROBLEMS+=("$target (pid $pid) died during -M $mode -c $c round $round")
      die "$target died during a pgbench run; see $out"
    fi
  fi
  tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out" | head -n 1)"
  lat="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | head -n 1)"
  n="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n 1)"
  failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n 1)"
  [ -n "$tps" ] || tps="n/a"
  [ -n "$lat" ] || lat="n/a"
  [ -n "$failed" ] || failed="n/a"
  cpu="n/a"
  if [ -n "$pid" ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
    cpu="$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.3f\n", d / hz * 1e6 / n }')"
  fi
  if [ "$rc" -ne 0 ] || [ "$failed" != 0 ] || grep -qiE 'error|fatal|abort|could not' "$out"; then
    local msg
    msg="$(grep -iE 'error|fatal|abort|could not' "$out" | sort | uniq -c | sort -rn | head -n 3 | sed 's/^ *//' | tr '\n' ';' || true)"
    PROBLEMS+=("pgbench -M $mode -c $c via $target (round $round): exit $rc, failed=$failed, processed=${n:-?}; ${msg:-no error text}")
  fi
  local key="$mode|$c|$target"
  R_TPS[$key]="${R_TPS[$key]:-} $tps"
  R_LAT[$key]="${R_LAT[$key]:-} $lat"
  R_FAIL[$key]="${R_FAIL[$key]:-} $failed"
  R_CPU[$key]="${R_CPU[$key]:-} $cpu"
  if [ -n "$perf_pid" ] && [ -f "$out.perf" ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
    local csw
    csw="$(awk -F, -v n="$n" '$3 == "context-switches" { printf "%.3f\n", $1 / n }' "$out.perf")"
    R_CSW[$key]="${R_CSW[$key]:-} ${csw:-n/a}"
  fi
  RAW_ROWS+=("| $round | $mode | $c | $target | $(fmt '%.0f' "$tps") | $(fmt '%.3f' "$lat") | $failed | ${n:-n/a} | $(fmt '%.1f' "$cpu") |")
}

if [ "$WARMUP" -gt 0 ]; then
  for target in "${TARGETS[@]}"; do
    log "warm-up ${WARMUP}s -> $target"
    run_waited "$RUNS_DIR/warmup-$target.txt" "$PGBENCH" -h 127.0.0.1 -p "$(target_port "$target")" \
      -U postgres -n -S -M simple -c 8 -j 2 -T "$WARMUP" postgres ||
      PROBLEMS+=("warm-up via $target: pgbench failed: $(grep -iE 'error|fatal|abort' "$RUNS_DIR/warmup-$target.txt" | head -n 1 || true)")
  done
fi

NT="${#TARGETS[@]}"
cfg=0
for ((round = 1; round <= ROUNDS; round++)); do
  cfg=0
  for mode in "${MODE_LIST[@]}"; do
    for c in "${CLIENT_LIST[@]}"; do
      # Rotate the target order per configuration and per round, and run it
      # backwards in even rounds, so that every target follows every other
      # one: no target always comes right after the same one.
      off=$(((cfg + round - 1) % NT))
      for ((k = 0; k < NT; k++)); do
        if ((round % 2 == 1)); then
          idx=$(((off + k) % NT))
        else
          idx=$(((off + NT - k) % NT))
        fi
        run_pgbench "$round" "$mode" "$c" "${TARGETS[$idx]}"
      done
      cfg=$((cfg + 1))
    done
  done
done

# --------------------------------------------------------------- syscalls --
declare -A S_CALLS
if [ "${PERF:-0}" = 1 ] && command -v strace >/dev/null; then
  for target in "${TARGETS[@]}"; do
    pid="$(target_pid "$target")"
    [ -n "$pid" ] || continue
    for mode in "${MODE_LIST[@]}"; do
      out="$RUNS_DIR/strace-$mode-$target.txt"
      log "syscalls: -M $mode -c 8 -> $target (5s under strace -c -f)"
      # shellcheck disable=SC2046 # one -p per pid
      strace -c -f $(printf -- '-p %s ' $pid) -o "$out.strace" 2>/dev/null &
      spid=$!
      sleep 0.5
      run_waited "$out" "$PGBENCH" -h 127.0.0.1 -p "$(target_port "$target")" -U postgres -n -S -M "$mode" -c 8 -j 2 -T 5 postgres || true
      kill -INT "$spid" 2>/dev/null || true
      wait "$spid" 2>/dev/null || true
      n="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n 1)"
      if [ -n "$n" ] && [ "$n" -gt 0 ] && [ -f "$out.strace" ]; then
        # strace -c: "% time, seconds, usecs/call, calls, [errors], syscall".
        S_CALLS["$mode|$target"]="$(awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { t += $4 } END { printf "%.2f", t / n }' "$out.strace")"
        S_CALLS["$mode|$target|top"]="$(awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" && $4 / n >= 0.01 { printf "%s %.2f, ", $NF, $4 / n }' "$out.strace")"
      fi
    done
  done
fi

# ------------------------------------------------------- user vs kernel --
# Where each proxy's CPU goes: a separate pass per target, mode and client
# count under `perf record -F 4999 -e cpu-clock` (no call graphs), samples
# split into the proxy's own code (user space: the proxy, libc, the vDSO)
# and the kernel's. Sampling adds to the CPU it measures, so these passes
# are reported apart and never in the CPU figures; the split is what
# compares: the kernel's share is the same TCP work for every proxy.
declare -A U_USER U_KERN
if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null; then
  for target in "${TARGETS[@]}"; do
    pid="$(target_pid "$target")"
    [ -n "$pid" ] || continue
    for mode in "${MODE_LIST[@]}"; do
      for c in "${CLIENT_LIST[@]}"; do
        out="$RUNS_DIR/split-$mode-c$c-$target.txt"
        log "user/kernel split: -M $mode -c $c -> $target (5s under perf record -F 4999)"
        perf record -q -F 4999 -e cpu-clock -p "${pid// /,}" -o "$out.data" >/dev/null 2>&1 &
        spid=$!
        sleep 0.3
        run_waited "$out" "$PGBENCH" -h 127.0.0.1 -p "$(target_port "$target")" -U postgres -n -S -M "$mode" -c "$c" -j 2 -T 5 postgres || true
        kill -INT "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        n="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n 1)"
        if [ -n "$n" ] && [ "$n" -gt 0 ] && [ -f "$out.data" ]; then
          read -r u k < <(perf report -i "$out.data" --sort dso --stdio -F sample,dso 2>/dev/null |
            awk '$1 ~ /^[0-9]+$/ { if ($2 ~ /kernel/) k += $1; else u += $1 } END { print u + 0, k + 0 }')
          U_USER["$mode|$c|$target"]="$(awk -v s="$u" -v n="$n" 'BEGIN { printf "%.2f", s / 4999 * 1e6 / n }')"
          U_KERN["$mode|$c|$target"]="$(awk -v s="$k" -v n="$n" 'BEGIN { printf "%.2f", s / 4999 * 1e6 / n }')"
        fi
        rm -f "$out.data"
      done
    done
  done
fi

# ----------------------------------------------------------------- memory --
if [ "$IDLE_WARM" = 1 ]; then
  printf 'SELECT 1;\n\\sleep 10 s\n' >"$TMP/idle.sql"
  IDLE_DESC="\`SELECT 1;\` then \`\\sleep 10 s\`"
else
  printf '\\sleep 10 s\n' >"$TMP/idle.sql"
  IDLE_DESC="only \`\\sleep 10 s\`"
fi
declare -A M_BEFORE M_AFTER M_PER M_ANON M_CLIENTS M_BACKENDS

backend_count() { # client backends on Postgres with application_name $1
  "$PSQL" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc \
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name = '$1'" 2>/dev/null || echo "n/a"
}

measure_idle() { # target
  local target="$1" port pid before after anon_before anon_after clients=0 backends=0 i bg out rc=0 app="e2e-idle-$1"
  # A fresh proxy process, so allocator caches from the throughput runs do not
  # hide per-session memory; one short session first to get past lazy init.
  if [ "$target" = ddlguard ]; then
    stop_ddlguard
    start_ddlguard
  else
    stop_pgbouncer
    start_pgbouncer
  fi
  port="$(target_port "$target")"
  pid="$(target_pid "$target")"
  "$PSQL" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1 ||
    PROBLEMS+=("memory: psql 'SELECT 1' via $target failed")
  # Past the first periodic passes (ddlguard applies held usage records and
  # flushes at its first tick): what they fault in once is not per session.
  sleep "$IDLE_SETTLE"
  before="$(proc_rss_kib $pid)"
  anon_before="$(proc_anon_kib $pid)"
  out="$RUNS_DIR/idle-$target.txt"
  log "memory: $IDLE_SESSIONS idle sessions -> $target (RSS before ${before} KiB)"
  PGAPPNAME="$app" "$PGBENCH" -h 127.0.0.1 -p "$port" -U postgres -n -c "$IDLE_SESSIONS" -j 2 -T 12 \
    -f "$TMP/idle.sql" postgres >"$out" 2>&1 &
  bg=$!
  BG_PIDS+=("$bg")
  # Wait (up to ~8 s) until all sessions are connected to the proxy (and, with
  # IDLE_WARM=1, have their server connection), then sample.
  for ((i = 0; i < 32; i++)); do
    sleep 0.25
    clients="$(established_on "$port")"
    [ "$clients" -ge "$IDLE_SESSIONS" ] || continue
    [ "$IDLE_WARM" = 1 ] || break
    backends="$(backend_count "$app")"
    [ "$backends" != n/a ] && [ "$backends" -ge "$IDLE_SESSIONS" ] && break
  done
  sleep 1
  clients="$(established_on "$port")"
  after="$(proc_rss_kib $pid)"
  anon_after="$(proc_anon_kib $pid)"
  backends="$(backend_count "$app")"
  log "memory: $target RSS after ${after} KiB, $clients client connections, $backends server backends"
  wait "$bg" || rc=$?
  BG_PIDS=()
  if [ "$rc" -ne 0 ] || grep -qiE 'error|fatal|abort|could not' "$out"; then
    PROBLEMS+=("memory pgbench via $target: exit $rc; $(grep -iE 'error|fatal|abort|could not' "$out" | sort | uniq -c | sort -rn | head -n 3 | sed 's/^ *//' | tr '\n' ';' || true)")
  fi
  if [ "$clients" -lt "$IDLE_SESSIONS" ]; then
    PROBLEMS+=("memory via $target: only $clients of $IDLE_SESSIONS sessions were connected when RSS was sampled")
  fi
  M_BEFORE[$target]="$before"
  M_AFTER[$target]="$after"
  M_CLIENTS[$target]="$clients"
  M_BACKENDS[$target]="$backends"
  M_PER[$target]="$(awk -v a="$after" -v b="$before" -v n="$IDLE_SESSIONS" 'BEGIN { printf "%.1f\n", (a - b) / n }')"
  M_ANON[$target]="$(awk -v a="$anon_after" -v b="$anon_before" -v n="$IDLE_SESSIONS" 'BEGIN { printf "%.1f\n", (a - b) / n }')"
}

MEM_TARGETS=(ddlguard)
[ -n "$PGBOUNCER_BIN" ] && MEM_TARGETS+=(pgbouncer)
for target in "${MEM_TARGETS[@]}"; do
  measure_idle "$target"
done

# Anything the proxy logged at warn/error level is worth a look.
DG_LOG_LINES="$(cat "$TMP"/ddlguard.*.log 2>/dev/null | grep -ciE 'warn|error' || true)"
if [ "${DG_LOG_LINES:-0}" -gt 0 ]; then
  PROBLEMS+=("ddlguard logged $DG_LOG_LINES warn/error lines: $(cat "$TMP"/ddlguard.*.log | grep -iE 'warn|error' |
    sed -E 's/^[0-9][0-9T:.+-]*Z? +//' | sort | uniq -c | sort -rn | head -n 5 | sed -E 's/^ *([0-9]+) /\1x /' | tr '\n' ';')")
fi
if [ -n "$PGBOUNCER_BIN" ]; then
  PGB_LOG_LINES="$(grep -ciE 'WARNING|ERROR|FATAL' "$TMP/pgbouncer.log" 2>/dev/null || true)"
  if [ "${PGB_LOG_LINES:-0}" -gt 0 ]; then
    PROBLEMS+=("pgbouncer logged $PGB_LOG_LINES warning/error lines, e.g.: $(grep -iE 'WARNING|ERROR|FATAL' "$TMP/pgbouncer.log" | head -n 3 | tr '\n' ';')")
  fi
fi

# ----------------------------------------------------------------- report --
REPORT="$TMP/report.md"
CPU_MODEL="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
AGG="median of $ROUNDS rounds"
[ "$ROUNDS" -eq 1 ] && AGG="single round"
{
  echo "# ddlguard end-to-end benchmark"
  echo
  echo "Machine: $(nproc) cores${CPU_MODEL:+ ($CPU_MODEL)}, load avg $LOAD_BEFORE before, $LOADAVG at end; sched_autogroup_enabled $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo n/a) (each proxy in a session of its own); ddlguard worker_threads ${WORKERS:-1}; PgBouncer processes $PGB_PROCS; PostgreSQL $PG_VERSION; PgBouncer: $PGB_VERSION; ddlguard $GIT_REV; $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "pgbench -S -n -j 2 -T $DURATION, scale $SCALE, $AGG; all over 127.0.0.1; upstream TLS off; ddlguard usage tracking ${TRACKING:-on}; PgBouncer pool_mode=session, server_lifetime=$PGB_SERVER_LIFETIME; CPU = proxy utime+stime per transaction."
  echo
  echo "| mode | clients | direct TPS | ddlguard TPS | pgbouncer TPS | ddlguard/direct | ddlguard/pgbouncer | ddlguard lat ms | pgbouncer lat ms | ddlguard CPU µs/txn | pgbouncer CPU µs/txn |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for mode in "${MODE_LIST[@]}"; do
    for c in "${CLIENT_LIST[@]}"; do
      # shellcheck disable=SC2086 # word splitting of the per-round lists is intended
      {
        d_tps="$(median ${R_TPS["$mode|$c|direct"]})"
        g_tps="$(median ${R_TPS["$mode|$c|ddlguard"]})"
        g_lat="$(median ${R_LAT["$mode|$c|ddlguard"]})"
        g_cpu="$(median ${R_CPU["$mode|$c|ddlguard"]})"
        if [ -n "$PGBOUNCER_BIN" ]; then
          b_tps="$(median ${R_TPS["$mode|$c|pgbouncer"]})"
          b_lat="$(median ${R_LAT["$mode|$c|pgbouncer"]})"
          b_cpu="$(median ${R_CPU["$mode|$c|pgbouncer"]})"
        else
          b_tps="n/a" b_lat="n/a" b_cpu="n/a"
        fi
      }
      echo "| $mode | $c | $(fmt '%.0f' "$d_tps") | $(fmt '%.0f' "$g_tps") | $(fmt '%.0f' "$b_tps") | $(ratio "$g_tps" "$d_tps") | $(ratio "$g_tps" "$b_tps") | $(fmt '%.3f' "$g_lat") | $(fmt '%.3f' "$b_lat") | $(fmt '%.1f' "$g_cpu") | $(fmt '%.1f' "$b_cpu") |"
    done
  done
  [ -n "$PGBOUNCER_BIN" ] && [ "$ROUNDS" -gt 1 ] && paired_table
  if [ "${TRACKING:-on}" = compare ]; then
    compare_table ddlguard-notrack "Usage tracking on vs off (the same binary, one more target in the same rotation):" "tracking on" "tracking off"
  fi
  if [ -n "${BASELINE_BIN:-}" ]; then
    compare_table ddlguard-base "This build vs BASELINE_BIN ($BASELINE_BIN)${BASELINE_EPOLL_RELAY:+ with epoll_relay = $BASELINE_EPOLL_RELAY}, one more target in the same rotation:" "this" "base"
  fi
  if [ "${PERF:-0}" = 1 ]; then
    echo
    echo "Context switches per transaction (perf stat -p, median):"
    echo
    echo "| mode | clients | $(printf '%s | ' "${TARGETS[@]}")"
    echo "|---|---:|$(printf -- '---:|%.0s' "${TARGETS[@]}")"
    for mode in "${MODE_LIST[@]}"; do
      for c in "${CLIENT_LIST[@]}"; do
        row="| $mode | $c |"
        for target in "${TARGETS[@]}"; do
          # shellcheck disable=SC2086
          row="$row $(fmt '%.2f' "$(median ${R_CSW["$mode|$c|$target"]:-n/a})") |"
        done
        echo "$row"
      done
    done
    echo
    if [ "${#U_USER[@]}" -gt 0 ]; then
      echo "User space and kernel, µs per transaction (a separate 5 s pass per cell under perf record -F 4999; sampling inflates both, compare within a row):"
      echo
      hdr="| mode | clients |"
      sep="|---|---:|"
      for target in "${TARGETS[@]}"; do
        [ "$target" = direct ] && continue
        hdr="$hdr $target user | $target kernel |"
        sep="$sep---:|---:|"
      done
      echo "$hdr"
      echo "$sep"
      for mode in "${MODE_LIST[@]}"; do
        for c in "${CLIENT_LIST[@]}"; do
          row="| $mode | $c |"
          for target in "${TARGETS[@]}"; do
            [ "$target" = direct ] && continue
            row="$row ${U_USER["$mode|$c|$target"]:-n/a} | ${U_KERN["$mode|$c|$target"]:-n/a} |"
          done
          echo "$row"
        done
      done
      echo
    fi
    echo "Syscalls per transaction (a separate 5 s pass per target under strace -c -f, -c 8):"
    echo
    for mode in "${MODE_LIST[@]}"; do
      for target in "${TARGETS[@]}"; do
        [ -n "${S_CALLS["$mode|$target"]:-}" ] || continue
        echo "- $mode, $target: ${S_CALLS["$mode|$target"]} per txn (${S_CALLS["$mode|$target|top"]:-})"
      done
    done
  fi
  echo
  echo "Memory, $IDLE_SESSIONS idle sessions (pgbench -n -c $IDLE_SESSIONS -j 2 -T 12 -f idle.sql, $IDLE_DESC; fresh proxy process, one warm-up session, RSS sampled $IDLE_SETTLE s later and once all are connected):"
  echo
  echo "| proxy | RSS before KiB | RSS after KiB | KiB per idle session | anonymous KiB per idle session | client conns at sample | their server backends |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for target in "${MEM_TARGETS[@]}"; do
    echo "| $target | ${M_BEFORE[$target]} | ${M_AFTER[$target]} | ${M_PER[$target]} | ${M_ANON[$target]} | ${M_CLIENTS[$target]} | ${M_BACKENDS[$target]} |"
  done
  echo
  echo "All runs:"
  echo
  echo "| round | mode | clients | target | TPS | lat ms | failed | txns | proxy CPU µs/txn |"
  echo "|---:|---|---:|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${RAW_ROWS[@]}"
  echo
  if [ "${#PROBLEMS[@]}" -eq 0 ]; then
    echo "Problems: none (no failed transactions, no pgbench errors, no proxy warnings)."
  else
    echo "Problems:"
    echo
    for p in "${PROBLEMS[@]}"; do
      echo "- $p"
    done
  fi
} >"$REPORT"

mkdir -p "$(dirname "$REPORT_OUT")"
cp "$REPORT" "$REPORT_OUT"
echo
cat "$REPORT"
echo
log "report written to $REPORT_OUT"
