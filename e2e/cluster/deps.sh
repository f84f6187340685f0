#!/usr/bin/env bash
# Installs the Debian packages the tests and the local cluster need, only
# when one is missing (a warm run takes a fraction of a second).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

packages=(
  containerd runc containernetworking-plugins buildah debootstrap   # node + images
  iptables conntrack iproute2 ethtool kmod socat util-linux openssl curl  # node networking, certs
  ipset                                                             # kube-router's NetworkPolicy sets
  rabbitmq-server postgresql postgresql-client                       # private test services
  python3-venv                                                      # schemathesis
  shellcheck                                                        # make lint
  maven openjdk-17-jdk-headless                                     # the Spring apps (make spring-apps)
  chromium chromium-driver                                          # the dashboard's browser tests (WebDriver)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start system-wide daemons: we run our own.
  ours=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; ours=1
  fi
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$ours" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
command -v go >/dev/null || die "Go is required to build Kubernetes (see README)"
command -v cargo >/dev/null || die "Rust (cargo) is required (see README)"

# The shared Rust target directory grows with every checkout path that builds
# into it (workspace crates are keyed by their path). Start it afresh when it
# passes a bound or the disk runs low, rather than fail a build on a full disk.
# One whole `make test` from one checkout leaves about 32 GB (debug and release):
# the bound lets the next run from the same path start warm.
target=${CARGO_TARGET_DIR:-$EVENTFLOW_CACHE/target}
if [ -d "$target" ]; then
  size_gb=$(( $(du -sk "$target" | cut -f1) / 1024 / 1024 ))
  free_gb=$(( $(df -Pk "$target" | awk 'NR == 2 {print $4}') / 1024 / 1024 ))
  if [ "$size_gb" -gt "${EVENTFLOW_TARGET_MAX_GB:-40}" ] || [ "$free_gb" -lt 15 ]; then
    log "Rust target directory $target is ${size_gb} GB with ${free_gb} GB free: removing it"
    rm -rf "$target"
  fi
fi
