#!/usr/bin/env bash
# Builds the project's container images with podman, FROM the local base image
# that scripts/containers/setup.sh makes (run first, by this script):
#
#   Dockerfile.server   -> localhost/onnx-inference-server:test
#   Dockerfile.operator -> localhost/onnx-operator:test
#
#   bash scripts/containers/build-images.sh            # both
#   bash scripts/containers/build-images.sh server     # or: operator
#
# podman's layer cache makes a rebuild without changes take seconds; `npm ci`
# (the slow step) reruns only when package.json, package-lock.json or .npmrc
# change. Progress and podman's output go to stderr; stdout gets lines to eval:
#
#   export CONTAINERS_CONF=…   (and CONTAINERS_STORAGE_CONF=… where setup needs it)
#   export INFERENCE_SERVER_IMAGE=localhost/onnx-inference-server:test
#   export OPERATOR_IMAGE=localhost/onnx-operator:test
#
# Environment:
#   IMAGE_TAG          tag of both images (default: test)
#   NODE_IMAGE         base image (default: the local localhost/node:20-bookworm-slim)
#   HOST_CA_BUNDLE     this machine's CA bundle, bind-mounted over the image's during
#                      RUN steps (never into a layer) so that `npm ci` trusts what the
#                      host trusts, e.g. a TLS-intercepting egress proxy's CA
#                      (default /etc/ssl/certs/ca-certificates.crt; "none" to skip)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TAG="${IMAGE_TAG:-test}"
SERVER_IMAGE="localhost/onnx-inference-server:$TAG"
OPERATOR_IMAGE="localhost/onnx-operator:$TAG"
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

log() { printf '[images %s +%ss] %s\n' "$(date +%H:%M:%S)" "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

targets=("$@")
((${#targets[@]})) || targets=(server operator)
for t in "${targets[@]}"; do
  [[ "$t" == server || "$t" == operator ]] || die "unknown image '$t' (expected server and/or operator)"
done

REQUESTED_BASE="${NODE_IMAGE:-}"
setup_out="$(bash "$ROOT/scripts/containers/setup.sh")" || die "scripts/containers/setup.sh failed"
eval "$setup_out"
LOCAL_BASE="$NODE_IMAGE"
NODE_IMAGE="${REQUESTED_BASE:-$LOCAL_BASE}"
CACHE_DIR="$(dirname "$CONTAINERS_CONF")"

# One build at a time per machine: two concurrent builds of the same tag race on it.
exec 9>"$CACHE_DIR/.build-images.lock"
flock 9

mounts=()
if [[ "$HOST_CA_BUNDLE" != none ]] && [[ -f "$HOST_CA_BUNDLE" ]] && [[ "$NODE_IMAGE" == "$LOCAL_BASE" ]]; then
  # The local base has an (empty) /usr/local/etc/npmrc, npm's global config: mount
  # one naming the CA bundle over it. Both targets exist in the base, so nothing
  # of the mounts remains in the image.
  npmrc="$CACHE_DIR/build-npmrc"
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$npmrc.tmp" && mv -f "$npmrc.tmp" "$npmrc"
  mounts+=(-v "$HOST_CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" -v "$npmrc:/usr/local/etc/npmrc:ro")
fi

build() { # dockerfile image
  local dockerfile="$1" image="$2" start=$SECONDS
  log "building $image from $dockerfile (FROM $NODE_IMAGE)"
  # --network=host: RUN npm ci reaches the registry without a CNI bridge.
  # --layers: reuse podman's layer cache (the default for podman build; explicit here).
  if ! podman build --layers --network=host \
    --build-arg "NODE_IMAGE=$NODE_IMAGE" \
    "${mounts[@]}" \
    -f "$ROOT/$dockerfile" -t "$image" "$ROOT" >&2; then
    die "podman build of $dockerfile failed"
  fi
  log "built $image in $((SECONDS - start)) s ($(podman image inspect --format '{{ .Size }}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

for t in "${targets[@]}"; do
  case "$t" in
  server) build Dockerfile.server "$SERVER_IMAGE" ;;
  operator) build Dockerfile.operator "$OPERATOR_IMAGE" ;;
  esac
done

printf '%s\n' "$setup_out" | grep -v '^export NODE_IMAGE='
printf 'export INFERENCE_SERVER_IMAGE=%q\n' "$SERVER_IMAGE"
printf 'export OPERATOR_IMAGE=%q\n' "$OPERATOR_IMAGE"
