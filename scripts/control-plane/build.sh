#!/usr/bin/env bash
# Build a real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kubectl), the node components (kube-scheduler, kubelet, kube-proxy) and etcd
# from the Go module proxy, and cache the binaries outside the work tree:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator/k8s-<version>/bin/
#       kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet
#       kube-proxy etcd
#
# Idempotent: when every binary is already there it prints the bin dir and
# exits at once. The last line on stdout is always the bin dir.
#
# Environment:
#   K8S_VERSION   kubernetes version to build (default v1.35.4)
#   ETCD_SOURCE   "go" (default: build go.etcd.io/etcd/server/v3 at the version
#                 kubernetes' go.mod pins) or "apt" (Debian's etcd-server
#                 package, etcd 3.4 on bookworm; needs root for apt-get)
#   CP_CACHE_ROOT override ${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator
#   GOMODCACHE    defaults to $CP_CACHE_ROOT/gomodcache (shared by versions)
#   FORCE=1       rebuild even if the binaries exist
#
# `k8s.io/kubernetes` cannot be `go install`ed directly because its go.mod
# replaces every k8s.io/* staging module with a local ./staging path (and
# requires them at v0.0.0). So we generate a tiny wrapper module that requires
# k8s.io/kubernetes vX.Y.Z and replaces each staging module with its published
# twin at v0.Y.Z, then `go build` the commands from it.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_SOURCE="${ETCD_SOURCE:-go}"
HOME="${HOME:-$(cd ~ 2>/dev/null && pwd || echo /tmp)}"
CACHE_ROOT="${CP_CACHE_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator}"
OUT="$CACHE_ROOT/k8s-$K8S_VERSION"
BIN="$OUT/bin"
BINARIES=(kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy etcd)
K8S_COMMANDS=(kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy)

log() { printf '[build %s +%ss] %s\n' "$(date +%H:%M:%S)" "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have_all() {
  [[ -f "$OUT/.complete" ]] || return 1
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

if [[ "${FORCE:-0}" != 1 ]] && have_all; then
  echo "$BIN"
  exit 0
fi

[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "K8S_VERSION must look like v1.N.P (got $K8S_VERSION)"
K8S_MINOR="${BASH_REMATCH[1]}"
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

command -v go >/dev/null || die "go is not on PATH"
mkdir -p "$OUT"

# Serialize concurrent builds of the same version.
exec 9>"$OUT/.lock"
if ! flock -n 9; then
  log "another build of $K8S_VERSION is running; waiting for its lock"
  flock 9
fi
if [[ "${FORCE:-0}" != 1 ]] && have_all; then
  echo "$BIN"
  exit 0
fi

export GOMODCACHE="${GOMODCACHE:-$CACHE_ROOT/gomodcache}"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GOWORK=off
mkdir -p "$GOMODCACHE"

log "go: $(go version); GOMODCACHE=$GOMODCACHE; GOCACHE=$(go env GOCACHE)"
log "kubernetes $K8S_VERSION (staging modules $STAGING_VERSION), etcd from: $ETCD_SOURCE"

# ---------------------------------------------------------------- k8s go.mod
t0=$SECONDS
dl_json="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION")" \
  || die "go mod download k8s.io/kubernetes@$K8S_VERSION failed: $dl_json"
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p" <<<"$dl_json" | head -n1; }
K8S_GOMOD="$(json_field GoMod)"
[[ -f "$K8S_GOMOD" ]] || die "no go.mod for k8s.io/kubernetes@$K8S_VERSION in: $dl_json"
log "downloaded k8s.io/kubernetes@$K8S_VERSION in $((SECONDS - t0))s"

K8S_GO_DIRECTIVE="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$K8S_GOMOD" | head -n1)"
K8S_GODEBUG_LINES="$(grep -E '^godebug ' "$K8S_GOMOD" || true)"
GO_HAVE="$(go env GOVERSION | sed 's/^go//; s/[^0-9.].*$//')"
ver_ge() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$2" ]]; }
if ! ver_ge "$GO_HAVE" "$K8S_GO_DIRECTIVE"; then
  log "WARNING: go $GO_HAVE is older than kubernetes' 'go $K8S_GO_DIRECTIVE' (GOTOOLCHAIN=$(go env GOTOOLCHAIN)); the build will likely fail"
fi

