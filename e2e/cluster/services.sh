#!/usr/bin/env bash
# Private RabbitMQ and PostgreSQL servers for the integration tests, on
# non-default loopback ports so they never meet a developer's own servers —
# below 32768, so an outgoing connection's ephemeral port can never hold one
# of them when a server starts (that happened with 45432).
#   services.sh up     start both (idempotent), print their addresses as exports
#   services.sh down   stop exactly what `up` started (PID files)
#   services.sh env    print the exports only
#   services.sh fault-broker stop|start
#                      stop / start again (its data kept: a broker restart) the
#                      second RabbitMQ node that only fault tests use
#   services.sh fault-postgres stop|start
#                      stop (fast shutdown) or start again the fault-test PostgreSQL,
#                      keeping its data: a store outage for the fault tests
set -euo pipefail
. "$(dirname "$0")/lib.sh"

AMQP_PORT=${EVENTFLOW_TEST_AMQP_PORT:-28672}
EPMD_PORT=${EVENTFLOW_TEST_EPMD_PORT:-28369}
# Erlang distribution listens next to AMQP (the +20000 default would pass 65535 for high ports).
DIST_PORT=${EVENTFLOW_TEST_DIST_PORT:-$((AMQP_PORT + 1))}
# The management HTTP API (plugin rabbitmq_management) one port further.
MGMT_PORT=${EVENTFLOW_TEST_MANAGEMENT_PORT:-$((AMQP_PORT + 2))}
# AMQPS (TLS, a certificate for 127.0.0.1 from a CA of our own) one further.
AMQPS_PORT=${EVENTFLOW_TEST_AMQPS_PORT:-$((AMQP_PORT + 3))}
PG_PORT=${EVENTFLOW_TEST_PG_PORT:-28432}
SVC=$EVENTFLOW_STATE/services
RMQ=$SVC/rabbitmq
PG=$SVC/postgres
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -1)

FAULT_PG_PORT=${EVENTFLOW_TEST_FAULT_PG_PORT:-28433}
FAULT_PG=$SVC/postgres-fault

exports() {
  echo "export EVENTFLOW_TEST_AMQP_URI=amqp://eventflow:eventflow@127.0.0.1:$AMQP_PORT/%2f"
  echo "export EVENTFLOW_TEST_MANAGEMENT_URI=http://eventflow:eventflow@127.0.0.1:$MGMT_PORT"
  echo "export EVENTFLOW_TEST_AMQPS_URI=amqps://eventflow:eventflow@127.0.0.1:$AMQPS_PORT/%2f"
  echo "export EVENTFLOW_TEST_BROKER_CA_FILE=$RMQ/tls/ca.crt"
  echo "export EVENTFLOW_TEST_OTHER_CA_FILE=$RMQ/tls/other-ca.crt"
  echo "export EVENTFLOW_TEST_DATABASE_URL=postgres://eventflow:eventflow@127.0.0.1:$PG_PORT/eventflow"
  fault_broker_exports
  echo "export EVENTFLOW_TEST_FAULT_DATABASE_URL=postgres://eventflow:eventflow@127.0.0.1:$FAULT_PG_PORT/eventflow"
}

wait_port() { # port seconds what
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  die "$3 did not listen on 127.0.0.1:$1 within $2 s (logs: $LOG_DIR)"
}

# The environment RabbitMQ's scripts (server, rabbitmqctl, rabbitmq-plugins)
# need to run as, or reach, the node of DIR; run in a subshell.
rmq_node_env() { # DIR NODE AMQP_PORT DIST_PORT EPMD_PORT
  local dir=$1
  export HOME=$dir RABBITMQ_HOME=/usr/lib/rabbitmq
  export RABBITMQ_NODENAME=$2@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$3 RABBITMQ_DIST_PORT=$4 ERL_EPMD_PORT=$5
  export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log RABBITMQ_LOGS=-
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  # Overrides enabled_plugins at boot (an empty value would start no plugin).
  export RABBITMQ_ENABLED_PLUGINS=rabbitmq_management
}

