#!/usr/bin/env bash
# Backfill benchmark (issue 19): a table of $ROWS rows under pgbench traffic
# through ddlguard, filled once by `ddlguard backfill` (throttled key-range
# batches) and once by a single `UPDATE` of the whole table. Reports, for
# each, how long it took and the traffic's p95/p99 latency while it ran,
# next to the traffic alone.
#
# Usage:
#   benches/backfill.sh                                   # 1,000,000 rows
#   ROWS=20000 PHASE_SECS=5 DDLGUARD_BIN=target/debug/ddlguard benches/backfill.sh   # smoke run
#
# Knobs: ROWS=1000000, CLIENTS=8 (pgbench -c), PHASE_SECS=20 (traffic alone),
# BATCH=5000 (--batch), DDLGUARD_BIN (else `cargo build --release`),
# DDLGUARD_PG_BIN (PostgreSQL bin dir), OUT (report file, default
# target/backfill-report.md), KEEP_TMP=1.
#
# Traffic columns count the statements that started in each window
# (throughput, p95, p99, max). Traffic: pgbench -M prepared, 80% point reads and 20% point updates of
# another column of the same table, run in 5 s chunks (each writes its
# per-transaction log) so every window's latencies are complete. As root,
# Postgres runs as the `postgres` OS user.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROWS="${ROWS:-1000000}"
CLIENTS="${CLIENTS:-8}"
PHASE_SECS="${PHASE_SECS:-20}"
BATCH="${BATCH:-5000}"
OUT="${OUT:-$HERE/target/backfill-report.md}"
unset PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS PGAPPNAME 2>/dev/null || true

say() { printf '[backfill-bench %s] %s\n' "$(date +%T)" "$*" >&2; }

