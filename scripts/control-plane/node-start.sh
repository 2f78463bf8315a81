#!/usr/bin/env bash
# Give a control plane started by start.sh (with CP_NODE=1) one real node on
# this machine: containerd (Debian's, with its own root, state, socket and CNI
# configuration), a CNI bridge on its own subnet, kube-scheduler, kubelet and
# kube-proxy (iptables mode). start.sh runs this itself; run it by hand only to
# debug:
#
#   scripts/control-plane/node-start.sh STATE_FILE
#
# It appends the node's KEY=VALUE lines to STATE_FILE (see the README) and
# prints them. stop.sh stops the node with the rest. Needs root.
#
# One node per machine at a time: the bridge, the iptables rules kube-proxy
# writes and the sysctls the kubelet sets are the machine's. A ledger
# (NODE_LEDGER, default /var/tmp/onnx-operator-node.ledger) records what this
# script changes before it changes it; node-stop.sh undoes it from there, and
# this script first runs node-stop.sh on a ledger a crashed run left behind.
#
# Environment (all optional):
#   NODE_NAME      the Node's name (default onnx-test-node)
#   NODE_IP        the kubelet's node IP: not loopback (default: the address of
#                  the interface of the default route)
#   NODE_POD_CIDR  the bridge's subnet (default 10.244.0.0/24)
#   NODE_BRIDGE    the bridge's name (default onnxbr0)
#   NODE_LEDGER    see above
#   CP_TIMEOUT     seconds to wait for each component (default 60)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${1:?usage: node-start.sh STATE_FILE}"
CP_TIMEOUT="${CP_TIMEOUT:-60}"
NODE_NAME="${NODE_NAME:-onnx-test-node}"
NODE_POD_CIDR="${NODE_POD_CIDR:-10.244.0.0/24}"
NODE_BRIDGE="${NODE_BRIDGE:-onnxbr0}"
NODE_LEDGER="${NODE_LEDGER:-/var/tmp/onnx-operator-node.ledger}"
PAUSE_IMAGE="localhost/onnx-operator/pause:1"
T_START=$SECONDS
PATH="$PATH:/usr/sbin:/sbin"

