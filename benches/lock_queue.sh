#!/usr/bin/env bash
# Lock-queue benchmark (issue 15 item 7): what one long transaction plus an
# ALTER TABLE does to the other clients' traffic on the table, with the
# ALTER sent straight to Postgres and through ddlguard.
#
# Usage (from anywhere):
#   benches/lock_queue.sh
#   DDLGUARD_BIN=target/debug/ddlguard benches/lock_queue.sh   # no build
#
# A table `lq` (ROWS rows) is under steady load from CLIENTS pgbench clients
# (each transaction reads one row by key, then updates one), straight to
# Postgres, logged per transaction (pgbench --log). After WARM seconds a
# session opens a transaction that reads the table and stays idle for BLOCK
# seconds; ALTER_AFTER seconds into it `ALTER TABLE lq ADD COLUMN x int` is
# issued, once per scenario:
#   direct        straight to Postgres: it queues behind the blocker, and
#                 every statement on the table queues behind it
#   ddlguard      through ddlguard, lock_timeout = LOCK_TIMEOUT, pre-flight
#                 on (waits outside the lock queue for the old transaction)
#   ddlguard-retry  through ddlguard, pre-flight off (preflight_wait = "0s"):
#                 attempts of LOCK_TIMEOUT each, retried with backoff
# For each: max and p99 latency of the pgbench transactions that finished in
# the window (from the blocker's start to 1 s after both the blocker and the
# ALTER ended), the same before the blocker (normal latency), transactions
# completed in the window, and when the ALTER finished (seconds after the
# blocker began, and after it ended: the target is within one backoff). A markdown report goes to stdout and $OUT.
#
# Environment knobs:
#   CLIENTS=8  ROWS=10000  WARM=3  BLOCK=10  ALTER_AFTER=1  TAIL=4 (seconds
#   of load after the blocker ends)  LOCK_TIMEOUT=100ms  MAX_ATTEMPTS=200
#   RETRY_BACKOFF_MAX=1s  SCENARIOS="direct ddlguard ddlguard-retry"
#   DDLGUARD_BIN=PATH    use this binary (else cargo build --release)
#   DDLGUARD_EXTRA_CONFIG=TEXT  appended to the [policy] section of the
#                        generated config (e.g. other guard settings)
#   DDLGUARD_PG_BIN=DIR  PostgreSQL bin dir (else pg_config --bindir, the
#                        newest /usr/lib/postgresql/*/bin, or PATH)
#   OUT=FILE             report (default <repo>/target/lock-queue-report.md)
#   KEEP_TMP=1           keep the temp dir (pgbench logs, configs)
#
# Needs bash, awk, sort, PostgreSQL server binaries (initdb, pg_ctl, pgbench,
# psql). As root, Postgres runs as the `postgres` OS user.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
START_DIR="$(pwd)"
CLIENTS="${CLIENTS:-8}"
ROWS="${ROWS:-10000}"
WARM="${WARM:-3}"
BLOCK="${BLOCK:-10}"
ALTER_AFTER="${ALTER_AFTER:-1}"
TAIL="${TAIL:-4}"
LOCK_TIMEOUT="${LOCK_TIMEOUT:-100ms}"
MAX_ATTEMPTS="${MAX_ATTEMPTS:-200}"
RETRY_BACKOFF_MAX="${RETRY_BACKOFF_MAX:-1s}"
SCENARIOS="${SCENARIOS:-direct ddlguard ddlguard-retry}"
DDLGUARD_EXTRA_CONFIG="${DDLGUARD_EXTRA_CONFIG:-}"
KEEP_TMP="${KEEP_TMP:-0}"
case "${OUT:-}" in
  "") REPORT="$ROOT/target/lock-queue-report.md" ;;
  /*) REPORT="$OUT" ;;
  *) REPORT="$START_DIR/$OUT" ;;
esac
for v in CLIENTS ROWS WARM BLOCK ALTER_AFTER TAIL MAX_ATTEMPTS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "lock_queue: $v must be a non-negative integer" >&2; exit 2; }
done
[ "$ALTER_AFTER" -lt "$BLOCK" ] || { echo "lock_queue: ALTER_AFTER must be less than BLOCK" >&2; exit 2; }
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGOPTIONS PGAPPNAME 2>/dev/null || true

say() { printf '[lock_queue %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }
now() { date +%s.%N; }

# ----------------------------------------------------------- cleanup --
TMP=""
PGDATA=""
PROXY_PID=""
JOBS=()
teardown() {
  local rc=$? p
  trap - EXIT INT TERM
  set +e
  for p in "${JOBS[@]}" $PROXY_PID; do kill -TERM "$p" 2>/dev/null; done
  for p in "${JOBS[@]}" $PROXY_PID; do wait "$p" 2>/dev/null; done
  if [ -n "$PGDATA" ] && [ -f "$PGDATA/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
  fi
  if [ -n "$TMP" ]; then
    if [ "$KEEP_TMP" = 1 ]; then say "kept $TMP"; else rm -rf -- "$TMP"; fi
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin_dir() {
  local d
  for d in "${DDLGUARD_PG_BIN:-}" "$(pg_config --bindir 2>/dev/null || true)" \
    $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) \
    "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pgbench" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

pick_port() { # a port nothing listens on
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
}

await_port() { # port pid seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# ------------------------------------------------------------- setup --
PG_BIN="$(pg_bin_dir)" || fail "PostgreSQL server binaries not found: install PostgreSQL or set DDLGUARD_PG_BIN"
PSQL="$PG_BIN/psql"
if [ -n "${DDLGUARD_BIN:-}" ]; then
  case "$DDLGUARD_BIN" in /*) BIN="$DDLGUARD_BIN" ;; *) BIN="$START_DIR/$DDLGUARD_BIN" ;; esac
  [ -x "$BIN" ] || fail "DDLGUARD_BIN=$BIN is not an executable"
else
  say "cargo build --release"
  (cd "$ROOT" && cargo build --release)
  BIN="$ROOT/target/release/ddlguard"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ddlguard-lockq.XXXXXX")"
chmod 755 "$TMP"
[ "$(id -u)" -eq 0 ] && chown postgres: "$TMP"
PGDATA="$TMP/pgdata"
PG_PORT="$(pick_port)"
say "initdb and start Postgres on 127.0.0.1:$PG_PORT ($PG_BIN)"
as_pg "$PG_BIN/initdb" -D "$PGDATA" -A trust -U postgres --no-instructions >"$TMP/initdb.log" 2>&1 ||
  { cat "$TMP/initdb.log" >&2; fail "initdb failed"; }
as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$TMP'
fsync = off
synchronous_commit = off
max_connections = 100
EOF
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$TMP/postgres.log" -w start >/dev/null ||
  { tail -n 20 "$TMP/postgres.log" >&2; fail "Postgres did not start"; }

sql() { # port sql...
  local port="$1"
  shift
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}
sql "$PG_PORT" -c "CREATE TABLE lq (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
  INSERT INTO lq (id) SELECT generate_series(1, $ROWS);" -c "VACUUM ANALYZE lq"
cat >"$TMP/traffic.sql" <<EOF
\set id random(1, $ROWS)
SELECT v FROM lq WHERE id = :id;
UPDATE lq SET v = v + 1 WHERE id = :id;
EOF

start_proxy() { # scenario: ddlguard with the guard settings of the scenario
  local preflight="30s"
  [ "$1" = ddlguard-retry ] && preflight="0s"
  PROXY_PORT="$(pick_port)"
  cat >"$TMP/$1.toml" <<EOF
[server]
listen = "127.0.0.1:$PROXY_PORT"

[upstream]
host = "127.0.0.1"
port = $PG_PORT
tls = "disable"
user = "postgres"

[admin]
http_listen = ""

[usage]
store = "memory"

[log]
level = "info"

[policy]
mode = "enforce"
lock_timeout = "$LOCK_TIMEOUT"
max_attempts = $MAX_ATTEMPTS
retry_backoff_max = "$RETRY_BACKOFF_MAX"
preflight_wait = "$preflight"
$DDLGUARD_EXTRA_CONFIG
EOF
  env -u RUST_LOG "$BIN" serve --config "$TMP/$1.toml" >"$TMP/$1.ddlguard.log" 2>&1 &
  PROXY_PID=$!
  await_port "$PROXY_PORT" "$PROXY_PID" 30 || { tail -n 20 "$TMP/$1.ddlguard.log" >&2; fail "ddlguard did not start"; }
}

stop_proxy() {
  [ -n "$PROXY_PID" ] || return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
}

# Latency stats of the transactions that finished in [from, to) (epoch
# seconds): "count max_ms p99_ms".
window_stats() { # from to logfiles...
  local from="$1" to="$2"
  shift 2
  cat "$@" | awk -v from="$from" -v to="$to" '
    { t = $5 + $6 / 1e6; if (t >= from && t < to) print $3 / 1000 }' |
    sort -g | awk '{ a[NR] = $1 } END {
      if (NR == 0) { print "0 n/a n/a"; exit }
      i = int(NR * 0.99); if (i < NR * 0.99) i++; if (i < 1) i = 1
      printf "%d %.1f %.1f\n", NR, a[NR], a[i] }'
}

ROWS_OUT=()
run_scenario() { # scenario
  local name="$1" port="$PG_PORT" logdir="$TMP/$1"
  mkdir -p "$logdir"
  sql "$PG_PORT" -c "ALTER TABLE lq DROP COLUMN IF EXISTS x"
  if [ "$name" != direct ]; then
    start_proxy "$name"
    port="$PROXY_PORT"
  fi
  local duration=$((WARM + BLOCK + TAIL))
  say "$name: $CLIENTS clients for ${duration}s; blocker at ${WARM}s for ${BLOCK}s; ALTER ${ALTER_AFTER}s into it"
  (cd "$logdir" && "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$CLIENTS" -j 2 \
    -T "$duration" -f "$TMP/traffic.sql" --log --log-prefix=tx postgres >pgbench.out 2>&1) &
  local bench=$!
  JOBS=("$bench")
  sleep "$WARM"
  local t_block
  t_block="$(now)"
  { echo "BEGIN; SELECT count(*) FROM lq;"; sleep "$BLOCK"; echo "COMMIT;"; now >"$logdir/blocker.end"; } |
    sql "$PG_PORT" -o /dev/null >"$logdir/blocker.out" 2>&1 &
  local blocker=$!
  JOBS+=("$blocker")
  sleep "$ALTER_AFTER"
  local alter_rc=0 t_alter_end
  sql "$port" -c "ALTER TABLE lq ADD COLUMN x int" >"$logdir/alter.out" 2>&1 || alter_rc=$?
  t_alter_end="$(now)"
  wait "$blocker" || true
  local t_block_end
  t_block_end="$(cat "$logdir/blocker.end")"
  wait "$bench" || fail "$name: pgbench failed: $(tail -n 5 "$logdir/pgbench.out")"
  JOBS=()
  stop_proxy
  local to from_warm
  to="$(awk -v a="$t_alter_end" -v b="$t_block_end" 'BEGIN { printf "%.3f", (a > b ? a : b) + 1 }')"
  from_warm="$(awk -v a="$t_block" 'BEGIN { printf "%.3f", a - 2 }')"
  local normal window alter_s alter_after_end outcome notices
  normal="$(window_stats "$from_warm" "$t_block" "$logdir"/tx*)"
  window="$(window_stats "$t_block" "$to" "$logdir"/tx*)"
  alter_s="$(awk -v a="$t_alter_end" -v b="$t_block" 'BEGIN { printf "%.2f", a - b }')"
  alter_after_end="$(awk -v a="$t_alter_end" -v b="$t_block_end" 'BEGIN { printf "%+.2f", a - b }')"
  outcome="ok"
  [ "$alter_rc" -eq 0 ] || outcome="failed: $(grep -m1 ERROR "$logdir/alter.out" || echo "exit $alter_rc")"
  notices="$(grep -c NOTICE "$logdir/alter.out" || true)"
  read -r n_normal max_normal p99_normal <<<"$normal"
  read -r n_window max_window p99_window <<<"$window"
  ROWS_OUT+=("| $name | $max_window | $p99_window | $n_window | $max_normal | $p99_normal | $alter_s | $alter_after_end | $outcome | $notices |")
  say "$name: window max ${max_window} ms, p99 ${p99_window} ms, ${n_window} tx; ALTER done at +${alter_s}s ($outcome)"
}

for s in $SCENARIOS; do
  case "$s" in direct | ddlguard | ddlguard-retry) run_scenario "$s" ;; *) fail "unknown scenario $s" ;; esac
done

mkdir -p "$(dirname "$REPORT")"
{
  echo "# Lock-queue benchmark"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $("$PSQL" --version), ddlguard $BIN"
  echo "($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)). $CLIENTS pgbench clients"
  echo "(read + update by key) straight to Postgres; a transaction reads \`lq\` and idles ${BLOCK}s;"
  echo "\`ALTER TABLE lq ADD COLUMN x int\` sent ${ALTER_AFTER}s later; lock_timeout $LOCK_TIMEOUT."
  echo "Window: blocker start to 1 s after both the blocker and the ALTER ended. \"normal\": the 2 s before the blocker."
  echo
  echo "| scenario | window max ms | window p99 ms | tx in window | normal max ms | normal p99 ms | ALTER done (s after blocker start) | (s after blocker end) | ALTER | notices |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS_OUT[@]}"
} | tee "$REPORT"
say "report written to $REPORT"
