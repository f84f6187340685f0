#!/usr/bin/env bash
# Regenerates go.mod/go.sum of the wrapper module for KUBE_VERSION in
# ../versions.env. k8s.io/kubernetes requires its staging modules at v0.0.0 and
# fixes them with replace directives that only apply inside its own repo, so a
# module that imports it must repeat one replace per staging module.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../versions.env"
minor=${KUBE_VERSION#v1.}          # 34.4
staging=v0.$minor                  # v0.34.4
modfile=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
cd "$here"
{
  echo "module eventflow.dev/e2e/cluster/kube"
  echo
  grep -E '^go |^godebug' "$modfile"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  grep -E '^\s+k8s.io/[a-z0-9-]+ v0\.0\.0$' "$modfile" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod
rm -f go.sum
go mod tidy
