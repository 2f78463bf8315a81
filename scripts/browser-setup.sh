#!/usr/bin/env bash
# Makes sure Debian's chromium is installed (the browser the page test drives
# through playwright-core; no browser is ever downloaded by Playwright) and
# prints its path on stdout. Idempotent: a no-op when chromium already runs.
# Installing needs root (or passwordless sudo) and Debian's package repositories.
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

works() {
  [[ -x "$CHROMIUM" ]] && "$CHROMIUM" --headless --no-sandbox --version >/dev/null 2>&1
}

if works; then
  echo "$CHROMIUM"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser-setup.sh: $CHROMIUM is missing and there is no apt-get to install it; install Chromium and set CHROMIUM" >&2
  exit 1
fi

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "browser-setup.sh: $CHROMIUM is missing; run as root (or with passwordless sudo): apt-get install -y chromium" >&2
    exit 1
  fi
fi

echo "browser-setup.sh: installing chromium from Debian (first run only)..." >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be missing (slim images) or stale (a superseded version 404s): refresh once on failure.
if ! "${SUDO[@]}" apt-get install -y -q chromium >&2; then
  "${SUDO[@]}" apt-get update -q >&2
  "${SUDO[@]}" apt-get install -y -q chromium >&2
fi

if ! works; then
  echo "browser-setup.sh: chromium was installed but '$CHROMIUM --version' fails:" >&2
  "$CHROMIUM" --headless --no-sandbox --version >&2 || true
  exit 1
fi
echo "browser-setup.sh: $("$CHROMIUM" --headless --no-sandbox --version)" >&2
echo "$CHROMIUM"
