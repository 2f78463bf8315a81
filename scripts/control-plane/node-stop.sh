#!/usr/bin/env bash
# Stop the node node-start.sh started and undo everything it changed on the
# machine: pods and their processes, containerd and its shims, mounts, network
# namespaces, the bridge, kube-proxy's and the kubelet's iptables chains, the
# pod cgroups, and the sysctls (restored to the values the ledger recorded).
# stop.sh runs this first; it is idempotent.
#
#   scripts/control-plane/node-stop.sh STATE_FILE   # the running node of that plane
#   scripts/control-plane/node-stop.sh --ledger-only # what a crashed run left behind
#
# NODE_LEDGER as in node-start.sh (default /var/tmp/onnx-operator-node.ledger).
set -uo pipefail
PATH="$PATH:/usr/sbin:/sbin"

NODE_LEDGER="${NODE_LEDGER:-/var/tmp/onnx-operator-node.ledger}"
STATE=""
[[ "${1:-}" == --ledger-only ]] || STATE="${1:-}"
log() { printf '[node stop] %s\n' "$*" >&2; }

if [[ -n "$STATE" && -f "$STATE" ]]; then
  state_ledger="$(sed -n 's/^NODE_LEDGER=//p' "$STATE" | tail -n1)"
  [[ -n "$state_ledger" ]] || { log "no node in $STATE"; exit 0; }
  NODE_LEDGER="$state_ledger"
fi
if [[ ! -f "$NODE_LEDGER" ]]; then
  log "no ledger $NODE_LEDGER; nothing to undo"
  exit 0
fi
# Another plane's node is not ours to stop: the node directory (not the state file's path, which may be a copy) decides.
if [[ -n "$STATE" ]]; then
  mine="$(sed -n 's/^NODE_DIR=//p' "$STATE" | tail -n1)"
  if [[ "$(sed -n 's/^NODE_DIR=//p' "$NODE_LEDGER")" != "$mine" ]]; then
    log "the ledger is another node's ($(sed -n 's/^NODE_DIR=//p' "$NODE_LEDGER")), not this one's (${mine:-none}); leaving it"
    exit 0
  fi
fi
exec 8>"$NODE_LEDGER.lock"
flock -w 30 8 || { log "cannot lock $NODE_LEDGER.lock"; exit 1; }

ledger() { sed -n "s/^$1=//p" "$NODE_LEDGER" | tail -n1; }
NODE_DIR="$(ledger NODE_DIR)"
SOCK="$(ledger CONTAINERD_SOCK)"
BRIDGE="$(ledger BRIDGE)"
CGROUP_ROOT="$(ledger CGROUP_ROOT)"
KUBE_PROXY="$(ledger KUBE_PROXY)"
case "$NODE_DIR" in
  */onnx-cp.*/node) ;;
  *) log "refusing a ledger with unexpected NODE_DIR=$NODE_DIR"; exit 1 ;;
esac

# A pid is ours when its command line names the node's directory (pid reuse after a crash).
# shellcheck source=scripts/control-plane/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ours() { cp_owns "$1" "$NODE_DIR"; }
stop_pid() { cp_stop_pid "$1" "$2" "$NODE_DIR"; } # name pid
state_pid() { [[ -n "$STATE" && -f "$STATE" ]] && sed -n "s/^$1=//p" "$STATE" | tail -n1; }

kill_ours() { # every process whose command line names the node's directory: kubelet, shims, …
  local p pid
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    if ours "$pid"; then
      log "stopping leftover $(tr '\0' ' ' <"$p/cmdline" | cut -c1-60)… (pid $pid)"
      kill -KILL "$pid" 2>/dev/null
    fi
  done
}

# 1. The components that would restart or reprogram what we remove next (after a
# crash, without a state file: whatever of ours still runs).
[[ -n "$STATE" ]] || kill_ours
stop_pid kubelet "$(state_pid KUBELET_PID)"
stop_pid kube-proxy "$(state_pid KUBE_PROXY_PID)"
stop_pid kube-scheduler "$(state_pid SCHEDULER_PID)"

