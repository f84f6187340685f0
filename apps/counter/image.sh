#!/usr/bin/env bash
# Builds eventflow/counter:<tag> from a host-built release binary.
#   apps/counter/image.sh [docker|buildah] [tag]
# buildah runs with --pull=never (debian:bookworm-slim must be present, as
# e2e/cluster/images.sh provides); pass BUILDAH_ARGS for its storage flags.
set -euo pipefail
tool=${1:-docker}
tag=${2:-${EVENTFLOW_IMAGE_TAG:-dev}}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build -q --release -p eventflow-counter --bin counter)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$target/release/counter" "$ctx/counter"
cp "$here/Dockerfile" "$ctx/Dockerfile"
case "$tool" in
  docker) docker build -q -t "eventflow/counter:$tag" "$ctx" ;;
  # shellcheck disable=SC2086
  buildah) buildah ${BUILDAH_ARGS:-} build -q --pull=never --isolation chroot -t "eventflow/counter:$tag" "$ctx" ;;
  *) echo "usage: $0 [docker|buildah] [tag]" >&2; exit 2 ;;
esac
