#!/usr/bin/env bash
# Creates .venv and installs everything the dashboard and the tests need (CPU build of torch).
# Idempotent: re-running only installs what is missing. GPU users: see README "GPU install".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, alone, so pip takes the CPU wheel instead of resolving a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -r requirements-dev.txt
