#!/usr/bin/env bash
# KEDA's CRDs (ScaledObject, TriggerAuthentication) from KEDA's own Go module,
# for the integration tests that validate the operator's KEDA objects on the
# real API server. `go mod download` puts the module in the Go module cache;
# the two CRD files are copied to $EVENTFLOW_CACHE/keda-crds-<version>.
#   keda-crds.sh [fetch]  download once, print the directory
#   keda-crds.sh env      print `export EVENTFLOW_TEST_KEDA_CRDS=<dir>` (no download)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MODULE=github.com/kedacore/keda/v2
FILES=(keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml)
DIR=$EVENTFLOW_CACHE/keda-crds-$KEDA_VERSION

fetch() {
  local f missing=0
  for f in "${FILES[@]}"; do [ -s "$DIR/$f" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    command -v go >/dev/null || die "Go is required to download KEDA's module (see README)"
    log "downloading $MODULE@$KEDA_VERSION (its CRDs only) into the Go module cache"
    local src
    src=$(cd / && go mod download -json "$MODULE@$KEDA_VERSION" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
    [ -d "$src/config/crd/bases" ] || die "$MODULE@$KEDA_VERSION has no config/crd/bases (downloaded to '$src')"
    rm -rf "$DIR.tmp"; mkdir -p "$DIR.tmp"
    for f in "${FILES[@]}"; do cp "$src/config/crd/bases/$f" "$DIR.tmp/$f"; done
    chmod u+w "$DIR.tmp"/*
    rm -rf "$DIR"; mv "$DIR.tmp" "$DIR"
  fi
  echo "$DIR"
}

case "${1:-fetch}" in
  fetch) fetch ;;
  env) echo "export EVENTFLOW_TEST_KEDA_CRDS=$DIR" ;;
  *) echo "usage: $0 [fetch|env]" >&2; exit 2 ;;
esac