# One RabbitMQ node: its directory DIR (config, data, logs, PID files), node
# name, AMQP, distribution, epmd and management ports, log name; `fresh`
# wipes its data first, `keep` starts it on the data it has (a restart keeps
# durable queues and persistent messages). epmd is started by us, in the
# foreground, so that its PID is ours to stop. The management plugin serves
# its HTTP API on 127.0.0.1:MGMT_PORT (queue figures for the operator's
# status.groups tests).
rmq_node_start() { # DIR NODE AMQP_PORT DIST_PORT EPMD_PORT MGMT_PORT LOG_NAME fresh|keep [AMQPS_PORT]
  local dir=$1 node=$2 amqp=$3 dist=$4 epmd=$5 mgmt=$6 name=$7 amqps=${9:-}
  if alive "$dir/server.pid"; then rmq_management_on "$@"; return 0; fi
  mkdir -p "$dir/mnesia" "$dir/log" "$LOG_DIR"
  if [ "$8" = fresh ]; then rm -rf "$dir/mnesia"/*; fi
  rmq_node_config "$dir" "$amqp" "$mgmt" "$amqps"
  [ -f "$dir/.erlang.cookie" ] || { head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9 > "$dir/.erlang.cookie"; }
  chmod 600 "$dir/.erlang.cookie"
  chown -R rabbitmq:rabbitmq "$dir"
  (
    rmq_node_env "$dir" "$node" "$amqp" "$dist" "$epmd"
    if ! alive "$dir/epmd.pid"; then
      setpriv --reuid rabbitmq --regid rabbitmq --init-groups epmd -port "$epmd" -address 127.0.0.1 \
        >>"$LOG_DIR/epmd${name#rabbitmq}.log" 2>&1 &
      echo $! > "$dir/epmd.pid"
    fi
    setsid setpriv --reuid rabbitmq --regid rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server \
      >>"$LOG_DIR/$name.log" 2>&1 &
    echo $! > "$dir/server.pid"
  )
  wait_port "$amqp" 90 "RabbitMQ $node"
  wait_port "$mgmt" 60 "the management API of RabbitMQ $node"
  if [ -n "$amqps" ]; then wait_port "$amqps" 30 "the AMQPS listener of RabbitMQ $node"; fi
  log "RabbitMQ $node on 127.0.0.1:$amqp${amqps:+ (AMQPS on 127.0.0.1:$amqps)} (management API on 127.0.0.1:$mgmt)"
}

# The TLS files of a node's AMQPS listener, made once in DIR/tls: a CA of
# our own, a server certificate it signs for IP 127.0.0.1 only (so a client
# that asks for another name, such as localhost, must refuse it), and an
# unrelated CA (a client trusting only that one must refuse the server).
rmq_tls_files() { # DIR
  local d=$1/tls
  if [ -f "$d/server.crt" ] && [ -f "$d/other-ca.crt" ]; then return 0; fi
  mkdir -p "$d"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  local ca_ext=(-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign")
  {
    openssl req -x509 "${ec[@]}" -days 3650 -subj "/O=eventflow/CN=eventflow test CA" "${ca_ext[@]}" \
      -keyout "$d/ca.key" -out "$d/ca.crt"
    openssl req -x509 "${ec[@]}" -days 3650 -subj "/O=eventflow/CN=another CA" "${ca_ext[@]}" \
      -keyout "$d/other-ca.key" -out "$d/other-ca.crt"
    openssl req "${ec[@]}" -subj "/O=eventflow/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr"
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' \
      > "$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
      -extfile "$d/server.ext" -out "$d/server.crt"
  } >>"$LOG_DIR/rabbitmq-tls.log" 2>&1 || die "could not make the test broker's certificates (log: $LOG_DIR/rabbitmq-tls.log)"
  chmod 644 "$d"/*.crt
}

rmq_node_config() { # DIR AMQP_PORT MGMT_PORT [AMQPS_PORT]
  cat > "$1/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$2
management.tcp.ip = 127.0.0.1
management.tcp.port = $3
default_user = eventflow
default_pass = eventflow
loopback_users = none
CONF
  if [ -n "${4:-}" ]; then
    rmq_tls_files "$1"
    cat >> "$1/rabbitmq.conf" <<CONF
listeners.ssl.default = 127.0.0.1:$4
ssl_options.cacertfile = $1/tls/ca.crt
ssl_options.certfile = $1/tls/server.crt
ssl_options.keyfile = $1/tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
  fi
  echo "[rabbitmq_management]." > "$1/enabled_plugins"
}

# A node started before the management plugin was part of its configuration
# gets it without a restart: the configuration files rewritten for its next
# start, the listener set in the running node's environment, then the plugin
# enabled online. A node that already serves the API is left alone.
rmq_management_on() { # DIR NODE AMQP_PORT DIST_PORT EPMD_PORT MGMT_PORT ...
  local dir=$1 mgmt=$6
  if (exec 3<>"/dev/tcp/127.0.0.1/$mgmt") 2>/dev/null; then return 0; fi
  rmq_node_config "$dir" "$3" "$mgmt" "${9:-}"
  chown rabbitmq:rabbitmq "$dir/rabbitmq.conf" "$dir/enabled_plugins"
  if [ -d "$dir/tls" ]; then chown -R rabbitmq:rabbitmq "$dir/tls"; fi
  (
    rmq_node_env "$dir" "$2" "$3" "$4" "$5"
    export RABBITMQ_ENABLED_PLUGINS="" # rabbitmq-plugins then edits the enabled_plugins file
    as_rabbitmq() { setpriv --reuid rabbitmq --regid rabbitmq --init-groups "$@"; }
    as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmqctl -q eval \
      "application:load(rabbitmq_management), application:set_env(rabbitmq_management, tcp_config, [{ip, \"127.0.0.1\"}, {port, $mgmt}])." >/dev/null
    as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-plugins -q enable --online rabbitmq_management >/dev/null
  ) >>"$LOG_DIR/$7.log" 2>&1 || die "could not enable the management plugin of RabbitMQ $2 (log: $LOG_DIR/$7.log)"
  wait_port "$mgmt" 60 "the management API of RabbitMQ $2"
  log "RabbitMQ $2: management API on 127.0.0.1:$mgmt"
}

# Stops the node of DIR (its connections are closed as in any broker
# shutdown); `all` stops its epmd too.
rmq_node_stop() { # DIR [all]
  local dir=$1
  if alive "$dir/server.pid"; then
    local pid; pid=$(cat "$dir/server.pid")
    # The server runs in its own session (setsid): its process group is its PID.
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$dir/server.pid"
  if [ "${2:-}" = all ]; then
    if alive "$dir/epmd.pid"; then kill "$(cat "$dir/epmd.pid")" 2>/dev/null || true; fi
    rm -f "$dir/epmd.pid"
  fi
}

# The shared broker: a fresh node every start, so test queues never pile up.
rabbit_up() { rmq_node_start "$RMQ" eventflow-test "$AMQP_PORT" "$DIST_PORT" "$EPMD_PORT" "$MGMT_PORT" rabbitmq fresh "$AMQPS_PORT"; }
rabbit_down() { rmq_node_stop "$RMQ" all; }

pg_up() {
  if alive "$PG/server.pid"; then return 0; fi
  [ -n "$PGBIN" ] || die "PostgreSQL is not installed (make deps)"
  mkdir -p "$PG" "$LOG_DIR"
  chown postgres:postgres "$PG"
  # A fresh cluster every start, like RabbitMQ's: test databases never pile up.
  rm -rf "$PG/data"
  if [ ! -f "$PG/data/PG_VERSION" ]; then
    echo eventflow > "$PG/pwfile"; chown postgres "$PG/pwfile"
    setpriv --reuid postgres --regid postgres --init-groups "$PGBIN/initdb" -D "$PG/data" -U eventflow \
      --pwfile="$PG/pwfile" -A scram-sha-256 >>"$LOG_DIR/postgres.log" 2>&1
  fi
  setpriv --reuid postgres --regid postgres --init-groups "$PGBIN/postgres" -D "$PG/data" \
    -c listen_addresses=127.0.0.1 -p "$PG_PORT" -c unix_socket_directories="$PG" \
    -c max_connections=300 -c fsync=off -c synchronous_commit=off \
    >>"$LOG_DIR/postgres.log" 2>&1 &
  echo $! > "$PG/server.pid"
  wait_port "$PG_PORT" 30 PostgreSQL
  for _ in $(seq 50); do
    if PGPASSWORD=eventflow psql -h 127.0.0.1 -p "$PG_PORT" -U eventflow -d postgres -qtAc 'select 1' >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  PGPASSWORD=eventflow psql -h 127.0.0.1 -p "$PG_PORT" -U eventflow -d postgres -qtAc \
    "select 1 from pg_database where datname='eventflow'" | grep -q 1 ||
    PGPASSWORD=eventflow psql -h 127.0.0.1 -p "$PG_PORT" -U eventflow -d postgres -qc 'create database eventflow'
  log "PostgreSQL on 127.0.0.1:$PG_PORT"
}

pg_down() {
  if alive "$PG/server.pid"; then
    local pid; pid=$(cat "$PG/server.pid")
    kill -INT "$pid" 2>/dev/null || true   # PostgreSQL's "fast shutdown"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$PG/server.pid"
}

# --- The fault broker -------------------------------------------------------
# A second RabbitMQ node (own node name, ports, epmd, data and PID files) that
# only fault tests use: they stop and start it (`fault-broker stop|start`), so
# the broker every other test shares never goes away under them.
FAULT_AMQP_PORT=${EVENTFLOW_TEST_FAULT_AMQP_PORT:-28682}
FAULT_DIST_PORT=${EVENTFLOW_TEST_FAULT_DIST_PORT:-$((FAULT_AMQP_PORT + 1))}
FAULT_EPMD_PORT=${EVENTFLOW_TEST_FAULT_EPMD_PORT:-28470}
FAULT_MGMT_PORT=${EVENTFLOW_TEST_FAULT_MANAGEMENT_PORT:-$((FAULT_AMQP_PORT + 2))}
FAULT_RMQ=$SVC/rabbitmq-fault

fault_broker_exports() {
  echo "export EVENTFLOW_TEST_FAULT_AMQP_URI=amqp://eventflow:eventflow@127.0.0.1:$FAULT_AMQP_PORT/%2f"
  echo "export EVENTFLOW_TEST_FAULT_MANAGEMENT_URI=http://eventflow:eventflow@127.0.0.1:$FAULT_MGMT_PORT"
}

# Fresh at `up`; `fault-broker start` keeps its data (a broker restart).
fault_broker_start() { # [fresh]
  rmq_node_start "$FAULT_RMQ" eventflow-fault "$FAULT_AMQP_PORT" "$FAULT_DIST_PORT" "$FAULT_EPMD_PORT" \
    "$FAULT_MGMT_PORT" rabbitmq-fault "${1:-keep}"
}
fault_broker_stop() { rmq_node_stop "$FAULT_RMQ" "${1:-}"; } # [all]

fault_broker() {
  case "${1:-}" in
    stop) fault_broker_stop; log "fault RabbitMQ stopped" ;;
    start) fault_broker_start ;;
    *) echo "usage: $0 fault-broker stop|start" >&2; exit 2 ;;
  esac
}
# --- end of the fault broker ------------------------------------------------

# --- fault-test PostgreSQL ---------------------------------------------------
# A second, private PostgreSQL cluster that only the fault tests use, because
# they stop and start it (a store outage) while their apps run: the shared one
# above must never go away under other tests. Its own port, data directory and
# PID file (PostgreSQL's postmaster.pid, read by pg_ctl); `up` gives it a fresh
# cluster, `fault-postgres stop|start` keep its data.

fault_pg_ctl() { # pg_ctl arguments...
  setpriv --reuid postgres --regid postgres --init-groups "$PGBIN/pg_ctl" -D "$FAULT_PG/data" "$@"
}

fault_pg_running() { fault_pg_ctl status >/dev/null 2>&1; }

fault_pg_start() {
  [ -n "$PGBIN" ] || die "PostgreSQL is not installed (make deps)"
  [ -f "$FAULT_PG/data/PG_VERSION" ] || die "no fault-test PostgreSQL cluster: run $0 up"
  if fault_pg_running; then return 0; fi
  mkdir -p "$LOG_DIR"; touch "$LOG_DIR/postgres-fault.log"; chown postgres "$LOG_DIR/postgres-fault.log"
  fault_pg_ctl start -w -t 30 -l "$LOG_DIR/postgres-fault.log" \
    -o "-c listen_addresses=127.0.0.1 -p $FAULT_PG_PORT -c unix_socket_directories=$FAULT_PG -c max_connections=200 -c fsync=off -c synchronous_commit=off" \
    >/dev/null || die "the fault-test PostgreSQL did not start (log: $LOG_DIR/postgres-fault.log)"
  wait_port "$FAULT_PG_PORT" 30 "fault-test PostgreSQL"
  log "fault-test PostgreSQL on 127.0.0.1:$FAULT_PG_PORT"
}

fault_pg_stop() {
  if [ -f "$FAULT_PG/data/PG_VERSION" ] && fault_pg_running; then
    # Fast shutdown: clients are disconnected (SQLSTATE 57P01), as when a pod is deleted.
    fault_pg_ctl stop -m fast -w -t 60 >/dev/null
  fi
  log "fault-test PostgreSQL stopped"
}

fault_pg_up() {
  if [ -f "$FAULT_PG/data/PG_VERSION" ] && fault_pg_running; then return 0; fi
  [ -n "$PGBIN" ] || die "PostgreSQL is not installed (make deps)"
  mkdir -p "$FAULT_PG" "$LOG_DIR"
  chown postgres:postgres "$FAULT_PG"
  rm -rf "$FAULT_PG/data"
  echo eventflow > "$FAULT_PG/pwfile"; chown postgres "$FAULT_PG/pwfile"
  setpriv --reuid postgres --regid postgres --init-groups "$PGBIN/initdb" -D "$FAULT_PG/data" -U eventflow \
    --pwfile="$FAULT_PG/pwfile" -A scram-sha-256 >>"$LOG_DIR/postgres-fault.log" 2>&1
  fault_pg_start
  PGPASSWORD=eventflow psql -h 127.0.0.1 -p "$FAULT_PG_PORT" -U eventflow -d postgres -qc 'create database eventflow'
}

fault_pg_down() {
  fault_pg_stop
}

fault_postgres() { # stop|start
  case "${1:-}" in
    stop) fault_pg_stop ;;
    start) fault_pg_start ;;
    *) echo "usage: $0 fault-postgres stop|start" >&2; exit 2 ;;
  esac
}
# --- end of fault-test PostgreSQL ----------------------------------------------

case "${1:-}" in
  up) rabbit_up; pg_up; fault_broker_start fresh; fault_pg_up; exports ;;
  down) rabbit_down; pg_down; fault_broker_stop all; fault_pg_down; log "services stopped" ;;
  env) exports ;;
  fault-broker) fault_broker "${2:-}" ;;
  fault-postgres) fault_postgres "${2:-}" ;;
  *) echo "usage: $0 up|down|env|fault-broker stop|start|fault-postgres stop|start" >&2; exit 2 ;;
esac
