#!/usr/bin/env bash
# Start a throw-away Kubernetes control plane on loopback (envtest style):
# etcd + kube-apiserver + kube-controller-manager, no nodes/scheduler/kubelet.
#
#   scripts/control-plane/start.sh            # builds binaries first if needed
#   source "${TMPDIR:-/tmp}/onnx-operator-control-plane-$(id -u).env"
#   kubectl get ns                             # uses $KUBECONFIG ($CP_BIN/kubectl)
#   scripts/control-plane/stop.sh
#
# Stdout: the state as KEY=VALUE lines (shell-quoted with printf %q; plain for
# ordinary paths), the same content as the state file. Progress goes to stderr.
#
# Environment:
#   CP_STATE_FILE  where to write the state (default
#                  ${TMPDIR:-/tmp}/onnx-operator-control-plane-<uid>.env);
#                  use different files to run several control planes at once
#   CP_BIN         dir with kube-apiserver, kube-controller-manager, kubectl,
#                  etcd (default: whatever build.sh prints; builds if missing)
#   K8S_VERSION    passed to build.sh when CP_BIN is unset
#   CP_CONTROLLERS kube-controller-manager --controllers (default "*")
#   CP_APISERVER_ARGS, CP_KCM_ARGS, CP_ETCD_ARGS  extra args (word-split)
#   CP_KEEP_ON_FAILURE=1  keep the temp dir (logs) when start fails
#   CP_TIMEOUT     seconds to wait for each component (default 60)
#   CP_NODE=1      also start one real node (node-start.sh: kube-scheduler,
#                  kubelet, kube-proxy, containerd; root only). The API server
#                  then binds to the node's IP (pods reach it through the
#                  `kubernetes` Service), keeps that Service's endpoints, admits
#                  service-account tokens and authorizes the kubelet as a Node.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CP_STATE_FILE="${CP_STATE_FILE:-${TMPDIR:-/tmp}/onnx-operator-control-plane-$(id -u).env}"
CP_TIMEOUT="${CP_TIMEOUT:-60}"
T_START=$SECONDS

