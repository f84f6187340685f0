#!/usr/bin/env bash
# The dependency policy of `make lint` (deny.toml): licences, banned or
# duplicated crates, and sources. cargo-deny is built once from its crate
# (about 3 CPU-minutes) into $EVENTFLOW_CACHE/tools/cargo-deny-<version>.
# Advisories are not checked: that needs the RustSec database, which these
# machines cannot fetch (README, "Dependency policy").
set -euo pipefail
. "$(dirname "$0")/lib.sh"

root="$EVENTFLOW_CACHE/tools/cargo-deny-$CARGO_DENY_VERSION"
if [ ! -x "$root/bin/cargo-deny" ]; then
  log "building cargo-deny $CARGO_DENY_VERSION into $root"
  # Its own build directory: the workspace's target stays as it was.
  CARGO_TARGET_DIR="$EVENTFLOW_CACHE/tools/cargo-deny-build" \
    cargo install -q cargo-deny --version "$CARGO_DENY_VERSION" --locked --root "$root"
  rm -rf "$EVENTFLOW_CACHE/tools/cargo-deny-build"
fi
cd "$REPO_ROOT"
# cargo-deny reads the whole graph, every platform's crates included (the
# Windows ones a Linux build never downloads): fetch them first, from the
# lock file, so the offline check finds them on a fresh machine.
cargo fetch --locked -q
"$root/bin/cargo-deny" --offline check licenses bans sources
