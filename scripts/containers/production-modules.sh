#!/usr/bin/env bash
# Copies one workspace's production dependencies, and nothing else, out of an
# installed monorepo: an image then carries what its program imports, not the
# other programs' packages or the dev tooling. Run by Dockerfile.server after
# `npm ci`, from the repository root:
#
#   bash scripts/containers/production-modules.sh @onnx-operator/inference-server /out/app
#
# writes /out/app/node_modules. Why not `npm ci --omit=dev --workspace …`: npm
# still installs the other workspaces' dependencies then (npm/cli#5969, #6670).
# `npm ls` walks the lockfile's tree for the one workspace instead, and its
# answer is what is copied.
#
# Then it drops what no program loads at run time: TypeScript declarations,
# source maps, and onnxruntime-node's binaries for the other platforms (its
# loader opens only bin/napi-v6/<platform>/<arch>; the rest is about 240 MB).
set -euo pipefail

workspace="${1:?usage: production-modules.sh WORKSPACE DEST}"
dest="${2:?usage: production-modules.sh WORKSPACE DEST}"
root="$PWD"

mkdir -p "$dest/node_modules"
count=0
while IFS= read -r dir; do
  case "$dir" in
  "$root"/node_modules/*)
    # --parents keeps the path (hoisted or nested) npm chose, so resolution is unchanged.
    cp -a --parents "${dir#"$root"/}" "$dest/"
    count=$((count + 1))
    ;;
  esac # the workspaces themselves (crds/, …) are compiled into dist/, not installed
done < <(npm ls --workspace "$workspace" --omit=dev --all --parseable)
((count > 0)) || { echo "production-modules.sh: npm ls listed no package for $workspace" >&2; exit 1; }

find "$dest/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
  -o -name '*.tsbuildinfo' \) -delete

ort="$dest/node_modules/onnxruntime-node/bin"
if [[ -d "$ort" ]]; then
  arch="$(node -p process.arch)"
  platform="$(node -p process.platform)"
  find "$ort" -mindepth 2 -maxdepth 2 ! -name "$platform" -exec rm -rf {} +
  find "$ort" -mindepth 3 -maxdepth 3 ! -name "$arch" -exec rm -rf {} +
  test -f "$ort/napi-v6/$platform/$arch/onnxruntime_binding.node" ||
    { echo "production-modules.sh: no onnxruntime binding for $platform/$arch" >&2; exit 1; }
fi
echo "production-modules.sh: $count packages for $workspace, $(du -sh "$dest/node_modules" | cut -f1)" >&2