log() { printf '[control-plane %s +%ss] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - T_START))" "$*" >&2; }

# ------------------------------------------------------------ existing state
if [[ -f "$CP_STATE_FILE" ]]; then
  # shellcheck disable=SC1090
  old_pids="$(sed -n 's/^\(ETCD\|APISERVER\|CONTROLLER_MANAGER\)_PID=//p' "$CP_STATE_FILE" | tr '\n' ' ')"
  old_dir="$(sed -n 's/^CP_DIR=//p' "$CP_STATE_FILE" | tail -n1)"
  alive=""
  for p in $old_pids; do
    # alive and really ours (cmdline names the old temp dir; zombies have none)
    [[ -n "$old_dir" && -r "/proc/$p/cmdline" ]] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF -- "$old_dir" && alive+="$p "
  done
  if [[ -n "$alive" ]]; then
    log "ERROR: a control plane from $CP_STATE_FILE is still running (pids $alive)."
    log "run scripts/control-plane/stop.sh first, or set CP_STATE_FILE to another path"
    exit 1
  fi
  log "removing stale state $CP_STATE_FILE"
  CP_STATE_FILE="$CP_STATE_FILE" "$HERE/stop.sh" >/dev/null 2>&1 || rm -f "$CP_STATE_FILE"
fi

# ------------------------------------------------------------ binaries
if [[ -z "${CP_BIN:-}" ]]; then
  CP_BIN="$("$HERE/build.sh" | tail -n1)"
fi
for b in etcd kube-apiserver kube-controller-manager kubectl; do
  [[ -x "$CP_BIN/$b" ]] || { log "ERROR: $CP_BIN/$b missing; run scripts/control-plane/build.sh"; exit 1; }
done
command -v openssl >/dev/null || { log "ERROR: openssl is required"; exit 1; }

CP_NODE="${CP_NODE:-0}"
API_ADDRESS=127.0.0.1
if [[ "$CP_NODE" == 1 ]]; then
  [[ "$(id -u)" == 0 ]] || { log "ERROR: CP_NODE=1 needs root"; exit 1; }
  NODE_IP="${NODE_IP:-$({ ip -4 route get 1.1.1.1 2>/dev/null || true; } | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)}"
  [[ -n "$NODE_IP" && "$NODE_IP" != 127.* ]] || { log "ERROR: no non-loopback node IP (set NODE_IP)"; exit 1; }
  export NODE_IP
  API_ADDRESS="$NODE_IP"
fi

CP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/onnx-cp.XXXXXX")"
mkdir -p "$CP_DIR/pki" "$CP_DIR/logs"
ETCD_PID="" APISERVER_PID="" CONTROLLER_MANAGER_PID=""
FAILED_LOG=""

cleanup_on_failure() {
  local rc=$?
  [[ $rc -eq 0 ]] && return
  log "start FAILED (rc=$rc)"
  if [[ -n "$FAILED_LOG" && -f "$FAILED_LOG" ]]; then
    log "---- last 40 lines of $FAILED_LOG ----"
    tail -n 40 "$FAILED_LOG" >&2 || true
    log "---- end of $FAILED_LOG ----"
  fi
  local p
  if [[ "$CP_NODE" == 1 && -f "$CP_STATE_FILE" ]]; then "$HERE/node-stop.sh" "$CP_STATE_FILE" >&2 || true; fi
  rm -f "$CP_STATE_FILE"
  for p in $CONTROLLER_MANAGER_PID $APISERVER_PID $ETCD_PID; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in $CONTROLLER_MANAGER_PID $APISERVER_PID $ETCD_PID; do kill -9 "$p" 2>/dev/null || true; done
  if [[ "${CP_KEEP_ON_FAILURE:-0}" == 1 ]]; then
    log "kept $CP_DIR (CP_KEEP_ON_FAILURE=1)"
  else
    rm -rf "$CP_DIR"
  fi
}
trap cleanup_on_failure EXIT

# ------------------------------------------------------------ helpers
PICKED=" "
port_in_use() {
  local hex f
  hex="$(printf ':%04X ' "$1")"
  for f in /proc/net/tcp /proc/net/tcp6; do
    [[ -r "$f" ]] && awk '{print $2" "}' "$f" | grep -q -- "$hex" && return 0
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
  return 1
}
# pick_port VAR: a port below the usual ephemeral range, unused and not
# picked before (no subshell, so PICKED accumulates).
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 10000))
    [[ "$PICKED" == *" $p "* ]] && continue
    port_in_use "$p" && continue
    PICKED+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  log "ERROR: no free port found"
  return 1
}

http_ok() { # url -> 0 if HTTP 200 with body "ok"/json health true (plain http only)
  local url="$1"
  if command -v curl >/dev/null; then
    curl -fsS --max-time 2 "$url" 2>/dev/null | grep -Eq '"health": ?"true"|^ok$'
    return
  fi
  local hostport="${url#http://}"; hostport="${hostport%%/*}"
  local path="/${url#http://*/}"
  exec 3<>"/dev/tcp/${hostport%:*}/${hostport#*:}" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
  local body; body="$(timeout 2 cat <&3)"; exec 3<&-
  grep -Eq '"health": ?"true"' <<<"$body"
}

