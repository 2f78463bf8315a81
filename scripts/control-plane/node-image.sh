#!/usr/bin/env bash
# Move an image from podman's storage into the node's containerd, without a
# registry, and give it more names there (e.g. the ones config/default uses):
#
#   scripts/control-plane/node-image.sh STATE_FILE localhost/onnx-operator:test \
#       ghcr.io/onnx-operator/onnx-operator:0.1.0
#
# The image is unpacked on import, so pods with imagePullPolicy IfNotPresent (a
# tag other than latest) start from it without any pull.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${1:?usage: node-image.sh STATE_FILE IMAGE [ALIAS...]}"
IMAGE="${2:?usage: node-image.sh STATE_FILE IMAGE [ALIAS...]}"
shift 2
log() { printf '[node image %s +%ss] %s\n' "$(date +%H:%M:%S)" "$SECONDS" "$*" >&2; }

SOCK="$(sed -n 's/^CONTAINERD_SOCK=//p' "$STATE" | tail -n1)"
[[ -S "$SOCK" ]] || { log "ERROR: $STATE names no running node (CONTAINERD_SOCK=$SOCK)"; exit 1; }
eval "$(bash "$ROOT/scripts/containers/setup.sh")"
ctr_() { ctr --address "$SOCK" --namespace k8s.io "$@"; }

podman image exists "$IMAGE" || { log "ERROR: podman has no image $IMAGE (build it: bash scripts/containers/build-images.sh)"; exit 1; }
# podman's docker-archive names the image as podman does (localhost/… stays localhost/…).
podman save --format docker-archive "$IMAGE" | ctr_ images import --all-platforms - >&2
# The list is read whole first: grep -q stopping early would fail the pipeline under pipefail.
present="$(ctr_ images ls -q)"
grep -qxF "$IMAGE" <<<"$present" || { log "ERROR: $IMAGE is not in containerd after the import"; exit 1; }
for alias in "$@"; do ctr_ images tag --force "$IMAGE" "$alias" >/dev/null; done
log "imported $IMAGE${*:+ as $*} ($(podman image inspect --format '{{ .Size }}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