log() { printf '[node %s +%ss] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - T_START))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$(id -u)" == 0 ]] || die "a node needs root (containerd, iptables, sysctls, mounts)"
[[ -f "$STATE" ]] || die "no state file $STATE"
val() { # KEY -> value from the state file (undoes printf %q)
  local line
  line="$(grep -E "^$1=" "$STATE" | tail -n1)" || return 0
  eval "printf '%s' ${line#*=}"
}
CP_DIR="$(val CP_DIR)"
CP_BIN="$(val CP_BIN)"
APISERVER_URL="$(val KUBE_APISERVER_URL)"
PKI="$CP_DIR/pki"
[[ -d "$PKI" && -n "$APISERVER_URL" ]] || die "$STATE does not describe a running control plane"

# ------------------------------------------------------------ packages
need=()
for pair in containerd:containerd ctr:containerd runc:runc iptables:iptables conntrack:conntrack gcc:gcc; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || need+=(containernetworking-plugins)
[[ -f /usr/lib/x86_64-linux-gnu/libc.a || -f /usr/lib/aarch64-linux-gnu/libc.a ]] || need+=(libc6-dev)
if ((${#need[@]})); then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  log "installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${need[@]}" >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${need[@]}" >&2; } ||
    die "apt-get install ${need[*]} failed"
fi
for b in kube-scheduler kubelet kube-proxy; do
  [[ -x "$CP_BIN/$b" ]] || die "$CP_BIN/$b missing; run scripts/control-plane/build.sh"
done

# ------------------------------------------------------------ one node at a time
exec 8>"$NODE_LEDGER.lock"
flock -n 8 || die "another node is starting or stopping on this machine ($NODE_LEDGER.lock)"
if [[ -f "$NODE_LEDGER" ]]; then
  old_state="$(sed -n 's/^STATE=//p' "$NODE_LEDGER")"
  if [[ -n "$old_state" && -f "$old_state" ]] && grep -q '^KUBELET_PID=' "$old_state"; then
    pid="$(sed -n 's/^KUBELET_PID=//p' "$old_state" | tail -n1 | tr -d "'")" # the last one; '' when it never started
    dir="$(sed -n 's/^NODE_DIR=//p' "$NODE_LEDGER")"
    if [[ -r "/proc/$pid/cmdline" ]] && grep -qF -- "$dir" <<<"$(tr '\0' ' ' <"/proc/$pid/cmdline")"; then
      die "a node is running (kubelet pid $pid, state $old_state): stop it with scripts/control-plane/stop.sh $old_state"
    fi
  fi
  log "a previous node did not stop cleanly: undoing what its ledger records"
  flock -u 8
  NODE_LEDGER="$NODE_LEDGER" "$HERE/node-stop.sh" --ledger-only >&2 || die "cleaning up after the previous node failed"
  flock -n 8 || die "another node is starting on this machine"
fi

NODE_IP="${NODE_IP:-$({ ip -4 route get 1.1.1.1 2>/dev/null || true; } | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)}"
[[ -n "$NODE_IP" && "$NODE_IP" != 127.* ]] || die "no usable node IP (set NODE_IP to a non-loopback address of this machine)"
grep -qF " $NODE_IP/" <<<"$(ip -4 addr show)" || die "NODE_IP $NODE_IP is not an address of this machine"

# What stop removes must be ours: refuse a machine that already has the bridge or Kubernetes' chains.
! ip link show "$NODE_BRIDGE" >/dev/null 2>&1 || die "a link named $NODE_BRIDGE exists already (set NODE_BRIDGE to another name)"
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for table in filter nat mangle; do
    ! grep -q '^-N KUBE-' <<<"$("$ipt" -t "$table" -S 2>/dev/null || true)" ||
      die "$ipt's $table table has KUBE-* chains already: another Kubernetes node runs on this machine"
  done
done

NODE_DIR="$CP_DIR/node"
mkdir -p "$NODE_DIR"/{containerd,cni,cni-ipam,kubelet,kubelet-pki,pod-logs,volume-plugins,logs}
SOCK="$NODE_DIR/containerd/containerd.sock"
CGROUP_ROOT="onnx-node-$(basename "$CP_DIR")"

# The ledger: everything below that outlives our processes, recorded before it is changed.
SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait)
{
  echo "STATE=$STATE"
  echo "NODE_DIR=$NODE_DIR"
  echo "CONTAINERD_SOCK=$SOCK"
  echo "BRIDGE=$NODE_BRIDGE"
  echo "CGROUP_ROOT=$CGROUP_ROOT"
  echo "KUBE_PROXY=$CP_BIN/kube-proxy"
  for s in "${SYSCTLS[@]}"; do
    f="/proc/sys/${s//.//}"
    [[ -r "$f" ]] && echo "SYSCTL $s=$(cat "$f")"
  done
} >"$NODE_LEDGER.tmp"
mv -f "$NODE_LEDGER.tmp" "$NODE_LEDGER"
log "ledger $NODE_LEDGER written; node dir $NODE_DIR, node IP $NODE_IP"

SCHEDULER_PID="" KUBELET_PID="" KUBE_PROXY_PID="" CONTAINERD_PID=""
FAILED_LOG=""
on_failure() {
  local rc=$?
  [[ $rc -eq 0 ]] && return
  log "node start FAILED (rc=$rc)"
  if [[ -n "$FAILED_LOG" && -f "$FAILED_LOG" ]]; then
    log "---- last 40 lines of $FAILED_LOG ----"
    tail -n 40 "$FAILED_LOG" >&2 || true
  fi
  printf '%s=%q\n' CONTAINERD_PID "$CONTAINERD_PID" SCHEDULER_PID "$SCHEDULER_PID" KUBELET_PID "$KUBELET_PID" \
    KUBE_PROXY_PID "$KUBE_PROXY_PID" NODE_DIR "$NODE_DIR" NODE_LEDGER "$NODE_LEDGER" >>"$STATE"
  flock -u 8
  "$HERE/node-stop.sh" "$STATE" >&2 || true
}
trap on_failure EXIT

wait_for() { # name pid logfile check...
  local name="$1" pid="$2" logf="$3"; shift 3
  local deadline=$((SECONDS + CP_TIMEOUT))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || { log "$name (pid $pid) exited during startup"; FAILED_LOG="$logf"; return 1; }
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  log "$name not ready after ${CP_TIMEOUT}s"
  FAILED_LOG="$logf"
  return 1
}
PICKED=" "
pick_port() { # VAR: a free port in 10000-19999 (below start.sh's range and the node ports, outside the ephemeral range)
  local p hex
  for _ in $(seq 1 200); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % 10000))
    [[ "$PICKED" == *" $p "* ]] && continue
    hex="$(printf ':%04X ' "$p")"
    grep -q -- "$hex" <<<"$(awk '{print $2" "}' /proc/net/tcp /proc/net/tcp6 2>/dev/null)" && continue
    PICKED+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  die "no free port"
}

# ------------------------------------------------------------ certificates
# Each component authenticates with a client certificate from the plane's CA,
# named as the API server's Node and RBAC authorizers expect.
client_cert() { # name subject
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$1.key" 2>/dev/null
  openssl req -new -key "$PKI/$1.key" -subj "$2" -out "$PKI/$1.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -sha256 -days 3650 \
    -extfile "$PKI/client.ext" -out "$PKI/$1.crt" 2>/dev/null
  rm -f "$PKI/$1.csr"
  chmod 600 "$PKI/$1.key"
}
client_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
client_cert kube-scheduler "/CN=system:kube-scheduler"
client_cert kube-proxy "/CN=system:kube-proxy"
# The kubelet's serving certificate (the API server reaches it for logs, exec and port-forward).
openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/kubelet-serving.key" 2>/dev/null
openssl req -new -key "$PKI/kubelet-serving.key" -subj "/CN=$NODE_NAME" -out "$PKI/kubelet-serving.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:%s,DNS:%s\n' \
  "$NODE_IP" "$NODE_NAME" >"$PKI/kubelet-serving.ext"
openssl x509 -req -in "$PKI/kubelet-serving.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -sha256 -days 3650 \
  -extfile "$PKI/kubelet-serving.ext" -out "$PKI/kubelet-serving.crt" 2>/dev/null
rm -f "$PKI/kubelet-serving.csr"
chmod 600 "$PKI/kubelet-serving.key"

CA_B64="$(base64 -w0 <"$PKI/ca.crt")"
kubeconfig() { # file cert-name
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: onnx-operator-test
  cluster: {server: "$APISERVER_URL", certificate-authority-data: "$CA_B64"}
users:
- name: $2
  user: {client-certificate: "$PKI/$2.crt", client-key: "$PKI/$2.key"}
contexts:
- name: onnx-operator-test
  context: {cluster: onnx-operator-test, user: $2}
current-context: onnx-operator-test
EOF
  chmod 600 "$1"
}
for c in kubelet kube-scheduler kube-proxy; do kubeconfig "$NODE_DIR/$c.kubeconfig" "$c"; done

# ------------------------------------------------------------ containerd
# Its own paths throughout, so it never meets a system containerd or podman.
# restrict_oom_score_adj: the sandbox's root lacks CAP_SYS_RESOURCE, and runc
# fails every container whose oom_score_adj would go below the runtime's own.
cat >"$NODE_DIR/containerd/config.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.grpc.v1.cri.v1.sandbox-controllers"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  # The pods' network namespaces under our state dir, not /run/netns: stop unmounts them with the rest.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$NODE_DIR/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
EOF
# ipMasq false and no portmap: pod traffic stays on this machine.
cat >"$NODE_DIR/cni/10-onnx-bridge.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "onnx-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$NODE_POD_CIDR" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$NODE_DIR/cni-ipam"
      }
    }
  ]
}
EOF
CONTAINERD_LOG="$NODE_DIR/logs/containerd.log"
log "starting containerd ($SOCK)"
nohup containerd --config "$NODE_DIR/containerd/config.toml" </dev/null >"$CONTAINERD_LOG" 2>&1 8>&- &
CONTAINERD_PID=$!
disown "$CONTAINERD_PID" 2>/dev/null || true
ctr_() { ctr --address "$SOCK" --namespace k8s.io "$@"; }
wait_for containerd "$CONTAINERD_PID" "$CONTAINERD_LOG" ctr_ version || exit 1