# Every k8s.io/* module that kubernetes requires at v0.0.0 or replaces with a
# ./staging path gets replaced by its published version v0.N.P.
mapfile -t STAGING < <(
  {
    sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$K8S_GOMOD"
    sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]\{1,\}v0\.0\.0\([[:space:]].*\)\{0,1\}$#\1#p' "$K8S_GOMOD"
    sed -n 's#^require[[:space:]]\{1,\}\(k8s\.io/[^[:space:]]*\)[[:space:]]\{1,\}v0\.0\.0\([[:space:]].*\)\{0,1\}$#\1#p' "$K8S_GOMOD"
  } | sort -u
)
(( ${#STAGING[@]} > 10 )) || die "found only ${#STAGING[@]} staging modules in $K8S_GOMOD; go.mod format changed?"
log "${#STAGING[@]} staging modules: ${STAGING[*]}"

ETCD_VERSION="$(sed -n 's#^[[:space:]]*go\.etcd\.io/etcd/server/v3[[:space:]]\{1,\}\(v[^[:space:]]*\).*#\1#p' "$K8S_GOMOD" | head -n1)"
[[ -n "$ETCD_VERSION" ]] || ETCD_VERSION=v3.6.5

# ---------------------------------------------------------------- wrapper mod
SRC="$OUT/src-kubernetes"
rm -rf "$SRC"
mkdir -p "$SRC"
{
  echo "// Generated by scripts/control-plane/build.sh; do not edit."
  echo "module onnx-operator.local/k8s-control-plane"
  echo
  echo "go $K8S_GO_DIRECTIVE"
  [[ -n "$K8S_GODEBUG_LINES" ]] && { echo; echo "$K8S_GODEBUG_LINES"; }
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  for m in "${STAGING[@]}"; do echo "	$m => $m $STAGING_VERSION"; done
  echo ")"
} >"$SRC/go.mod"

# Version stamping like hack/lib/version.sh does (otherwise the binaries
# report v0.0.0-master+$Format:%H$, which confuses version-skew checks).
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
  LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
done

STAGE="$OUT/.stage"
rm -rf "$STAGE"
mkdir -p "$STAGE"

K8S_PKGS=()
for c in "${K8S_COMMANDS[@]}"; do K8S_PKGS+=("k8s.io/kubernetes/cmd/$c"); done

t0=$SECONDS
log "resolving module graph (downloads dependencies on first run)"
(cd "$SRC" && go list -deps "${K8S_PKGS[@]}" >/dev/null) \
  || die "go list of the kubernetes commands failed (see above)"
log "module graph ready in $((SECONDS - t0))s"

t0=$SECONDS
log "building ${K8S_COMMANDS[*]} (several minutes on 2 cores)"
(cd "$SRC" && go build -trimpath -ldflags "$LDFLAGS" -o "$STAGE/" "${K8S_PKGS[@]}") \
  || die "go build of kubernetes commands failed"
log "built kubernetes commands in $((SECONDS - t0))s"

# ---------------------------------------------------------------- etcd
t0=$SECONDS
case "$ETCD_SOURCE" in
  go)
    ESRC="$OUT/src-etcd"
    rm -rf "$ESRC"
    mkdir -p "$ESRC"
    edl="$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION")" \
      || die "go mod download go.etcd.io/etcd/server/v3@$ETCD_VERSION failed: $edl"
    EGOMOD="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$edl" | head -n1)"
    EGO="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$EGOMOD" | head -n1)"
    {
      echo "// Generated by scripts/control-plane/build.sh; do not edit."
      echo "module onnx-operator.local/etcd"
      echo
      echo "go ${EGO:-1.24}"
      echo
      echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    } >"$ESRC/go.mod"
    log "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3)"
    (cd "$ESRC" && go build -trimpath -ldflags "-s -w" -o "$STAGE/etcd" go.etcd.io/etcd/server/v3) \
      || die "go build of etcd $ETCD_VERSION failed (try ETCD_SOURCE=apt)"
    ;;
  apt)
    if ! command -v /usr/bin/etcd >/dev/null 2>&1; then
      if [[ $(id -u) -ne 0 ]]; then die "ETCD_SOURCE=apt needs root to apt-get install etcd-server"; fi
      log "apt-get install etcd-server"
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server >&2; } \
        || die "apt-get install etcd-server failed"
    fi
    ln -sf /usr/bin/etcd "$STAGE/etcd"
    ;;
  *) die "unknown ETCD_SOURCE=$ETCD_SOURCE (go|apt)";;
esac
log "etcd ready in $((SECONDS - t0))s: $("$STAGE/etcd" --version 2>&1 | head -n1)"

# ---------------------------------------------------------------- install
mkdir -p "$BIN"
for b in "${BINARIES[@]}"; do
  [[ -e "$STAGE/$b" ]] || die "missing $STAGE/$b after build"
  mv -f "$STAGE/$b" "$BIN/$b"
done
rmdir "$STAGE" 2>/dev/null || true
{
  echo "K8S_VERSION=$K8S_VERSION"
  echo "ETCD_SOURCE=$ETCD_SOURCE"
  echo "ETCD_VERSION=$("$BIN/etcd" --version 2>&1 | sed -n 's/^etcd Version: //p')"
  echo "GO_VERSION=$(go env GOVERSION)"
  echo "BUILD_DATE=$BUILD_DATE"
} >"$OUT/.complete"
for b in "${BINARIES[@]}"; do log "$(du -hL "$BIN/$b" | cut -f1)	$BIN/$b"; done
log "done in ${SECONDS}s"
echo "$BIN"
