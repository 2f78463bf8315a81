#!/usr/bin/env bash
# Makes this machine able to build and run the project's container images with
# Debian's podman, without a Docker engine, a registry or any base image pull:
#
#   1. installs podman, buildah, runc, debootstrap (rootless: + uidmap,
#      fuse-overlayfs, slirp4netns) with apt-get when any is missing;
#   2. writes a containers.conf (and, only where overlay storage cannot run
#      containers, a vfs storage.conf) into the cache dir;
#   3. makes the base image localhost/node:20-bookworm-slim: a debootstrapped
#      Debian bookworm minbase root file system with ca-certificates and this
#      machine's Node.js 20 + npm at the official node image's paths. The root
#      file system is cached as a tarball keyed by the Node.js version and
#      imported into podman's storage when the image is missing there.
#
# Idempotent: a second run only checks and prints. On stdout it prints lines to
# eval (and nothing else):
#
#   export CONTAINERS_CONF=…/containers.conf
#   export CONTAINERS_STORAGE_CONF=…/storage.conf     (only when vfs is needed)
#   export NODE_IMAGE=localhost/node:20-bookworm-slim
#
#   eval "$(bash scripts/containers/setup.sh)"
#
# Environment:
#   CONTAINERS_CACHE_ROOT  default ${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator
#   DEBIAN_MIRROR          default http://deb.debian.org/debian
#   NODE_BIN               the node binary to put in the image (default: `command -v node`; must be v20)
#   FORCE=1                rebuild the base root file system and re-import it
#
# Why the containers.conf (what fails here without it):
#   runtime = runc         crun refuses this machine's hybrid cgroup v1/v2 layout
#   cgroup_manager         cgroupfs: there is no systemd to ask for scopes
#   events_logger = file   no journald
#   default_ulimits        podman raises nofile/nproc past the current hard limit
#                          by default, which needs CAP_SYS_RESOURCE the sandbox
#                          lacks: use the shell's own hard limit instead
set -euo pipefail

HOME="${HOME:-$(cd ~ 2>/dev/null && pwd || echo /tmp)}"
CACHE_ROOT="${CONTAINERS_CACHE_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator}"
CONF_DIR="$CACHE_ROOT/containers"
IMAGES_DIR="$CACHE_ROOT/images"
BASE_IMAGE="localhost/node:20-bookworm-slim"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Bumped when the recipe of the root file system changes: a cached tarball of
# another recipe is rebuilt.
RECIPE=2

