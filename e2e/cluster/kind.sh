#!/usr/bin/env bash
# The kind path (CLUSTER=kind): the same e2e binary against a kind cluster
# made from ../../kind-config.yaml. Needs a Docker engine that runs
# privileged containers, so it cannot run on our own VMs (see README).
#   kind.sh up | down | env | check-clean
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NAME=${KIND_CLUSTER_NAME:-eventflow}
KUBECONFIG_FILE=$EVENTFLOW_CACHE/kind-$NAME.kubeconfig
KIND=$(tools_bin_dir)/kind
command -v docker >/dev/null || die "CLUSTER=kind needs docker"
[ -x "$KIND" ] || KIND=$(command -v kind || true)
[ -n "$KIND" ] || die "kind is missing: make tools CLUSTER=kind builds it"

exists() { "$KIND" get clusters 2>/dev/null | grep -qx "$NAME"; }

case "${1:-}" in
  up)
    exists || "$KIND" create cluster --name "$NAME" --config "$REPO_ROOT/kind-config.yaml" --wait 120s
    "$KIND" get kubeconfig --name "$NAME" > "$KUBECONFIG_FILE"
    echo "export KUBECONFIG=$KUBECONFIG_FILE" ;;
  down) if exists; then "$KIND" delete cluster --name "$NAME"; fi ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_FILE" ;;
  check-clean) if exists; then die "kind cluster $NAME is still there"; fi; log "no kind cluster of ours left" ;;
  *) echo "usage: $0 up|down|env|check-clean" >&2; exit 2 ;;
esac
