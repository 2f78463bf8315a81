#!/usr/bin/env bash
# Creates (once) a Python virtualenv holding the peer servers of
# bench/serving-core.ts (FastAPI + uvicorn, LitServe, KServe, onnxruntime,
# Pillow, numpy) as pinned in bench/peers/requirements.txt and prints its
# python's path on stdout; run a peer as
#   "$(bash bench/peers/venv.sh)" bench/peers/litserve_server.py MODEL.onnx PORT
# (cached outside the work tree by scripts/python-venv.sh, keyed by the file's hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec bash "$ROOT/scripts/python-venv.sh" "$ROOT/bench/peers/requirements.txt" peers-venv \
  "fastapi, uvicorn, multipart, litserve, kserve, onnxruntime, PIL, numpy"