# wait_for NAME PID LOGFILE CHECK_CMD...: 0 when ready, 1 if died, 2 timeout
wait_for() {
  local name="$1" pid="$2" logf="$3"; shift 3
  local deadline=$((SECONDS + CP_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) exited during startup"
      FAILED_LOG="$logf"
      return 1
    fi
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  log "$name not ready after ${CP_TIMEOUT}s"
  FAILED_LOG="$logf"
  return 2
}

addr_in_use() { grep -qiE 'address already in use|bind: address' "$1" 2>/dev/null; }

# ------------------------------------------------------------ PKI
log "generating certificates and keys in $CP_DIR/pki"
PKI="$CP_DIR/pki"
(
  cd "$PKI"
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
  openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=onnx-operator-test-ca" -out ca.crt 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out apiserver.key 2>/dev/null
  openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr 2>/dev/null
  cat >apiserver.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:0:0:0:0:0:0:0:1,IP:10.0.0.1,IP:$API_ADDRESS,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
    -extfile apiserver.ext -out apiserver.crt 2>/dev/null
  # admin client certificate (O=system:masters), for clients that prefer certs
  openssl ecparam -name prime256v1 -genkey -noout -out admin.key 2>/dev/null
  openssl req -new -key admin.key -subj "/O=system:masters/CN=admin" -out admin.csr 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
    -extfile client.ext -out admin.crt 2>/dev/null
  # service-account token signing key
  openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
  openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
  # front-proxy (aggregation layer) client cert; also gives the apiserver a
  # requestheader CA so delegated authn in kube-controller-manager is quiet
  openssl ecparam -name prime256v1 -genkey -noout -out front-proxy-client.key 2>/dev/null
  openssl req -new -key front-proxy-client.key -subj "/CN=front-proxy-client" -out front-proxy-client.csr 2>/dev/null
  openssl x509 -req -in front-proxy-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
    -extfile client.ext -out front-proxy-client.crt 2>/dev/null
  rm -f ./*.csr
) || { log "ERROR: openssl failed"; exit 1; }

ADMIN_TOKEN="$(openssl rand -hex 24)"
KCM_TOKEN="$(openssl rand -hex 24)"
cat >"$PKI/tokens.csv" <<EOF
$ADMIN_TOKEN,admin,admin-uid,"system:masters"
$KCM_TOKEN,system:kube-controller-manager,kcm-uid,"system:masters"
EOF
chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

# ------------------------------------------------------------ etcd
ETCD_LOG="$CP_DIR/logs/etcd.log"
ETCD_FLAGS=()
if "$CP_BIN/etcd" --help 2>&1 | grep -q -- '--unsafe-no-fsync'; then ETCD_FLAGS+=(--unsafe-no-fsync); fi
for attempt in 1 2 3; do
  pick_port ETCD_PORT; pick_port ETCD_PEER_PORT
  ETCD_ENDPOINT="http://127.0.0.1:$ETCD_PORT"
  log "starting etcd on $ETCD_ENDPOINT (attempt $attempt)"
  rm -rf "$CP_DIR/etcd-data"
  # shellcheck disable=SC2086
  nohup "$CP_BIN/etcd" \
    --name=cp \
    --data-dir="$CP_DIR/etcd-data" \
    --listen-client-urls="$ETCD_ENDPOINT" \
    --advertise-client-urls="$ETCD_ENDPOINT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="cp=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    "${ETCD_FLAGS[@]}" ${CP_ETCD_ARGS:-} \
    </dev/null >"$ETCD_LOG" 2>&1 &
  ETCD_PID=$!
  disown "$ETCD_PID" 2>/dev/null || true
  rc=0; wait_for etcd "$ETCD_PID" "$ETCD_LOG" http_ok "$ETCD_ENDPOINT/health" || rc=$?
  [[ $rc -eq 0 ]] && break
  if [[ $rc -eq 1 ]] && addr_in_use "$ETCD_LOG" && [[ $attempt -lt 3 ]]; then
    log "etcd port clash; retrying"; FAILED_LOG=""; continue
  fi
  exit 1
done
log "etcd ready (pid $ETCD_PID)"

# ------------------------------------------------------------ kube-apiserver
APISERVER_LOG="$CP_DIR/logs/kube-apiserver.log"
KUBECONFIG_FILE="$CP_DIR/kubeconfig"
CA_B64="$(base64 -w0 <"$PKI/ca.crt" 2>/dev/null || base64 <"$PKI/ca.crt" | tr -d '\n')"
write_kubeconfig() { # file server user token
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: onnx-operator-test
  cluster:
    server: $2
    certificate-authority-data: $CA_B64
users:
- name: $3
  user:
    token: $4
contexts:
- name: onnx-operator-test
  context:
    cluster: onnx-operator-test
    user: $3
    namespace: default
current-context: onnx-operator-test
EOF
  chmod 600 "$1"
}
APISERVER_MODE_ARGS=(--authorization-mode=RBAC --disable-admission-plugins=ServiceAccount --endpoint-reconciler-type=none)
if [[ "$CP_NODE" == 1 ]]; then
  # shellcheck disable=SC2054 # the commas are inside one flag's value
  APISERVER_MODE_ARGS=(--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction
    --endpoint-reconciler-type=lease
    --kubelet-client-certificate="$PKI/admin.crt" --kubelet-client-key="$PKI/admin.key"
    --kubelet-preferred-address-types=InternalIP)
fi
readyz() { "$CP_BIN/kubectl" --kubeconfig="$KUBECONFIG_FILE" --request-timeout=2s get --raw /readyz </dev/null; }

for attempt in 1 2 3; do
  pick_port APISERVER_PORT
  APISERVER_URL="https://$API_ADDRESS:$APISERVER_PORT"
  write_kubeconfig "$KUBECONFIG_FILE" "$APISERVER_URL" admin "$ADMIN_TOKEN"
  log "starting kube-apiserver on $APISERVER_URL (attempt $attempt)"
  # shellcheck disable=SC2086
  nohup "$CP_BIN/kube-apiserver" \
    --advertise-address="$API_ADDRESS" \
    --bind-address="$API_ADDRESS" \
    --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --token-auth-file="$PKI/tokens.csv" \
    --etcd-servers="$ETCD_ENDPOINT" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    "${APISERVER_MODE_ARGS[@]}" \
    --allow-privileged=true \
    --requestheader-client-ca-file="$PKI/ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --profiling=false \
    --cert-dir="$CP_DIR/apiserver-certs" \
    ${CP_APISERVER_ARGS:-} \
    </dev/null >"$APISERVER_LOG" 2>&1 &
  APISERVER_PID=$!
  disown "$APISERVER_PID" 2>/dev/null || true
  rc=0; wait_for kube-apiserver "$APISERVER_PID" "$APISERVER_LOG" readyz || rc=$?
  [[ $rc -eq 0 ]] && break
  if [[ $rc -eq 1 ]] && addr_in_use "$APISERVER_LOG" && [[ $attempt -lt 3 ]]; then
    log "kube-apiserver port clash; retrying"; FAILED_LOG=""; continue
  fi
  exit 1
done
log "kube-apiserver ready (pid $APISERVER_PID)"

# ------------------------------------------------------------ kube-controller-manager
KCM_LOG="$CP_DIR/logs/kube-controller-manager.log"
KCM_KUBECONFIG="$CP_DIR/kube-controller-manager.kubeconfig"
write_kubeconfig "$KCM_KUBECONFIG" "$APISERVER_URL" system:kube-controller-manager "$KCM_TOKEN"
kcm_healthz() {
  # KCM serves a self-signed cert; authenticate with the admin client cert
  # (an empty user makes kubectl prompt for a username).
  "$CP_BIN/kubectl" --kubeconfig=/dev/null --server="https://127.0.0.1:$KCM_PORT" \
    --insecure-skip-tls-verify=true --client-certificate="$PKI/admin.crt" \
    --client-key="$PKI/admin.key" --request-timeout=2s get --raw /healthz </dev/null
}
for attempt in 1 2 3; do
  pick_port KCM_PORT
  log "starting kube-controller-manager (healthz port $KCM_PORT, attempt $attempt)"
  # shellcheck disable=SC2086
  nohup "$CP_BIN/kube-controller-manager" \
    --kubeconfig="$KCM_KUBECONFIG" \
    --authentication-kubeconfig="$KCM_KUBECONFIG" \
    --authorization-kubeconfig="$KCM_KUBECONFIG" \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --cert-dir="$CP_DIR/kcm-certs" \
    --leader-elect=false \
    --use-service-account-credentials=false \
    --controllers="${CP_CONTROLLERS:-*}" \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" \
    --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --profiling=false \
    ${CP_KCM_ARGS:-} \
    </dev/null >"$KCM_LOG" 2>&1 &
  CONTROLLER_MANAGER_PID=$!
  disown "$CONTROLLER_MANAGER_PID" 2>/dev/null || true
  rc=0; wait_for kube-controller-manager "$CONTROLLER_MANAGER_PID" "$KCM_LOG" kcm_healthz || rc=$?
  [[ $rc -eq 0 ]] && break
  if [[ $rc -eq 1 ]] && addr_in_use "$KCM_LOG" && [[ $attempt -lt 3 ]]; then
    log "kube-controller-manager port clash; retrying"; FAILED_LOG=""; continue
  fi
  exit 1
done
log "kube-controller-manager healthy (pid $CONTROLLER_MANAGER_PID)"

# With the serviceaccount controller on (default), wait for the default SA so
# tests can create pods/SA-bound objects right away.
if [[ "${CP_CONTROLLERS:-*}" == "*" || "${CP_CONTROLLERS:-}" == *serviceaccount* ]]; then
  sa_ready() { "$CP_BIN/kubectl" --kubeconfig="$KUBECONFIG_FILE" --request-timeout=2s -n default get serviceaccount default </dev/null; }
  wait_for "kube-controller-manager (default ServiceAccount)" "$CONTROLLER_MANAGER_PID" "$KCM_LOG" sa_ready || exit 1
fi

# ------------------------------------------------------------ state
K8S_VERSION_RUNNING="$("$CP_BIN/kubectl" --kubeconfig="$KUBECONFIG_FILE" version -o json 2>/dev/null \
  | sed -n '/serverVersion/,$ s/.*"gitVersion": "\([^"]*\)".*/\1/p' | head -n1)"
STATE_TMP="$CP_STATE_FILE.tmp.$$"
{
  printf '%s=%q\n' \
    KUBECONFIG "$KUBECONFIG_FILE" \
    CP_STATE_FILE "$CP_STATE_FILE" \
    CP_DIR "$CP_DIR" \
    CP_BIN "$CP_BIN" \
    K8S_VERSION "${K8S_VERSION_RUNNING:-unknown}" \
    KUBE_APISERVER_URL "$APISERVER_URL" \
    KUBE_CA_FILE "$PKI/ca.crt" \
    KUBE_ADMIN_TOKEN "$ADMIN_TOKEN" \
    KUBE_ADMIN_CERT_FILE "$PKI/admin.crt" \
    KUBE_ADMIN_KEY_FILE "$PKI/admin.key" \
    ETCD_ENDPOINT "$ETCD_ENDPOINT" \
    ETCD_PID "$ETCD_PID" \
    APISERVER_PID "$APISERVER_PID" \
    CONTROLLER_MANAGER_PID "$CONTROLLER_MANAGER_PID" \
    CP_LOG_DIR "$CP_DIR/logs"
} >"$STATE_TMP"
chmod 600 "$STATE_TMP"
mv -f "$STATE_TMP" "$CP_STATE_FILE"
cp "$CP_STATE_FILE" "$CP_DIR/state.env"

if [[ "$CP_NODE" == 1 ]]; then
  "$HERE/node-start.sh" "$CP_STATE_FILE" >/dev/null || exit 1
  cp "$CP_STATE_FILE" "$CP_DIR/state.env"
fi

trap - EXIT
log "control plane up in $((SECONDS - T_START))s; state in $CP_STATE_FILE"
cat "$CP_STATE_FILE"
