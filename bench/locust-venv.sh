#!/usr/bin/env bash
# Creates (once) a Python virtualenv holding Locust as pinned in
# bench/requirements.txt and prints its python's path on stdout; run Locust as
# "$(bash bench/locust-venv.sh)" -m locust -f bench/locustfile.py ...
# (cached outside the work tree by scripts/python-venv.sh, keyed by the file's hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec bash "$ROOT/scripts/python-venv.sh" "$ROOT/bench/requirements.txt" locust-venv locust