# 2. Every pod process: they all live under our cgroup root.
cgroup_dirs() { # the node's cgroup root in each hierarchy (v1) or the unified one (v2)
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    [[ -d "/sys/fs/cgroup/$CGROUP_ROOT" ]] && echo "/sys/fs/cgroup/$CGROUP_ROOT"
    return 0
  fi
  local h
  for h in /sys/fs/cgroup/*/; do [[ -d "$h$CGROUP_ROOT" ]] && echo "$h$CGROUP_ROOT"; done
  return 0
}
kill_pods() {
  local d pids
  pids="$(for d in $(cgroup_dirs); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -un)"
  [[ -z "$pids" ]] && return 1
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  return 0
}
if [[ -n "$CGROUP_ROOT" ]]; then
  for _ in $(seq 1 20); do kill_pods || break; sleep 0.25; done
fi

# 3. containerd: tasks and containers of the k8s.io namespace, then the daemon and any shim left.
if [[ -S "$SOCK" ]] && ctr --address "$SOCK" version >/dev/null 2>&1; then
  c() { ctr --address "$SOCK" --namespace k8s.io "$@"; }
  for t in $(c tasks ls -q 2>/dev/null); do c tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  sleep 0.5
  for t in $(c tasks ls -q 2>/dev/null); do c tasks delete -f "$t" >/dev/null 2>&1; done
fi
containerd_pid="$(state_pid CONTAINERD_PID)"
stop_pid containerd "$containerd_pid"
kill_ours

# containerd 1.6 puts every shim's socket in /run/containerd/s, named by a hash of its containerd's
# address, namespace and task id: remove ours (a killed shim leaves its socket behind).
for task in "$NODE_DIR"/containerd/state/io.containerd.runtime.v2.task/k8s.io/*/; do
  [[ -d "$task" && -n "$SOCK" ]] || continue
  hash="$(printf '%s' "$SOCK/k8s.io/$(basename "$task")" | sha256sum | cut -d' ' -f1)"
  rm -f "/run/containerd/s/$hash"
done
rmdir /run/containerd/s /run/containerd 2>/dev/null # only when empty: then they were ours alone

# 4. Mounts under the node's directory (pod volumes, sandbox /dev/shm, snapshots), deepest first.
for _ in 1 2 3; do
  mapfile -t mounts < <(awk -v d="$NODE_DIR" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
  ((${#mounts[@]})) || break
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done

# 5. Network: the pods' namespaces were mounts under the state dir (gone with step 4, and their veths
# with them); libcni's cache of each sandbox's result, then the bridge (node-start refused an existing one).
for sandbox in "$NODE_DIR"/containerd/state/io.containerd.grpc.v1.cri/sandboxes/*/; do
  id="$(basename "$sandbox")"
  [[ "$id" =~ ^[0-9a-f]{64}$ ]] && rm -f /var/lib/cni/results/*-"$id"-*
done
if [[ -n "$BRIDGE" ]] && ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link delete "$BRIDGE" && log "removed bridge $BRIDGE"
fi

# 6. iptables: kube-proxy removes its own rules; then any KUBE-* chain left (the kubelet's canaries).
[[ -x "$KUBE_PROXY" ]] && "$KUBE_PROXY" --cleanup >/dev/null 2>&1
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for table in filter nat mangle; do
    mapfile -t chains < <("$ipt" -t "$table" -S 2>/dev/null | sed -n 's/^-N \(KUBE-[^ ]*\)$/\1/p')
    ((${#chains[@]})) || continue
    # Rules that jump to them first, then the chains themselves.
    # eval: the rules' comments are quoted ("kubernetes service portals").
    "$ipt" -t "$table" -S 2>/dev/null | grep -E -- '-j KUBE-' | grep -Ev '^-A KUBE-' | sed 's/^-A /-D /' |
      while read -r rule; do
        eval "\"\$ipt\" -t \"\$table\" $rule" 2>/dev/null
      done
    for ch in "${chains[@]}"; do "$ipt" -t "$table" -F "$ch" 2>/dev/null; done
    for ch in "${chains[@]}"; do "$ipt" -t "$table" -X "$ch" 2>/dev/null; done
  done
done

# 7. sysctls back to what they were.
sed -n 's/^SYSCTL //p' "$NODE_LEDGER" | while IFS='=' read -r key value; do
  f="/proc/sys/${key//.//}"
  [[ -w "$f" && "$(cat "$f")" != "$value" ]] || continue
  echo "$value" >"$f" 2>/dev/null && log "restored $key=$value"
done

# 8. The pod cgroups (empty now), deepest first.
if [[ -n "$CGROUP_ROOT" ]]; then
  for d in $(cgroup_dirs); do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
  left="$(cgroup_dirs)"
  [[ -z "$left" ]] || log "WARNING: cgroups left behind: $left"
fi

if [[ -z "$STATE" && -d "$NODE_DIR" ]]; then rm -rf "$NODE_DIR"; fi
rm -f "$NODE_LEDGER"
log "node stopped and the machine restored"
