#!/usr/bin/env bash
# Images without a registry. Builds every image with buildah from Dockerfiles
# that also build with plain `docker build`, on a debian:bookworm-slim made
# with debootstrap, and loads them into the node's containerd (CLUSTER=local)
# or builds them with docker and `kind load`s them (CLUSTER=kind).
#   images.sh [all]      every image the tests and the examples need
#   images.sh load-infra pause, CoreDNS, local-path-provisioner, the base (cluster.sh calls it)
#   images.sh build NAME...  the named images only (names: the keys of REFS)
#   images.sh load NAME...   the named images, built and loaded into the node
#   images.sh list       the image references
# A build is skipped when its inputs (Dockerfile + context) are unchanged.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CLUSTER=${CLUSTER:-local}
IMG=$EVENTFLOW_CACHE/images
BASE_REF=docker.io/library/debian:bookworm-slim
# Debian releases an image may start FROM (debian:<suite>-slim), each made
# with debootstrap once and cached by suite. bookworm is the base of all
# images but rabbitmq4 (trixie packages RabbitMQ 4.0).
BASE_SUITES=(bookworm trixie)
PAUSE_REF=registry.k8s.io/pause:3.10
CONTAINERD_SOCK=/run/eventflow-e2e/containerd/containerd.sock
TOOLS=$(tools_bin_dir)
# Tag of images built from this repository's own code.
E2E_TAG=${EVENTFLOW_IMAGE_TAG:-dev}

# Every reference the tests and examples use, by image directory.
declare -A REFS=(
  [pause]=$PAUSE_REF
  [coredns]=docker.io/eventflow/coredns:$COREDNS_VERSION
  [local-path-provisioner]=docker.io/eventflow/local-path-provisioner:$LOCAL_PATH_VERSION
  [rabbitmq]=docker.io/eventflow/rabbitmq:3.10-management
  [rabbitmq4]=docker.io/eventflow/rabbitmq:4.0-management
  [postgres]=docker.io/eventflow/postgres:15
  [smoke]=docker.io/eventflow/e2e-smoke:$E2E_TAG
)
INFRA=(pause coredns local-path-provisioner)
WORKLOADS=(rabbitmq rabbitmq4 postgres smoke)

# Images of our own Rust components: operator/Dockerfile, dashboard/Dockerfile and
# apps/<app>/Dockerfile. Convention: the Dockerfile COPYs one host-built
# release binary from the context root (`COPY <binary> /usr/local/bin/...`);
# the crate in the same directory builds it. Image: eventflow/<dir>:<tag>.
declare -A RUST_DIR=() RUST_PKG=() RUST_BIN=()
for dockerfile in "$REPO_ROOT"/operator/Dockerfile "$REPO_ROOT"/dashboard/Dockerfile "$REPO_ROOT"/apps/*/Dockerfile; do
  [ -f "$dockerfile" ] || continue
  dir=$(dirname "$dockerfile"); name=$(basename "$dir")
  RUST_DIR[$name]=$dir
  RUST_PKG[$name]=$(sed -nE 's/^name = "([^"]+)"/\1/p' "$dir/Cargo.toml" | head -1)
  RUST_BIN[$name]=$(sed -nE 's#^COPY ([A-Za-z0-9_-]+) /usr/local/bin/.*#\1#p' "$dockerfile" | head -1)
  [ -n "${RUST_BIN[$name]}" ] || die "$dockerfile: no 'COPY <binary> /usr/local/bin/...' line"
  REFS[$name]=docker.io/eventflow/$name:$E2E_TAG
  WORKLOADS+=("$name")
done

# The Java images: the JRE and one image per Spring Cloud Stream app.
. "$CLUSTER_DIR/images-spring.sh"

# One cargo invocation builds every release binary the images need.
build_rust_binaries() {
  local args=() n
  for n in "${!RUST_DIR[@]}"; do args+=(-p "${RUST_PKG[$n]}" --bin "${RUST_BIN[$n]}"); done
  args+=(-p eventflow-e2e --bin e2e-smoke)
  log "cargo build --release (${#RUST_DIR[@]} images + smoke)"
  (cd "$REPO_ROOT" && cargo build -q --release "${args[@]}")
}

bh() {
  buildah --root "$IMG/storage" --runroot /run/eventflow-e2e/buildah --storage-driver overlay "$@"
}
ctr_k8s() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

registries_conf() {
  # Short names (FROM debian:bookworm-slim) resolve to docker.io, as in docker;
  # --pull=never keeps every build offline.
  mkdir -p "$IMG"
  printf '%s\n' 'unqualified-search-registries = ["docker.io"]' 'short-name-mode = "permissive"' > "$IMG/registries.conf"
  export CONTAINERS_REGISTRIES_CONF=$IMG/registries.conf
}

apt_mirror() {
  # The Debian mirror this machine's apt uses (never written into the repo).
  local f
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -f "$f" ] || continue
    sed -nE 's#^(URIs:[[:space:]]*|deb[[:space:]]+)(https?://[^[:space:]]+/debian)/?([[:space:]].*)?$#\2#p' "$f" | head -1
  done | head -1
}

base_ref() { echo "docker.io/library/debian:$1-slim"; }

# debian:<suite>-slim, from a minbase debootstrap of that suite. bookworm
# keeps the unsuffixed rootfs and stamp of the caches made before trixie.
base_image() { # [suite]
  local suite=${1:-bookworm} ref suffix=''
  ref=$(base_ref "$suite")
  if [ "$suite" != bookworm ]; then suffix=-$suite; fi
  local stamp="$IMG/stamps/base$suffix"
  if [ -f "$stamp" ] && bh inspect "$ref" >/dev/null 2>&1; then return 0; fi
  local rootfs="$IMG/debian-rootfs$suffix" mirror
  mirror=$(apt_mirror); [ -n "$mirror" ] || die "no Debian mirror found in apt's sources"
  if [ ! -x "$rootfs/usr/bin/apt-get" ]; then
    log "debootstrap $suite (minbase)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$LOG_DIR/debootstrap$suffix.log" 2>&1 ||
      die "debootstrap $suite failed (log: $LOG_DIR/debootstrap$suffix.log)"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  fi
  log "committing $ref"
  local c; c=$(bh from scratch)
  bh copy "$c" "$rootfs" / >/dev/null
  bh config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
  bh commit -q --rm "$c" "$ref" >/dev/null
  mkdir -p "$IMG/stamps"; date > "$stamp"
}

# The Debian suites the named images start FROM (bookworm for ours, whose
# Dockerfile is generated or has no debian FROM line).
suites_of() { # name...
  local n f
  for n in "$@"; do
    f=$REPO_ROOT/e2e/images/$n/Dockerfile
    if [ -f "$f" ]; then sed -nE 's/^FROM debian:([a-z]+)-slim.*/\1/p' "$f"; fi
  done | sort -u
}

