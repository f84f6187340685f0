#!/usr/bin/env bash
# `make demo`: a cluster (CLUSTER=local|kind), every image, the operator from
# the Helm chart, the example system; waits until every Stream is Ready,
# starts the load simulator, and prints how to reach the web APIs and the
# counters. Idempotent: a second run only re-applies and re-checks.
set -euo pipefail
cd "$(dirname "$0")/.."
. e2e/cluster/lib.sh
script=e2e/cluster/cluster.sh
[ "${CLUSTER:-local}" = kind ] && script=e2e/cluster/kind.sh
eval "$("$script" env)"
NS=eventflow-demo

log "installing the operator (charts/eventflow) into eventflow-system"
helm upgrade --install eventflow charts/eventflow --namespace eventflow-system --create-namespace \
  --set image.pullPolicy=IfNotPresent --wait --timeout 5m >/dev/null
log "applying examples/"
kubectl apply --server-side -f examples/ >/dev/null
start=$SECONDS
log "waiting for every Stream in $NS to be Ready"
kubectl -n "$NS" wait --for=condition=Ready eventbroker --all --timeout=600s >/dev/null
kubectl -n "$NS" wait --for=condition=Ready stream --all --timeout=600s >/dev/null
log "every Stream Ready $((SECONDS - start)) s after apply"
kubectl -n "$NS" get eventbrokers,streams

# The load simulator is reached the way a user would: a port-forward.
port=18080
kubectl -n "$NS" port-forward svc/load-simulator-web "$port:8080" >/dev/null 2>&1 &
pf=$!
trap 'kill $pf 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$port/v1/runs" >/dev/null 2>&1 && break
  sleep 0.2
done
if curl -fsS "http://127.0.0.1:$port/v1/runs" | grep -q '"RUNNING"'; then
  log "a load-simulator run is already going"
else
  curl -fsS -X POST -H 'content-type: application/json' \
    -d '{"orders": 200, "ratePerSecond": 2, "failureShare": 0.2, "accounts": 5, "products": 3, "stockPerProduct": 100}' \
    "http://127.0.0.1:$port/v1/runs" >/dev/null
  log "started a load-simulator run (200 orders at 2/s, a fifth designed to fail)"
fi

cat <<EOT

eventflow demo is running in namespace $NS.
  export KUBECONFIG=$KUBECONFIG
  kubectl -n $NS get streams,eventbrokers,pods
Dashboard (read-only; open http://127.0.0.1:8080/):
  kubectl -n eventflow-system port-forward svc/eventflow-dashboard 8080:8080
Web APIs (port-forward, then open http://127.0.0.1:<port>/v1/...):
  kubectl -n $NS port-forward svc/ecommerce-account-web 8081:8080     # /v1/accounts
  kubectl -n $NS port-forward svc/ecommerce-order-web 8082:8080       # /v1/orders
  kubectl -n $NS port-forward svc/ecommerce-payment-web 8083:8080     # /v1/payments
  kubectl -n $NS port-forward svc/ecommerce-warehouse-web 8084:8080   # /v1/warehouses
Load simulator:
  kubectl -n $NS port-forward svc/load-simulator-web 8085:8080   # /v1/runs
Counters (JSON and Prometheus):
  kubectl -n $NS port-forward svc/ecommerce-counter 8086:8080         # /v1/counts
EOT
