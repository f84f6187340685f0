#!/usr/bin/env bash
# Builds the Kubernetes components and etcd as one multi-call binary from the
# Go module proxy (see kube/main.go), plus CoreDNS, local-path-provisioner,
# Helm, crictl and kube-router (NetworkPolicy), into the cache. A warm run only checks that the outputs exist.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bin=$(kube_bin_dir)
if [ ! -x "$bin/kube" ]; then
  log "building Kubernetes $KUBE_VERSION + etcd into $bin (cold: tens of minutes on 2 cores)"
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  tmp="$bin.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
  start=$SECONDS
  (cd "$CLUSTER_DIR/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/kube" .)
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd; do
    ln -sf kube "$tmp/$c"
  done
  rm -rf "$bin"; mv "$tmp" "$bin"
  log "built Kubernetes in $((SECONDS - start)) s, $(du -h "$bin/kube" | cut -f1)"
fi

tools=$(tools_bin_dir)
mkdir -p "$tools"
go_tool() { # name module version
  local name=$1 module=$2 version=$3 dest="$tools/$1-$3"
  if [ ! -x "$dest" ]; then
    log "building $name $version"
    local gobin; gobin=$(mktemp -d)
    CGO_ENABLED=0 GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "$module@$version"
    mv "$gobin/$(basename "${module%/v[0-9]}")" "$dest"; rm -rf "$gobin"
  fi
  ln -sf "$name-$version" "$tools/$name"
}
go_tool coredns github.com/coredns/coredns "$COREDNS_VERSION"
go_tool local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_VERSION"
go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
go_tool crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
go_tool kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION"
if [ "${CLUSTER:-local}" = kind ]; then
  go_tool kind sigs.k8s.io/kind "$KIND_VERSION"
fi
