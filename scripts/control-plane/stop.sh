#!/usr/bin/env bash
# Stop a control plane started by start.sh and remove its temp dir.
#
#   scripts/control-plane/stop.sh [STATE_FILE]
#
# STATE_FILE defaults to $CP_STATE_FILE, then
# ${TMPDIR:-/tmp}/onnx-operator-control-plane-<uid>.env.
# CP_KEEP_LOGS=1 copies the logs to ${TMPDIR:-/tmp}/onnx-cp-logs.<pid>/ first.
# Exits 0 when there is nothing to stop.
set -uo pipefail

STATE="${1:-${CP_STATE_FILE:-${TMPDIR:-/tmp}/onnx-operator-control-plane-$(id -u).env}}"
log() { printf '[control-plane stop] %s\n' "$*" >&2; }

if [[ ! -f "$STATE" ]]; then
  log "no state file $STATE; nothing to stop"
  exit 0
fi

val() { # KEY -> value (undoes printf %q quoting by letting bash parse it)
  local line
  line="$(grep -E "^$1=" "$STATE" | tail -n1)" || return 0
  [[ -n "$line" ]] || return 0
  eval "printf '%s' ${line#*=}"
}
CP_DIR="$(val CP_DIR)"

# Only a pid whose command line names our temp dir is signalled (pid reuse after a crash).
# shellcheck source=scripts/control-plane/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
stop_pid() { cp_stop_pid "$1" "$2" "$CP_DIR"; } # name pid

# The node first: its kubelet would otherwise restart pods while the plane goes away.
# If it fails, the plane stays up and its files stay: removing them under a live kubelet would do worse.
if grep -q '^NODE_LEDGER=' "$STATE" && ! "$(dirname "${BASH_SOURCE[0]}")/node-stop.sh" "$STATE"; then
  log "stopping the node failed; the control plane is left running (retry: $0 $STATE)"
  exit 1
fi

stop_pid kube-controller-manager "$(val CONTROLLER_MANAGER_PID)"
stop_pid kube-apiserver "$(val APISERVER_PID)"
stop_pid etcd "$(val ETCD_PID)"

if [[ -n "$CP_DIR" && -d "$CP_DIR" ]]; then
  if [[ "${CP_KEEP_LOGS:-0}" == 1 && -d "$CP_DIR/logs" ]]; then
    keep="${TMPDIR:-/tmp}/onnx-cp-logs.$$"
    cp -r "$CP_DIR/logs" "$keep" && log "logs kept in $keep"
  fi
  case "$CP_DIR" in
    */onnx-cp.*) rm -rf "$CP_DIR" ;;
    *) log "refusing to remove unexpected CP_DIR=$CP_DIR" ;;
  esac
fi
rm -f "$STATE"
log "done"
