#!/usr/bin/env bash
# Creates (once) a Python virtualenv holding the tools pinned in a requirements
# file and prints its python's path on stdout:
#   scripts/python-venv.sh [REQUIREMENTS [NAME [MODULES]]]
# defaults: scripts/requirements-test.txt, "venv", "numpy, tritonclient.http"
# (MODULES are imported once the install is done, to prove it works).
# PYTHON picks the base interpreter; VENV_ARGS and PIP_ARGS add arguments to
# `python -m venv` and `pip install` (scripts/export-model/setup.sh uses them
# for --system-site-packages and --no-deps, to build on Debian's PyTorch).
# The venv is cached outside the work tree, keyed by the requirements file's
# sha256, so repeated runs (and fresh clones on the same machine) are a fast
# no-op, and editing the requirements builds a new venv beside the old one.
# It is built in a temporary directory and renamed into place, so an
# interrupted run never leaves a half-built venv behind.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="${1:-$ROOT/scripts/requirements-test.txt}"
NAME="${2:-venv}"
MODULES="${3:-numpy, tritonclient.http}"
PYTHON="${PYTHON:-python3}"
read -r -a VENV_EXTRA <<<"${VENV_ARGS:-}"
read -r -a PIP_EXTRA <<<"${PIP_ARGS:-}"

HASH="$(sha256sum "$REQS" | cut -c1-12)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator"
VENV="$CACHE_DIR/$NAME-$HASH"

# A venv is usable when its python starts (its base interpreter may have gone
# since it was built) and the build finished (the marker is written last).
usable() {
  [[ -f "$1/.complete" && -x "$1/bin/python" ]] && "$1/bin/python" -I -c '' >/dev/null 2>&1
}

if usable "$VENV"; then
  echo "$VENV/bin/python"
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "python-venv.sh: '$PYTHON' is required (set PYTHON to another interpreter)" >&2
  exit 1
fi

mkdir -p "$CACHE_DIR"
TMP="$(mktemp -d "$CACHE_DIR/.$NAME-$HASH.build-XXXXXX")"
STALE=""
cleanup() {
  rm -rf "$TMP"
  if [[ -n "$STALE" ]]; then rm -rf "$STALE"; fi
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP

echo "python-venv.sh: building $VENV from $REQS (first run only, ~15-30 s)..." >&2
"$PYTHON" -m venv ${VENV_EXTRA[@]+"${VENV_EXTRA[@]}"} --prompt "onnx-operator-$NAME" "$TMP"
"$TMP/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
  --prefer-binary ${PIP_EXTRA[@]+"${PIP_EXTRA[@]}"} -r "$REQS" >&2
"$TMP/bin/python" -c "import $MODULES" >&2

# Scripts and activate files name the directory they were built in; point
# them at the final path so the renamed venv is a normal one.
while IFS= read -r f; do
  sed -i "s|$TMP|$VENV|g" "$f"
done < <(grep -rlIF -- "$TMP" "$TMP/bin" "$TMP/pyvenv.cfg" 2>/dev/null || true)
touch "$TMP/.complete"

# Something unusable at the final path (an older build whose interpreter is
# gone): move it aside, atomically, before taking its place.
if [[ -e "$VENV" ]] && ! usable "$VENV"; then
  STALE="$(mktemp -d "$CACHE_DIR/.$NAME-$HASH.stale-XXXXXX")"
  mv -T "$VENV" "$STALE/venv" 2>/dev/null || true
fi

# rename(2) is atomic; -T never moves into an existing directory. If another
# run got there first, its venv is as good as ours: keep it, drop ours.
if ! mv -T "$TMP" "$VENV" 2>/dev/null; then
  if ! usable "$VENV"; then
    echo "python-venv.sh: could not move the new venv to $VENV" >&2
    exit 1
  fi
fi
echo "$VENV/bin/python"