# The base images the named images need.
base_images() { # name...
  local s
  for s in $(suites_of "$@"); do base_image "$s"; done
  base_image bookworm
}

# Files an image's context needs besides its Dockerfile directory.
stage_context() { # name ctxdir
  local name=$1 ctx=$2
  case "$name" in
    pause)
      local src; src=$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBE_VERSION/build/pause/linux/pause.c
      [ -f "$src" ] || (cd "$CLUSTER_DIR/kube" && go mod download k8s.io/kubernetes >/dev/null)
      gcc -Os -static -DVERSION=3.10 -o "$ctx/pause" "$src" && strip "$ctx/pause" ;;
    coredns) cp "$TOOLS/coredns" "$ctx/coredns" ;;
    local-path-provisioner) cp "$TOOLS/local-path-provisioner" "$ctx/local-path-provisioner" ;;
    smoke) cp "$CARGO_TARGET_DIR/release/e2e-smoke" "$ctx/e2e-smoke" ;;
    *)
      if [ -n "${RUST_BIN[$name]:-}" ]; then
        cp "$CARGO_TARGET_DIR/release/${RUST_BIN[$name]}" "$ctx/${RUST_BIN[$name]}"
      elif is_spring_app "$name"; then
        stage_spring_context "$name" "$ctx"
      fi ;;
  esac
}

