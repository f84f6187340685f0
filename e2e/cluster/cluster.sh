#!/usr/bin/env bash
# A real single-node Kubernetes without Docker: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy,
# kube-router (NetworkPolicy only: the bridge CNI enforces none) and CoreDNS +
# local-path-provisioner as pods.
#   cluster.sh up           start (idempotent; recovers from a killed cluster)
#   cluster.sh down         remove pods through the CRI, stop what `up` started, clean the host
#   cluster.sh env          print `export KUBECONFIG=...`
#   cluster.sh check-clean  fail if anything of ours is left on the host
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$CLUSTER_DIR/pki.sh"
. "$CLUSTER_DIR/node.env"

ST=$EVENTFLOW_STATE/cluster
RUN=/run/eventflow-e2e
PKI=$ST/pki
KUBECONFIG_FILE=$ST/admin.kubeconfig
BIN=$(kube_bin_dir)
TOOLS=$(tools_bin_dir)
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
# Images and their layers survive `down` (a cache, like the Go build cache);
# containers, sandboxes and their snapshots do not.
CONTAINERD_ROOT=$EVENTFLOW_CACHE/containerd-root
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy kube-router)

kc() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
crictl() { "$TOOLS/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --image-endpoint "unix://$CONTAINERD_SOCK" "$@"; }

start() { # name command...
  local name=$1; shift
  "$@" >>"$LOG_DIR/$name.log" 2>&1 &
  echo $! > "$ST/pids/$name.pid"
}

wait_for() { # seconds description command...
  local secs=$1 what=$2; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - start)) -lt "$secs" ] || die "$what not ready after $secs s (logs: $LOG_DIR)"
    sleep 0.5
  done
}

# ---------------------------------------------------------------- host network
host_network_up() {
  sysctl -qw net.ipv4.ip_forward=1
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
  # The node IP lives on a veth pair: these VMs' kernels have no `dummy`
  # link type (no modules), and a veth end is up with a carrier like one.
  if ! ip link show "$NODE_IF" >/dev/null 2>&1; then
    ip link add "$NODE_IF" type veth peer name "${NODE_IF}p"
  fi
  ip addr replace "$NODE_IP/32" dev "$NODE_IF"
  ip link set "${NODE_IF}p" up
  ip link set "$NODE_IF" up
  # The Service range needs a real route for a host process's connect() to
  # reach kube-proxy's OUTPUT DNAT; the rest of the /15 is dropped here.
  ip route replace "$SERVICE_CIDR" dev "$NODE_IF" src "$NODE_IP"
  ip route replace blackhole "$WHOLE_RANGE"
}