# The sandbox image, built here from pause.c (no registry to pull one from).
PAUSE_TAR="$NODE_DIR/pause.tar"
(
  set -e
  d="$(mktemp -d "$NODE_DIR/pause.XXXXXX")"
  gcc -O2 -static -s -o "$d/pause" "$HERE/node/pause.c"
  mkdir -p "$d/rootfs" && cp "$d/pause" "$d/rootfs/pause"
  # A one-layer OCI image, made with tar alone (podman may not be installed on a node).
  tar --numeric-owner --owner=0 --group=0 -C "$d/rootfs" -cf "$d/layer.tar" pause
  layer_sha="$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"
  layer_size="$(stat -c %s "$d/layer.tar")"
  mkdir -p "$d/oci/blobs/sha256"
  mv "$d/layer.tar" "$d/oci/blobs/sha256/$layer_sha"
  printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$(go env GOARCH 2>/dev/null || echo amd64)" "$layer_sha" >"$d/config.json"
  cfg_sha="$(sha256sum "$d/config.json" | cut -d' ' -f1)"
  cfg_size="$(stat -c %s "$d/config.json")"
  mv "$d/config.json" "$d/oci/blobs/sha256/$cfg_sha"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cfg_sha" "$cfg_size" "$layer_sha" "$layer_size" >"$d/manifest.json"
  man_sha="$(sha256sum "$d/manifest.json" | cut -d' ' -f1)"
  man_size="$(stat -c %s "$d/manifest.json")"
  mv "$d/manifest.json" "$d/oci/blobs/sha256/$man_sha"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$man_sha" "$man_size" "$PAUSE_IMAGE" >"$d/oci/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$d/oci/oci-layout"
  tar -C "$d/oci" -cf "$PAUSE_TAR" .
  rm -rf "$d"
) || die "building the pause image failed"
ctr_ images import "$PAUSE_TAR" >&2 || die "ctr images import of the pause image failed"
grep -qxF "$PAUSE_IMAGE" <<<"$(ctr_ images ls -q)" || die "the pause image is not in containerd after the import"
log "containerd ready (pid $CONTAINERD_PID), sandbox image $PAUSE_IMAGE"