build_one() { # name
  local name=$1 ref=${REFS[$1]} ctx="$IMG/ctx/$1"
  rm -rf "$ctx"; mkdir -p "$ctx"
  if [ -n "${RUST_DIR[$name]:-}" ]; then
    cp "${RUST_DIR[$name]}/Dockerfile" "$ctx/"
  elif ! is_spring_app "$name"; then
    cp -r "$REPO_ROOT/e2e/images/$name/." "$ctx/"
  fi
  stage_context "$name" "$ctx"
  local key; key=$(cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  if [ "$CLUSTER" = kind ]; then
    docker build -q -t "$ref" "$ctx" >/dev/null
    return 0
  fi
  local stamp="$IMG/stamps/$name"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && bh inspect "$ref" >/dev/null 2>&1; then return 0; fi
  log "building $ref"
  bh build -q --pull=never --isolation chroot --network host --layers -t "$ref" "$ctx" >"$LOG_DIR/image-$name.log" 2>&1 ||
    die "building $ref failed (log: $LOG_DIR/image-$name.log)"
  echo "$key" > "$stamp"
}

# Our own images get a second tag, <tag>-next, naming the same image: the
# e2e suite rolls an app from one tag to the other.
next_ref() { { [ -n "${RUST_DIR[$1]:-}" ] || is_spring_app "$1"; } && echo "${REFS[$1]}-next"; }

load_one() { # name
  local name=$1 ref=${REFS[$1]:-$1} next; next=$(next_ref "$1" || true)
  if [ "$CLUSTER" = kind ]; then
    if [ -n "$next" ]; then docker tag "$ref" "$next"; fi
    kind load docker-image --name "${KIND_CLUSTER_NAME:-eventflow}" "$ref" ${next:+"$next"} >/dev/null
    return 0
  fi
  local id; id=$(bh inspect --format '{{.FromImageID}}' "$ref")
  if [ "$(cat "$IMG/stamps/$name.loaded" 2>/dev/null)" = "$id" ] && ctr_k8s images ls -q "name==$ref" | grep -q . &&
     { [ -z "$next" ] || ctr_k8s images ls -q "name==$next" | grep -q .; }; then
    return 0
  fi
  local archive="$IMG/archive-$name.tar"
  rm -f "$archive"
  bh push -q "$ref" "docker-archive:$archive:$ref" >/dev/null
  ctr_k8s images import --no-unpack=false "$archive" >/dev/null
  rm -f "$archive"
  if [ -n "$next" ]; then ctr_k8s images tag --force "$ref" "$next" >/dev/null; fi
  echo "$id" > "$IMG/stamps/$name.loaded"
  log "loaded $ref${next:+ (also as $next)}"
}

load_base() {
  local id; id=$(bh inspect --format '{{.FromImageID}}' "$BASE_REF")
  if [ "$(cat "$IMG/stamps/base.loaded" 2>/dev/null)" = "$id" ] && ctr_k8s images ls -q "name==$BASE_REF" | grep -q .; then
    return 0
  fi
  local archive="$IMG/archive-base.tar"
  bh push -q "$BASE_REF" "docker-archive:$archive:$BASE_REF" >/dev/null
  ctr_k8s images import "$archive" >/dev/null
  rm -f "$archive"; echo "$id" > "$IMG/stamps/base.loaded"
  log "loaded $BASE_REF"
}

mkdir -p "$IMG/stamps" "$LOG_DIR"
registries_conf
case "${1:-all}" in
  load-infra)
    [ "$CLUSTER" = local ] || die "load-infra is for the local cluster only"
    base_image
    for n in "${INFRA[@]}"; do build_one "$n"; load_one "$n"; done
    load_base ;;
  all)
    build_rust_binaries
    if [ "$CLUSTER" = local ]; then base_images "${WORKLOADS[@]}"; fi
    build_spring_images_base
    for n in "${WORKLOADS[@]}"; do build_one "$n"; done
    if [ "$CLUSTER" = local ]; then
      [ -S "$CONTAINERD_SOCK" ] || die "the local cluster is not up (make cluster-up)"
      for n in "${INFRA[@]}"; do build_one "$n"; load_one "$n"; done
      load_base
    fi
    for n in "${WORKLOADS[@]}"; do load_one "$n"; done ;;
  base) for s in "${BASE_SUITES[@]}"; do base_image "$s"; done ;;
  build|load)
    cmd=$1; shift
    if [ "$CLUSTER" = local ]; then base_images "$@"; fi
    # Only what the named images need: the Rust binaries, or the jars and the JRE.
    need_rust='' need_spring=''
    for n in "$@"; do
      [ -n "${REFS[$n]:-}" ] || die "no image named $n (images.sh list)"
      if [ -n "${RUST_DIR[$n]:-}" ] || [ "$n" = smoke ]; then need_rust=1; fi
      if is_spring_app "$n"; then need_spring=1; fi
    done
    if [ -n "$need_rust" ]; then build_rust_binaries; fi
    if [ -n "$need_spring" ]; then build_spring_images_base; fi
    for n in "$@"; do build_one "$n"; done
    if [ "$cmd" = load ]; then
      if [ "$CLUSTER" = local ]; then
        [ -S "$CONTAINERD_SOCK" ] || die "the local cluster is not up (make cluster-up)"
      fi
      for n in "$@"; do load_one "$n"; done
    fi ;;
  list) for n in "${!REFS[@]}"; do echo "${REFS[$n]}"; next_ref "$n" || true; done ;;
  *) echo "usage: $0 [all|load-infra|base|build NAME...|load NAME...|list]" >&2; exit 2 ;;
esac
