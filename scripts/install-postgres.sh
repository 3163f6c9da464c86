#!/usr/bin/env bash
# Installs the PostgreSQL server binaries the test harness needs, if missing.
# Debian/Ubuntu only; elsewhere install PostgreSQL and set DDLGUARD_PG_BIN.
set -euo pipefail

have_server() {
  [ -n "${DDLGUARD_PG_BIN:-}" ] && [ -x "$DDLGUARD_PG_BIN/initdb" ] && return 0
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pgbench" ] && [ -x "$d/pg_isready" ] && return 0
  done
  return 1
}

if have_server && id postgres >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL server binaries not found and apt-get is unavailable: install PostgreSQL and set DDLGUARD_PG_BIN" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# postgresql-common creates the postgres user; the server package brings initdb.
$SUDO apt-get install -y -q --no-install-recommends postgresql
