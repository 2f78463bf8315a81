#!/usr/bin/env bash
# Creates (once) a Python virtualenv holding Locust as pinned in
# bench/requirements.txt and prints its python's path on stdout; run Locust as
# "$(bash bench/locust-venv.sh)" -m locust -f bench/locustfile.py ...
# Like scripts/python-venv.sh (which is tied to scripts/requirements-test.txt):
# cached outside the work tree, keyed by the requirements file's sha256, built in
# a temporary directory and renamed into place so an interrupted run never
# leaves a half-built venv behind.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="$ROOT/bench/requirements.txt"
PYTHON="${PYTHON:-python3}"

HASH="$(sha256sum "$REQS" | cut -c1-12)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/onnx-operator"
VENV="$CACHE_DIR/locust-venv-$HASH"

usable() {
  [[ -f "$1/.complete" && -x "$1/bin/python" ]] && "$1/bin/python" -I -c '' >/dev/null 2>&1
}

if usable "$VENV"; then
  echo "$VENV/bin/python"
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "locust-venv.sh: '$PYTHON' is required (set PYTHON to another interpreter)" >&2
  exit 1
fi

mkdir -p "$CACHE_DIR"
TMP="$(mktemp -d "$CACHE_DIR/.locust-venv-$HASH.build-XXXXXX")"
STALE=""
cleanup() {
  rm -rf "$TMP"
  if [[ -n "$STALE" ]]; then rm -rf "$STALE"; fi
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP

echo "locust-venv.sh: building $VENV from $REQS (first run only, ~30 s)..." >&2
"$PYTHON" -m venv --prompt "onnx-operator-locust" "$TMP"
"$TMP/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
  --prefer-binary -r "$REQS" >&2
"$TMP/bin/python" -c 'import locust' >&2

# Scripts and activate files name the directory they were built in; point
# them at the final path so the renamed venv is a normal one.
while IFS= read -r f; do
  sed -i "s|$TMP|$VENV|g" "$f"
done < <(grep -rlIF -- "$TMP" "$TMP/bin" "$TMP/pyvenv.cfg" 2>/dev/null || true)
touch "$TMP/.complete"

if [[ -e "$VENV" ]] && ! usable "$VENV"; then
  STALE="$(mktemp -d "$CACHE_DIR/.locust-venv-$HASH.stale-XXXXXX")"
  mv -T "$VENV" "$STALE/venv" 2>/dev/null || true
fi

if ! mv -T "$TMP" "$VENV" 2>/dev/null; then
  if ! usable "$VENV"; then
    echo "locust-venv.sh: could not move the new venv to $VENV" >&2
    exit 1
  fi
fi
echo "$VENV/bin/python"