pg_bin() {
  if [ -n "${DDLGUARD_PG_BIN:-}" ]; then echo "$DDLGUARD_PG_BIN"; return; fi
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/pgbench" ]; then
    pg_config --bindir; return
  fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
PGB="$(pg_bin)"
[ -x "$PGB/initdb" ] || { say "no PostgreSQL server binaries (set DDLGUARD_PG_BIN)"; exit 2; }

BIN="${DDLGUARD_BIN:-}"
if [ -z "$BIN" ]; then
  say "building ddlguard (release)"
  (cd "$HERE" && cargo build --release --quiet)
  BIN="${CARGO_TARGET_DIR:-$HERE/target}/release/ddlguard"
fi
[ -x "$BIN" ] || { say "no ddlguard binary at $BIN"; exit 2; }

TMP="$(mktemp -d /tmp/ddlguard-backfill-bench.XXXXXX)"
chmod 755 "$TMP"
RUNAS=()
[ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --) && chown postgres "$TMP"
PIDS=()
finish() {
  set +e
  touch "$TMP/stop"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [ -f "$TMP/pg/postmaster.pid" ] && "${RUNAS[@]}" "$PGB/pg_ctl" -D "$TMP/pg" -m immediate stop >/dev/null 2>&1
  if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap finish EXIT

port() { # a port nothing listens on
  local p
  while :; do
    p=$((21000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
PG_PORT="$(port)"; PROXY_PORT="$(port)"; HTTP_PORT="$(port)"

say "starting PostgreSQL on $PG_PORT"
"${RUNAS[@]}" "$PGB/initdb" -D "$TMP/pg" -U postgres -A trust >/dev/null
"${RUNAS[@]}" "$PGB/pg_ctl" -D "$TMP/pg" -l "$TMP/pg.log" -w \
  -o "-p $PG_PORT -k $TMP -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100" start >/dev/null
direct() { "$PGB/psql" -X -q -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d bench -v ON_ERROR_STOP=1 "$@"; }
"$PGB/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "CREATE DATABASE bench"
say "loading $ROWS rows"
direct -c "CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL, v_upper text, hits int NOT NULL DEFAULT 0)" \
  -c "INSERT INTO items (id, v) SELECT g, md5(g::text) FROM generate_series(1, $ROWS) g" \
  -c "VACUUM ANALYZE items"

cat >"$TMP/proxy.toml" <<EOF
[server]
listen = "127.0.0.1:$PROXY_PORT"
worker_threads = 0
[upstream]
port = $PG_PORT
tls = "disable"
user = "postgres"
[usage]
store = "sqlite:$TMP/usage.db"
[admin]
http_listen = "127.0.0.1:$HTTP_PORT"
[log]
level = "warn"
EOF
"$BIN" serve --config "$TMP/proxy.toml" 2>"$TMP/ddlguard.log" &
PIDS+=("$!")
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && break; sleep 0.1; done

printf '\\set id random(1, %s)\nSELECT v FROM items WHERE id = :id;\n' "$ROWS" >"$TMP/read.sql"
printf '\\set id random(1, %s)\nUPDATE items SET hits = hits + 1 WHERE id = :id;\n' "$ROWS" >"$TMP/write.sql"
traffic() { # 5 s pgbench chunks through ddlguard until $TMP/stop exists
  local i=0
  while [ ! -f "$TMP/stop" ]; do
    i=$((i + 1))
    (cd "$TMP" && "$PGB/pgbench" -n -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -M prepared \
      -c "$CLIENTS" -j 2 -T 5 -l --log-prefix="tx.$i" -f read.sql@8 -f write.sql@2 bench >/dev/null 2>&1) || true
  done
}
traffic &
TRAFFIC_PID=$!
PIDS+=("$TRAFFIC_PID")
now() { date +%s.%N; }
window() { # from to -> "transactions p95_ms p99_ms max_ms" of the traffic that started in [from, to]
  # (a statement blocked by the UPDATE counts with its whole wait)
  cat "$TMP"/tx.* 2>/dev/null | awk -v a="$1" -v b="$2" '{ t = $5 + $6 / 1e6 - $3 / 1e6; if (t >= a && t <= b) print $3 / 1000 }' |
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "0 n/a n/a n/a"; exit }
      i95 = int(NR * 0.95 + 0.999); i99 = int(NR * 0.99 + 0.999); printf "%d %.2f %.2f %.2f\n", NR, v[i95], v[i99], v[NR] }'
}

sleep 2 # the traffic's first statements give the usage buckets a level
say "traffic alone for ${PHASE_SECS}s"
t0="$(now)"; sleep "$PHASE_SECS"; t1="$(now)"

say "ddlguard backfill (--batch $BATCH)"
b0="$(now)"
"$BIN" backfill --http "127.0.0.1:$HTTP_PORT" items --set "v_upper = upper(v)" --batch "$BATCH" \
  --database bench --follow 2>"$TMP/follow.log" >"$TMP/backfill.out"
b1="$(now)"
reasons="$(tr '\r' '\n' <"$TMP/follow.log" | sed -n 's/.*throttle: \([a-z-]*\).*/\1/p' | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')"
[ "$(direct -c "SELECT count(*) FROM items WHERE v_upper IS DISTINCT FROM upper(v)")" = 0 ] ||
  { say "the backfill left rows unfilled"; exit 1; }

say "resetting the column (not measured), then one UPDATE of the whole table"
direct -c "UPDATE items SET v_upper = NULL" -c "VACUUM items"
sleep 5
u0="$(now)"
direct -c "UPDATE items SET v_upper = upper(v)"
u1="$(now)"
sleep 2
# The last 5 s chunk ends and writes its log; then every window is complete.
touch "$TMP/stop"
wait "$TRAFFIC_PID" || true
read -r n_alone p95_alone p99_alone max_alone < <(window "$t0" "$t1")
read -r n_job p95_job p99_job max_job < <(window "$b0" "$b1")
read -r n_upd p95_upd p99_upd max_upd < <(window "$u0" "$u1")

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
tps() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
mkdir -p "$(dirname "$OUT")"
{
  echo "## Backfill of $ROWS rows under pgbench (-c $CLIENTS, 80% reads / 20% updates) through ddlguard"
  echo
  echo "| | duration s | traffic tx/s | traffic p95 ms | traffic p99 ms | traffic max ms |"
  echo "|---|---|---|---|---|---|"
  echo "| traffic alone | $(secs "$t0" "$t1") | $(tps "$n_alone" "$t0" "$t1") | $p95_alone | $p99_alone | $max_alone |"
  echo "| ddlguard backfill --batch $BATCH | $(secs "$b0" "$b1") | $(tps "$n_job" "$b0" "$b1") | $p95_job | $p99_job | $max_job |"
  echo "| single UPDATE of the table | $(secs "$u0" "$u1") | $(tps "$n_upd" "$u0" "$u1") | $p95_upd | $p99_upd | $max_upd |"
  echo
  echo "Throttle reasons seen by --follow (polls): ${reasons:-none}. ddlguard: $BIN; PostgreSQL: $("$PGB/postgres" --version)."
} | tee "$OUT"
