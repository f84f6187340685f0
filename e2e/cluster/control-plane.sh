#!/usr/bin/env bash
# The control-plane-only Kubernetes (like controller-runtime's envtest): etcd
# and kube-apiserver, nothing else. CRDs, RBAC, server-side apply, status,
# finalizers and admission are all real; no controllers, scheduler or node.
# Own ports and data directory, so it runs beside the full cluster. `up` also
# fetches KEDA's CRDs (keda-crds.sh); `env` names their directory.
#   control-plane.sh up | down | env
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$CLUSTER_DIR/pki.sh"

CP=$EVENTFLOW_STATE/control-plane
PKI=$CP/pki
ETCD_PORT=${EVENTFLOW_CP_ETCD_PORT:-28379}
API_PORT=${EVENTFLOW_CP_API_PORT:-28443}
KUBECONFIG_FILE=$CP/admin.kubeconfig
BIN=$(kube_bin_dir)

stop_pid() { # pidfile
  if alive "$1"; then
    local pid; pid=$(cat "$1")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

healthy() {
  "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1
}

up() {
  [ -x "$BIN/kube" ] || die "Kubernetes binaries missing; run make tools"
  # KEDA's CRDs, which tests install to validate the operator's KEDA objects.
  "$CLUSTER_DIR/keda-crds.sh" fetch >/dev/null
  if alive "$CP/apiserver.pid" && alive "$CP/etcd.pid" && healthy; then return 0; fi
  down_quiet
  mkdir -p "$CP" "$LOG_DIR"
  rm -rf "$CP/etcd-data"   # a fresh store every start: tests never see stale objects
  gen_ca "$PKI"
  gen_cert "$PKI" apiserver "/CN=kube-apiserver" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:localhost,IP:127.0.0.1"
  gen_cert "$PKI" admin "/CN=eventflow-admin/O=system:masters"
  write_kubeconfig "$KUBECONFIG_FILE" "https://127.0.0.1:$API_PORT" "$PKI/ca.crt" "$PKI/admin.crt" \
    "$PKI/admin.key" eventflow-control-plane

  "$BIN/etcd" --name cp --data-dir "$CP/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "cp=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --unsafe-no-fsync --quota-backend-bytes=4294967296 \
    >>"$LOG_DIR/cp-etcd.log" 2>&1 &
  echo $! > "$CP/etcd.pid"

  "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --service-cluster-ip-range 198.19.16.0/20 \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --authorization-mode RBAC --allow-privileged=false \
    --disable-admission-plugins ServiceAccount \
    --endpoint-reconciler-type none \
    >>"$LOG_DIR/cp-apiserver.log" 2>&1 &
  echo $! > "$CP/apiserver.pid"

  local start=$SECONDS
  until healthy; do
    alive "$CP/apiserver.pid" || die "kube-apiserver exited (log: $LOG_DIR/cp-apiserver.log)"
    alive "$CP/etcd.pid" || die "etcd exited (log: $LOG_DIR/cp-etcd.log)"
    [ $((SECONDS - start)) -lt 90 ] || die "control plane not ready after 90 s (logs: $LOG_DIR)"
    sleep 0.3
  done
  # A default namespace's ServiceAccount is made by a controller we do not run.
  log "control plane ready in $((SECONDS - start)) s on https://127.0.0.1:$API_PORT"
}

down_quiet() {
  stop_pid "$CP/apiserver.pid"
  stop_pid "$CP/etcd.pid"
}

print_env() {
  # kubectl, helm and crictl of the cached builds come first on PATH.
  echo "export PATH=$BIN:$(tools_bin_dir):\$PATH"
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  "$CLUSTER_DIR/keda-crds.sh" env
}

case "${1:-}" in
  up) up; print_env ;;
  down) down_quiet; rm -rf "$CP/etcd-data"; log "control plane stopped" ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
