#!/usr/bin/env bash
# What a failed e2e run needs to be explained, printed last (CI shows the
# tail): pods, the operator's Lease and its recent logs (and those of a
# restarted container), Streams and EventBrokers, and recent Warning events.
# Needs kubectl and KUBECONFIG of the cluster (`cluster.sh env`). Never fails.
set -uo pipefail
ns=${EVENTFLOW_OPERATOR_NS:-eventflow-system}
section() { printf '\n===== %s\n' "$*"; }

section "pods"
kubectl get pods -A -o wide 2>&1
section "operator Lease"
kubectl -n "$ns" get lease eventflow-operator \
  -o jsonpath='{.spec.holderIdentity} renewed {.spec.renewTime} transitions {.spec.leaseTransitions}{"\n"}' 2>&1
for pod in $(kubectl -n "$ns" get pods -o name 2>/dev/null); do
  section "last log lines of $ns/${pod#pod/}"
  kubectl -n "$ns" logs "$pod" --tail=40 2>&1
  if kubectl -n "$ns" logs "$pod" --previous --tail=40 >/dev/null 2>&1; then
    section "last log lines of $ns/${pod#pod/} (previous container)"
    kubectl -n "$ns" logs "$pod" --previous --tail=40 2>&1
  fi
done
section "streams and brokers"
kubectl get streams,eventbrokers -A 2>&1
section "restarted containers (namespace pod container restarts last-termination-reason)"
# shellcheck disable=SC2016 # a Go template, not a shell expansion
kubectl get pods -A -o go-template='{{range .items}}{{$p := .}}{{range .status.containerStatuses}}{{if gt .restartCount 0}}{{$p.metadata.namespace}} {{$p.metadata.name}} {{.name}} {{.restartCount}} {{with .lastState.terminated}}{{.reason}}{{end}}{{"\n"}}{{end}}{{end}}{{end}}' 2>&1
section "warning events"
kubectl get events -A --field-selector type=Warning --sort-by=.lastTimestamp 2>&1 | tail -n 30
exit 0
