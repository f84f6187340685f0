# Shared settings of the local-cluster scripts; sourced, never run.
# shellcheck shell=bash
CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_ROOT=$(cd "$CLUSTER_DIR/../.." && pwd)
. "$CLUSTER_DIR/versions.env"

# Builds are cached outside the repository, keyed by version, so CI's fresh
# clones and warm runs never rebuild.
EVENTFLOW_CACHE=${EVENTFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/eventflow}
# Runtime state (certificates, data, PID files, logs) of the running cluster.
EVENTFLOW_STATE=${EVENTFLOW_STATE:-/var/lib/eventflow-e2e}
# shellcheck disable=SC2034 # used by the scripts that source this file
LOG_DIR=${EVENTFLOW_LOG_DIR:-$EVENTFLOW_STATE/logs}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$EVENTFLOW_CACHE/target}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# Whether the process whose PID file is $1 runs.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# A short hash of the files a build depends on, so editing the wrapper
# module also rebuilds, not only a version bump.
content_key() { cat "$@" | sha256sum | cut -c1-10; }

kube_bin_dir() {
  echo "$EVENTFLOW_CACHE/kube-$KUBE_VERSION-$(content_key "$CLUSTER_DIR/kube/go.mod" "$CLUSTER_DIR/kube/go.sum" "$CLUSTER_DIR/kube/main.go")/bin"
}
tools_bin_dir() { echo "$EVENTFLOW_CACHE/tools/bin"; }