# ------------------------------------------------------------------- configs
write_configs() {
  mkdir -p "$ST/pids" "$ST/cni/net.d" "$ST/cni/ipam" "$ST/kubelet" "$LOG_DIR" "$RUN/containerd" "$CONTAINERD_ROOT"
  gen_ca "$PKI"
  gen_cert "$PKI" apiserver "/CN=kube-apiserver" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP"
  gen_cert "$PKI" admin "/CN=eventflow-admin/O=system:masters"
  gen_cert "$PKI" controller-manager "/CN=system:kube-controller-manager"
  gen_cert "$PKI" scheduler "/CN=system:kube-scheduler"
  gen_cert "$PKI" proxy "/CN=system:kube-proxy"
  gen_cert "$PKI" network-policy "/CN=local-node:network-policy"
  gen_cert "$PKI" kubelet "/CN=system:node:$NODE_NAME/O=system:nodes" "DNS:$NODE_NAME,IP:$NODE_IP"
  gen_cert "$PKI" apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters"
  local server="https://$NODE_IP:$API_PORT" id
  write_kubeconfig "$KUBECONFIG_FILE" "$server" "$PKI/ca.crt" "$PKI/admin.crt" "$PKI/admin.key" eventflow-local
  for id in controller-manager scheduler proxy kubelet network-policy; do
    write_kubeconfig "$ST/$id.kubeconfig" "$server" "$PKI/ca.crt" "$PKI/$id.crt" "$PKI/$id.key" eventflow-local
  done

  cat > "$ST/containerd.toml" <<CFG
version = 2
root = "$CONTAINERD_ROOT"
state = "$RUN/containerd"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUN/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$ST/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # The VM lacks CAP_SYS_RESOURCE: never ask runc for a negative oom_score_adj.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$ST/cni/net.d"
CFG

  cat > "$ST/cni/net.d/10-eventflow.conflist" <<CFG
{
  "cniVersion": "0.4.0",
  "name": "eventflow",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE_IF", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$ST/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
CFG

  # Pods with dnsPolicy Default get this file: no upstream, only cluster DNS.
  echo "nameserver $DNS_SERVICE_IP" > "$ST/resolv.conf"

  cat > "$ST/kubelet.yaml" <<CFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: cluster.local
resolvConf: $ST/resolv.conf
# Imported images cannot be pulled again: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
maxPods: 110
CFG

  cat > "$ST/kube-proxy.yaml" <<CFG
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $ST/proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
nodePortAddresses: ["$NODE_IP/32"]
conntrack: {maxPerCore: 0, min: 0}
iptables: {localhostNodePorts: false}
CFG
}

# ---------------------------------------------------------------- components
start_control_plane() {
  rm -rf "$ST/etcd-data"
  start etcd "$BIN/etcd" --name node --data-dir "$ST/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "node=http://127.0.0.1:$((ETCD_PORT + 1))" --unsafe-no-fsync
  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP --allow-privileged=false
  wait_for 90 kube-apiserver kc get --raw /readyz
  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$ST/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$ST/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$ST/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials --cluster-cidr "$POD_CIDR" --allocate-node-cidrs=false \
    --service-cluster-ip-range "$SERVICE_CIDR"
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig "$ST/scheduler.kubeconfig" \
    --authentication-kubeconfig "$ST/scheduler.kubeconfig" \
    --authorization-kubeconfig "$ST/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false
}

start_node() {
  start containerd containerd --config "$ST/containerd.toml"
  wait_for 30 containerd crictl info
  "$CLUSTER_DIR/images.sh" load-infra
  start kubelet "$BIN/kubelet" --config "$ST/kubelet.yaml" --kubeconfig "$ST/kubelet.kubeconfig" \
    --root-dir "$ST/kubelet" --cert-dir "$ST/kubelet/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  start kube-proxy "$BIN/kube-proxy" --config "$ST/kube-proxy.yaml"
  wait_for 120 "node $NODE_NAME" kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
}

addons_up() {
  sed -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|g" -e "s|@COREDNS_VERSION@|$COREDNS_VERSION|g" \
      -e "s|@LOCAL_PATH_VERSION@|$LOCAL_PATH_VERSION|g" -e "s|@LOCAL_PATH_DIR@|$ST/local-path|g" \
      "$CLUSTER_DIR/addons.yaml" | kc apply -f - >/dev/null
  wait_for 120 CoreDNS kc -n kube-system rollout status deploy/coredns --timeout=1s
  wait_for 120 local-path-provisioner kc -n local-path-storage rollout status deploy/local-path-provisioner --timeout=1s
}

# NetworkPolicy enforcement: kube-router's firewall alone, beside the bridge
# CNI and kube-proxy, once its RBAC (addons.yaml) exists. It admits traffic
# from the node's own IP to local pods (kubelet probes), so the host reaches
# the pod range from the node IP rather than from the bridge's gateway.
network_policy_up() {
  ip route replace "$POD_CIDR" dev "$BRIDGE_IF" proto kernel scope link src "$NODE_IP"
  start kube-router "$TOOLS/kube-router" --kubeconfig "$ST/network-policy.kubeconfig" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --hostname-override "$NODE_NAME" --service-cluster-ip-range "$SERVICE_CIDR" \
    --health-port 20244 --metrics-port 0
  wait_for 60 kube-router curl -fsS http://127.0.0.1:20244/healthz
}

# ipsets kube-router made (its NetworkPolicy sets, and its own).
our_ipsets() {
  { ipset list -n 2>/dev/null || true; } | grep -E '^(KUBE-|kube-router)' || true
}

healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do alive "$ST/pids/$c.pid" || return 1; done
  kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s >/dev/null 2>&1
}

