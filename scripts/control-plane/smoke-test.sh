#!/usr/bin/env bash
# End-to-end check of the local control plane: start, namespaces, Deployment ->
# ReplicaSet (controller-manager), garbage collection, CRD served, RBAC
# impersonation, stop. Prints "N passed, N failed" and exits non-zero on failure.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CP_STATE_FILE="${CP_STATE_FILE:-${TMPDIR:-/tmp}/onnx-cp-smoke-$$.env}"

pass=0 fail=0
check() { # name cmd...
  local name="$1"; shift
  if "$@"; then echo "ok   - $name"; pass=$((pass + 1)); else echo "FAIL - $name"; fail=$((fail + 1)); fi
}
poll() { # seconds cmd...  (retries every 0.25 s)
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < deadline)) || return 1; sleep 0.25; done
}

"$HERE/start.sh" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
trap '"$HERE/stop.sh" "$CP_STATE_FILE" >/dev/null 2>&1' EXIT
# The state file is written by start.sh at run time.
set -a
# shellcheck source=/dev/null
. "$CP_STATE_FILE"
set +a
k() { "$CP_BIN/kubectl" --request-timeout=10s "$@" </dev/null; }
ns=smoke

check "get namespaces" poll 10 k get ns default
check "create namespace" k create ns "$ns" -o name
check "create deployment" k -n "$ns" create deployment web --image=nginx:1.27 --replicas=2 -o name
rs_exists() { [[ -n "$(k -n "$ns" get rs -l app=web -o name)" ]]; }
check "ReplicaSet created by deployment controller" poll 20 rs_exists
pods_2() { [[ "$(k -n "$ns" get pods -l app=web -o name | wc -l)" -eq 2 ]]; }
check "2 Pods created by replicaset controller" poll 20 pods_2
check "delete deployment" k -n "$ns" delete deployment web --wait=false
rs_gone() { [[ -z "$(k -n "$ns" get rs,pods -o name)" ]]; }
check "ReplicaSet and Pods garbage-collected" poll 30 rs_gone

crd_file="$CP_DIR/smoke-crd.yaml"
cat >"$crd_file" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.smoke.example.com}
spec:
  group: smoke.example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
EOF
check "create CRD" k apply -f "$crd_file" -o name
check "CRD established" k wait --for=condition=Established crd/widgets.smoke.example.com --timeout=30s
check "custom resource served" poll 20 k -n "$ns" get widgets.smoke.example.com
cr() { printf 'apiVersion: smoke.example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n' >"$CP_DIR/w1.yaml" && k -n "$ns" apply -f "$CP_DIR/w1.yaml" -o name; }
check "create custom resource" cr

cannot() { ! k auth can-i --as=system:serviceaccount:default:x list pods >/dev/null; }
check "RBAC: impersonated SA cannot list pods" cannot
check "RBAC: admin can list pods" k auth can-i list pods
check "namespace deletion (namespace controller)" k delete ns "$ns" --timeout=60s

"$HERE/stop.sh" "$CP_STATE_FILE" >/dev/null 2>&1
trap - EXIT
stopped() { ! kill -0 "$APISERVER_PID" 2>/dev/null && ! kill -0 "$ETCD_PID" 2>/dev/null && [[ ! -d "$CP_DIR" ]]; }
check "stop removes processes and temp dir" poll 10 stopped

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
