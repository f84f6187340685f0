#!/bin/sh
# Initializes PGDATA on first start from POSTGRES_* variables and runs the
# scripts in /docker-entrypoint-initdb.d (*.sh executed, *.sql through psql),
# then runs the server in the foreground — the official image's contract,
# without its extras.
set -eu
: "${POSTGRES_USER:=postgres}"
# One server per data directory, even across pods: when a StatefulSet pod is
# force-deleted, its replacement starts while the old server may still run
# (and commit) on the same volume for a moment; PostgreSQL's own
# postmaster.pid check cannot see a server in another PID namespace. An
# exclusive lock on PGDATA, taken before anything touches it and inherited by
# the server and every backend, makes the new one wait until the last
# process of the old one is gone.
mkdir -p "$PGDATA"
exec 9<"$PGDATA"
if ! flock -n 9; then
  echo "another server still runs on $PGDATA; waiting for it to stop" >&2
  flock 9
fi
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "error: POSTGRES_PASSWORD is not set" >&2; exit 1
  fi
  mkdir -p "$PGDATA"; chmod 700 "$PGDATA"
  pwfile=$(mktemp); printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -A scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # A server on the Unix socket only, for the initialization scripts.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start >/dev/null
  export PGHOST=/var/run/postgresql PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD"
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -d postgres -qc "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; sh "$f" ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 -d "$POSTGRES_DB" -qf "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  unset PGHOST PGUSER PGPASSWORD
fi
if [ "${1:-}" = postgres ]; then
  shift
  exec postgres -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
fi
exec "$@"