up() {
  [ -x "$BIN/kube" ] || die "Kubernetes binaries missing; run make tools"
  local start=$SECONDS
  if healthy; then log "cluster already up"; return 0; fi
  # Whatever a killed cluster left behind goes first.
  down
  host_network_up
  write_configs
  start_control_plane
  start_node
  addons_up
  network_policy_up
  log "node $NODE_NAME Ready, DNS and storage up in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------- teardown
stop_component() {
  local f="$ST/pids/$1.pid"
  if [ -f "$f" ]; then
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  fi
}

remove_pods_via_cri() {
  # containerd must run for the CRI; start it alone if a killed cluster left it dead.
  if ! alive "$ST/pids/containerd.pid" && [ -f "$ST/containerd.toml" ] && [ -d "$CONTAINERD_ROOT" ]; then
    mkdir -p "$ST/pids" "$LOG_DIR" "$RUN/containerd"
    start containerd containerd --config "$ST/containerd.toml"
    wait_for 30 containerd crictl info || true
  fi
  alive "$ST/pids/containerd.pid" || return 0
  local pods
  pods=$(crictl pods -q 2>/dev/null || true)
  [ -n "$pods" ] || return 0
  # shellcheck disable=SC2086
  crictl stopp $pods >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  crictl rmp -f $pods >/dev/null 2>&1 || true
}

# PIDs of container processes still in the kubepods cgroups (all started by
# our kubelet), and of shims serving our containerd socket. Only a cluster
# whose containerd lost its state (killed, /run wiped) leaves any.
leftover_pids() {
  local f
  for f in /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/*/cgroup.procs \
           /sys/fs/cgroup/*/kubepods/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods/*/*/*/cgroup.procs; do
    [ -f "$f" ] && cat "$f"
  done
  for f in /proc/[0-9]*/cmdline; do
    if { tr '\0' ' ' < "$f"; } 2>/dev/null | grep -q -- "containerd-shim.* -address $CONTAINERD_SOCK"; then
      f=${f#/proc/}; echo "${f%/cmdline}"
    fi
  done
  return 0
}

kill_leftovers() {
  local pids
  pids=$(leftover_pids | sort -u | tr '\n' ' ')
  [ -n "${pids// /}" ] || return 0
  log "stopping leftover container processes and shims: $pids"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  sleep 0.5
}

cleanup_iptables() {
  local cmd table chain
  for cmd in iptables ip6tables; do
    command -v "$cmd" >/dev/null || continue
    for table in filter nat mangle raw; do
      # Rules in any chain that jump to one of ours, then our chains.
      { "$cmd" -t "$table" -S 2>/dev/null || true; } | { grep -E -- '^-A .*-j (KUBE-|CNI-)' || true; } |
        while read -r rule; do
          # eval: a rule may carry a quoted comment with spaces (kube-router's do).
          eval "\"\$cmd\" -t \"\$table\" ${rule/-A /-D }" 2>/dev/null || true
        done
      for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}'); do
        "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}'); do
        "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

our_mounts() {
  awk '{print $2}' /proc/self/mounts | grep -E "^($ST|$RUN|$CONTAINERD_ROOT)(/|$)" | sort -r || true
}

our_netns() {
  # Network namespaces made by the CNI for our pods (containerd names them cni-*).
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^cni-' || true
}

our_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [ -d "$d" ] && echo "$d"
  done
  return 0
}

down() {
  # The kubelet goes first, or it recreates the pods we remove.
  stop_component kubelet
  remove_pods_via_cri
  stop_component containerd
  kill_leftovers
  local i c m
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[$i]}"; done
  for m in $(our_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for m in $(our_netns); do ip netns delete "$m" 2>/dev/null || true; done
  if ip link show "$BRIDGE_IF" >/dev/null 2>&1; then ip link delete "$BRIDGE_IF" 2>/dev/null || true; fi
  ip route del "$SERVICE_CIDR" 2>/dev/null || true
  ip route del blackhole "$WHOLE_RANGE" 2>/dev/null || true
  if ip link show "$NODE_IF" >/dev/null 2>&1; then ip link delete "$NODE_IF" 2>/dev/null || true; fi
  "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  cleanup_iptables
  for m in $(our_ipsets); do ipset destroy "$m" 2>/dev/null || true; done
  for c in $(our_cgroups); do
    find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  # check-clean judges what is left; a busy leftover must not hide the rest of the report.
  rm -rf "$ST/etcd-data" "$ST/cni/ipam" "$ST/kubelet" "$RUN" 2>/dev/null || true
  return 0
}

check_clean() {
  local bad=0 c
  for c in "${COMPONENTS[@]}"; do
    if alive "$ST/pids/$c.pid"; then log "left behind: process $c"; bad=1; fi
  done
  if [ -n "$(our_mounts)" ]; then log "left behind: mounts $(our_mounts | tr '\n' ' ')"; bad=1; fi
  if [ -n "$(our_netns)" ]; then log "left behind: network namespaces $(our_netns | tr '\n' ' ')"; bad=1; fi
  for c in "$BRIDGE_IF" "$NODE_IF"; do
    if ip link show "$c" >/dev/null 2>&1; then log "left behind: interface $c"; bad=1; fi
  done
  if ip -o link show | grep -q "master $BRIDGE_IF"; then log "left behind: veth on $BRIDGE_IF"; bad=1; fi
  if ip route show | grep -qE "^(blackhole )?198\.1[89]\."; then log "left behind: routes $(ip route show | grep -E '198\.1[89]\.')"; bad=1; fi
  for c in iptables ip6tables; do
    if "$c" -t nat -S 2>/dev/null | grep -qE -- '(KUBE-|CNI-)' || "$c" -S 2>/dev/null | grep -qE -- '(KUBE-|CNI-)'; then
      log "left behind: $c chains"; bad=1
    fi
  done
  if [ -n "$(our_ipsets)" ]; then log "left behind: ipsets $(our_ipsets | tr '\n' ' ')"; bad=1; fi
  if [ -n "$(our_cgroups)" ]; then log "left behind: cgroups $(our_cgroups | tr '\n' ' ')"; bad=1; fi
  if [ -n "$(leftover_pids)" ]; then log "left behind: container processes or shims $(leftover_pids | tr '\n' ' ')"; bad=1; fi
  [ "$bad" -eq 0 ] || die "the host is not clean"
  log "host clean: no process, mount, netns, interface, route, iptables chain, ipset or cgroup of ours left"
}

print_env() {
  # kubectl, helm and crictl of the cached builds come first on PATH.
  echo "export PATH=$BIN:$(tools_bin_dir):\$PATH"
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
}

case "${1:-}" in
  up) up; print_env ;;
  down) down; log "cluster down" ;;
  env) print_env ;;
  check-clean) check_clean ;;
  *) echo "usage: $0 up|down|env|check-clean" >&2; exit 2 ;;
esac
