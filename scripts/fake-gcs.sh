#!/usr/bin/env bash
# Builds fake-gcs-server (a GCS JSON-API emulator used by the inference-server
# tests) from the Go module proxy and prints the binary's path on stdout.
# The binary is cached outside the work tree, keyed by version, so repeated
# runs (and fresh clones on the same machine) never rebuild it.
set -euo pipefail

VERSION="${FAKE_GCS_SERVER_VERSION:-v1.56.1}"
BIN_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator/bin"
BIN="$BIN_DIR/fake-gcs-server-$VERSION"

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "fake-gcs.sh: the 'go' toolchain is required to build fake-gcs-server $VERSION" >&2
  exit 1
fi

mkdir -p "$BIN_DIR"
TMP="$(mktemp -d "$BIN_DIR/.build-XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "fake-gcs.sh: building fake-gcs-server $VERSION (first run only, ~1 min)..." >&2
# `go install pkg@version` builds outside any module of ours (the cwd's go.mod,
# if any, is ignored); CGO off gives a static binary needing no C toolchain.
(cd "$TMP" && CGO_ENABLED=0 GOBIN="$TMP" GOFLAGS=-mod=mod \
  go install -trimpath "github.com/fsouza/fake-gcs-server@$VERSION") >&2
# rename(2) is atomic: a concurrent run never sees a half-written binary.
mv -f "$TMP/fake-gcs-server" "$BIN"
echo "$BIN"