# ------------------------------------------------------------ kube-scheduler
pick_port SCHEDULER_PORT
SCHEDULER_LOG="$NODE_DIR/logs/kube-scheduler.log"
log "starting kube-scheduler (healthz 127.0.0.1:$SCHEDULER_PORT)"
nohup "$CP_BIN/kube-scheduler" \
  --kubeconfig="$NODE_DIR/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$NODE_DIR/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$NODE_DIR/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
  --cert-dir="$NODE_DIR/scheduler-certs" \
  --leader-elect=false --profiling=false \
  </dev/null >"$SCHEDULER_LOG" 2>&1 8>&- &
SCHEDULER_PID=$!
disown "$SCHEDULER_PID" 2>/dev/null || true
healthz() { [[ "$(curl -fsk --max-time 2 "https://127.0.0.1:$1/healthz")" == ok ]]; }
wait_for kube-scheduler "$SCHEDULER_PID" "$SCHEDULER_LOG" healthz "$SCHEDULER_PORT" || exit 1

# ------------------------------------------------------------ kubelet
# The cgroup root is ours alone, so stop can find and remove every pod cgroup.
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then # cgroup v2: one unified hierarchy
  mkdir -p "/sys/fs/cgroup/$CGROUP_ROOT"
else # cgroup v1: the same group in every hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    [[ -d "$hierarchy" && ! -L "${hierarchy%/}" ]] || continue
    mkdir -p "$hierarchy$CGROUP_ROOT"
    if [[ -f "${hierarchy}cpuset.cpus" ]]; then # a new v1 cpuset group starts with no CPUs
      cat "${hierarchy}cpuset.cpus" >"$hierarchy$CGROUP_ROOT/cpuset.cpus"
      cat "${hierarchy}cpuset.mems" >"$hierarchy$CGROUP_ROOT/cpuset.mems"
    fi
  done
fi
pick_port KUBELET_PORT
pick_port KUBELET_HEALTHZ_PORT
cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine is cgroup v1 and has no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
containerRuntimeEndpoint: unix://$SOCK
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: AlwaysAllow
failSwapOn: false
podLogsDir: $NODE_DIR/pod-logs
volumePluginDir: $NODE_DIR/volume-plugins
resolvConf: /etc/resolv.conf
# Imported images are the only copies (no registry): never collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "200Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
maxPods: 40
EOF
KUBELET_LOG="$NODE_DIR/logs/kubelet.log"
log "starting kubelet (node $NODE_NAME at $NODE_IP:$KUBELET_PORT)"
nohup "$CP_BIN/kubelet" \
  --config="$NODE_DIR/kubelet.yaml" \
  --kubeconfig="$NODE_DIR/kubelet.kubeconfig" \
  --root-dir="$NODE_DIR/kubelet" \
  --cert-dir="$NODE_DIR/kubelet-pki" \
  --hostname-override="$NODE_NAME" \
  --node-ip="$NODE_IP" \
  --v=1 \
  </dev/null >"$KUBELET_LOG" 2>&1 8>&- &
KUBELET_PID=$!
disown "$KUBELET_PID" 2>/dev/null || true
kubectl_() { "$CP_BIN/kubectl" --kubeconfig="$(val KUBECONFIG)" --request-timeout=5s "$@" </dev/null; }
node_ready() {
  [[ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
CP_TIMEOUT=$((CP_TIMEOUT * 2)) wait_for kubelet "$KUBELET_PID" "$KUBELET_LOG" node_ready || exit 1
log "kubelet ready (pid $KUBELET_PID); node $NODE_NAME Ready"

# ------------------------------------------------------------ kube-proxy
pick_port KUBE_PROXY_HEALTHZ_PORT
pick_port KUBE_PROXY_METRICS_PORT
cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $NODE_DIR/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $NODE_POD_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
# Node ports on the node's address only, and leave the machine's conntrack table and timeouts alone.
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
KUBE_PROXY_LOG="$NODE_DIR/logs/kube-proxy.log"
log "starting kube-proxy (iptables mode)"
nohup "$CP_BIN/kube-proxy" --config="$NODE_DIR/kube-proxy.yaml" --v=1 </dev/null >"$KUBE_PROXY_LOG" 2>&1 8>&- &
KUBE_PROXY_PID=$!
disown "$KUBE_PROXY_PID" 2>/dev/null || true
proxy_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" >/dev/null; }
wait_for kube-proxy "$KUBE_PROXY_PID" "$KUBE_PROXY_LOG" proxy_healthy || exit 1
log "kube-proxy ready (pid $KUBE_PROXY_PID)"

# ------------------------------------------------------------ state
{
  printf '%s=%q\n' \
    NODE_NAME "$NODE_NAME" \
    NODE_IP "$NODE_IP" \
    NODE_POD_CIDR "$NODE_POD_CIDR" \
    NODE_DIR "$NODE_DIR" \
    NODE_LEDGER "$NODE_LEDGER" \
    NODE_LOG_DIR "$NODE_DIR/logs" \
    CONTAINERD_SOCK "$SOCK" \
    PAUSE_IMAGE "$PAUSE_IMAGE" \
    CONTAINERD_PID "$CONTAINERD_PID" \
    SCHEDULER_PID "$SCHEDULER_PID" \
    KUBELET_PID "$KUBELET_PID" \
    KUBE_PROXY_PID "$KUBE_PROXY_PID"
} | tee -a "$STATE"
trap - EXIT
log "node up in $((SECONDS - T_START))s"