log() { printf '[containers %s +%ss] %s\n' "$(date +%H:%M:%S)" "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$CONF_DIR" "$IMAGES_DIR"

# One setup at a time (two test files, two shells): the import and conf writes are not re-entrant.
exec 9>"$CACHE_ROOT/.containers-setup.lock"
flock 9

# ------------------------------------------------------------------ 1. packages

need=()
wanted=(podman:podman buildah:buildah runc:runc debootstrap:debootstrap)
# Rootless podman also needs subordinate id mapping, FUSE overlay and user-mode networking.
[[ "$(id -u)" == 0 ]] || wanted+=(newuidmap:uidmap fuse-overlayfs:fuse-overlayfs slirp4netns:slirp4netns)
for pair in "${wanted[@]}"; do
  cmd="${pair%%:*}" pkg="${pair##*:}"
  command -v "$cmd" >/dev/null 2>&1 || [[ -x "/usr/sbin/$cmd" ]] || need+=("$pkg")
done
if ((${#need[@]})); then
  [[ "$(id -u)" == 0 ]] || die "missing ${need[*]}: run as root or install them (apt-get install ${need[*]})"
  log "installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${need[@]}" >&2; then
    log "apt-get install failed; updating the package lists and retrying"
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${need[@]}" >&2
  fi
fi
PATH="$PATH:/usr/sbin:/sbin"

# ------------------------------------------------------------------ 2. configuration

write_if_changed() { # path content: atomic, and untouched when equal (others may be reading it)
  local path="$1" content="$2" tmp
  if [[ -f "$path" ]] && [[ "$(cat "$path")" == "$content" ]]; then return 0; fi
  tmp="$(mktemp "$path.XXXXXX")"
  printf '%s\n' "$content" >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$path"
}

hard_nofile="$(ulimit -Hn)"
[[ "$hard_nofile" == unlimited ]] && hard_nofile=1048576
hard_nproc="$(ulimit -Hu)"
if [[ "$hard_nproc" == unlimited ]] || ((hard_nproc > 32768)); then hard_nproc=32768; fi

CONF="$CONF_DIR/containers.conf"
write_if_changed "$CONF" "# Written by scripts/containers/setup.sh; see the comment there for why each line.
[containers]
default_ulimits = [\"nofile=$hard_nofile:$hard_nofile\", \"nproc=$hard_nproc:$hard_nproc\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
export CONTAINERS_CONF="$CONF"

# Storage: podman's default (overlay under /var/lib/containers for root) unless a
# previous run found that it cannot run containers here and switched to vfs.
STORAGE_CONF="$CONF_DIR/storage.conf"
use_vfs() {
  local root
  if [[ "$(id -u)" == 0 ]]; then root=/var/lib/containers/storage-vfs; else root="$CACHE_ROOT/containers/storage-vfs"; fi
  write_if_changed "$STORAGE_CONF" "# Written by scripts/containers/setup.sh: overlay storage could not run a container here.
[storage]
driver = \"vfs\"
graphroot = \"$root\"
runroot = \"/run/containers/storage-vfs-$(id -u)\""
  export CONTAINERS_STORAGE_CONF="$STORAGE_CONF"
}
if [[ -f "$STORAGE_CONF" ]]; then export CONTAINERS_STORAGE_CONF="$STORAGE_CONF"; fi

podman info >/dev/null 2>"$CONF_DIR/podman-info.err" || {
  if [[ -z "${CONTAINERS_STORAGE_CONF:-}" ]]; then
    log "podman info failed with the default storage ($(tail -1 "$CONF_DIR/podman-info.err")); trying vfs"
    use_vfs
    podman info >/dev/null 2>"$CONF_DIR/podman-info.err" || die "podman info fails: $(cat "$CONF_DIR/podman-info.err")"
  else
    die "podman info fails: $(cat "$CONF_DIR/podman-info.err")"
  fi
}

# ------------------------------------------------------------------ 3. base image

NODE_BIN="${NODE_BIN:-$(command -v node || true)}"
[[ -n "$NODE_BIN" ]] || die "node is not on PATH"
NODE_BIN="$(readlink -f "$NODE_BIN")"
NODE_VERSION="$("$NODE_BIN" -p process.version)"
[[ "$NODE_VERSION" == v20.* ]] || die "the base image must carry Node.js 20 (node:20-bookworm-slim); $NODE_BIN is $NODE_VERSION"
TARBALL="$IMAGES_DIR/node20-bookworm-$NODE_VERSION.tar"
STAMP="$TARBALL.recipe"
LABEL_KEY="io.github.onnx-operator.base"
LABEL_VALUE="node-$NODE_VERSION-recipe-$RECIPE"

npm_dir() {
  local npm_cli
  if npm_cli="$(command -v npm 2>/dev/null)"; then
    npm_cli="$(readlink -f "$npm_cli")" # …/node_modules/npm/bin/npm-cli.js
    local d
    d="$(cd "$(dirname "$npm_cli")/.." && pwd)"
    if [[ -f "$d/package.json" ]] && [[ "$(basename "$d")" == npm ]]; then echo "$d"; return; fi
  fi
  for d in "$(dirname "$NODE_BIN")/../lib/node_modules/npm" /usr/local/lib/node_modules/npm /usr/lib/node_modules/npm; do
    [[ -f "$d/package.json" ]] && { (cd "$d" && pwd); return; }
  done
  return 1
}

build_tarball() {
  local npm rootfs tmp
  [[ "$(id -u)" == 0 ]] || die "making the base root file system (debootstrap, chroot) needs root"
  npm="$(npm_dir)" || die "cannot find npm's directory (looked beside $(command -v npm || echo 'no npm'))"
  tmp="$(mktemp -d "$IMAGES_DIR/.rootfs-XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  rootfs="$tmp/rootfs"
  log "debootstrapping Debian bookworm minbase from $MIRROR (first run only, ~40 s)"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 ||
    die "debootstrap failed; last lines:
$(tail -20 "$tmp/debootstrap.log")"
  # What the slim images leave out too: package caches and lists, documentation.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" >"$rootfs/etc/apt/sources.list"
  : >"$rootfs/etc/resolv.conf"
  : >"$rootfs/etc/hostname"

  log "adding Node.js $NODE_VERSION ($NODE_BIN) and npm ($npm)"
  install -D -m 755 "$NODE_BIN" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a "$npm" "$rootfs/usr/local/lib/node_modules/npm"
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # npm's global config (an empty file, as if absent): scripts/containers/build-images.sh
  # bind-mounts one over it during RUN steps only, to point npm at this machine's CA
  # bundle (mounted over the image's) where TLS to the registry is intercepted. A
  # mount target that exists leaves no trace in the built layers.
  mkdir -p "$rootfs/usr/local/etc"
  : >"$rootfs/usr/local/etc/npmrc"
  # The official image's user: uid/gid 1000 "node" with a home directory.
  chroot "$rootfs" /usr/sbin/groupadd --gid 1000 node
  chroot "$rootfs" /usr/sbin/useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  chroot "$rootfs" /usr/local/bin/node -e 'require("node:https"); require("node:crypto").randomUUID()' ||
    die "the copied node does not run inside the root file system"
  [[ "$(chroot "$rootfs" /usr/local/bin/npm --version)" =~ ^[0-9]+\. ]] || die "the copied npm does not run inside the root file system"

  tar --numeric-owner -C "$rootfs" -cf "$tmp/rootfs.tar" .
  mv -f "$tmp/rootfs.tar" "$TARBALL" # rename(2): never a half-written tarball under the final name
  echo "$RECIPE" >"$STAMP"
  rm -rf "$tmp"
  trap - EXIT
  log "cached $TARBALL ($(du -h "$TARBALL" | cut -f1))"
}

image_current() {
  podman image exists "$BASE_IMAGE" || return 1
  [[ "$(podman image inspect --format "{{ index .Labels \"$LABEL_KEY\" }}" "$BASE_IMAGE" 2>/dev/null)" == "$LABEL_VALUE" ]]
}

import_tarball() {
  log "importing $TARBALL as $BASE_IMAGE"
  podman import --quiet \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV NODE_VERSION=${NODE_VERSION#v}" \
    --change "LABEL $LABEL_KEY=$LABEL_VALUE" \
    --change 'CMD ["node"]' \
    --message "scripts/containers/setup.sh: Debian bookworm minbase + Node.js $NODE_VERSION" \
    "$TARBALL" "$BASE_IMAGE" >/dev/null
}

# A container must start from it: proves the runtime, the storage driver and the ulimits.
smoke_test() {
  podman run --rm --network=none --read-only --user 1000 "$BASE_IMAGE" \
    node -e 'if (process.getuid() !== 1000) process.exit(3); console.log(process.version)' 2>&1
}

if [[ "${FORCE:-0}" == 1 ]] || [[ ! -f "$TARBALL" ]] || [[ "$(cat "$STAMP" 2>/dev/null)" != "$RECIPE" ]]; then
  build_tarball
  podman image rm -f "$BASE_IMAGE" >/dev/null 2>&1 || true
fi
image_current || import_tarball

if ! out="$(smoke_test)"; then
  if [[ -z "${CONTAINERS_STORAGE_CONF:-}" ]] && [[ "$(podman info --format '{{ .Store.GraphDriverName }}')" == overlay ]]; then
    log "a container does not run with overlay storage ($out); switching to vfs"
    use_vfs
    image_current || import_tarball
    out="$(smoke_test)" || die "a container does not run with vfs storage either: $out"
  else
    die "a container does not run: $out"
  fi
fi
[[ "$out" == "$NODE_VERSION" ]] || die "the base image's node says '$out', expected $NODE_VERSION"
log "ready: $BASE_IMAGE (node $NODE_VERSION, storage $(podman info --format '{{ .Store.GraphDriverName }}'))"

printf 'export CONTAINERS_CONF=%q\n' "$CONTAINERS_CONF"
if [[ -n "${CONTAINERS_STORAGE_CONF:-}" ]]; then printf 'export CONTAINERS_STORAGE_CONF=%q\n' "$CONTAINERS_STORAGE_CONF"; fi
printf 'export NODE_IMAGE=%q\n' "$BASE_IMAGE"
