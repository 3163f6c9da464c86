#!/usr/bin/env bash
# RSS of the proxy after many distinct statement shapes over many tables
# (issue 12, item 5). Starts a throwaway Postgres cluster, a ddlguard binary
# in front of it, runs SHAPES distinct shapes over TABLES tables through the
# proxy with psql, and prints VmRSS and ddlguard_memory_bytes before/after.
#
#   benches/usage_memory.sh [path/to/ddlguard] [extra [usage] lines]
#   SHAPES=200000 TABLES=500 benches/usage_memory.sh target/debug/ddlguard 'max_memory = "16MB"'
set -euo pipefail
BIN=${1:-target/debug/ddlguard}
EXTRA=${2:-}
SHAPES=${SHAPES:-200000}
TABLES=${TABLES:-500}
PGPORT=${PGPORT:-55432}
PROXY_PORT=${PROXY_PORT:-56432}
HTTP_PORT=${HTTP_PORT:-59187}
PGBIN=${DDLGUARD_PG_BIN:-$(pg_config --bindir)}
[ -x "$PGBIN/initdb" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
WORK=$(mktemp -d /tmp/ddlguard-mem.XXXXXX)
chmod 755 "$WORK"
PROXY_PID=
cleanup() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$WORK/pg" "$WORK/pglog"
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK/pg" "$WORK/pglog"; fi
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U postgres -A trust --no-sync >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -o "-p $PGPORT -c fsync=off -c listen_addresses=127.0.0.1 -k /tmp" -l "$WORK/pglog/pg.log" -w start >/dev/null
cat > "$WORK/proxy.toml" <<TOML
[server]
listen = "127.0.0.1:$PROXY_PORT"
[upstream]
port = $PGPORT
tls = "disable"
user = "postgres"
[admin]
http_listen = "127.0.0.1:$HTTP_PORT"
[usage]
store = "memory"
$EXTRA
TOML
psql -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE DATABASE bench" postgres
for ((t = 0; t < TABLES; t++)); do
  echo "CREATE TABLE t$t (id int primary key, a int, b text, c text, d timestamptz);"
done | psql -q -h 127.0.0.1 -p "$PGPORT" -U postgres bench
"$BIN" serve --config "$WORK/proxy.toml" 2>"$WORK/proxy.log" &
PROXY_PID=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break
  sleep 0.1
done
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$PROXY_PID/status"; }
mem() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep -E '^ddlguard_(memory_bytes|usage_entries|usage_evictions|usage_dropped)' || true; }
echo "start: RSS $(rss)"
for ((n = 0; n < SHAPES; n++)); do
  echo "SELECT a, b AS x$n FROM t$((n % TABLES)) WHERE id = $n;"
done > "$WORK/shapes.sql"
time psql -q -h 127.0.0.1 -p "$PROXY_PORT" -U postgres -f "$WORK/shapes.sql" bench >/dev/null
sleep 2
echo "after $SHAPES shapes over $TABLES tables: RSS $(rss)"
mem
