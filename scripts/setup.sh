#!/usr/bin/env bash
# Creates .venv and installs everything the dashboard and the tests need (CPU build of torch).
# Idempotent: re-running only installs what is missing (and unpacks only weights not unpacked yet). GPU users: see README "GPU install".
#   SKIP_TORCH=1  keep the torch (and its triton) already in .venv, e.g. a CUDA or ROCm build you installed;
#                 only the other pinned packages are installed.
#   PYTHON=...    interpreter used to create .venv (default python3, needs >= 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "${SKIP_TORCH:-0}" = "1" ]; then
  if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "SKIP_TORCH=1 but .venv has no torch: install a CUDA/ROCm build first (see README 'GPU install')." >&2
    exit 1
  fi
  # Every pin except torch and triton (a GPU torch wheel brings the triton it was built with).
  reqs=$(mktemp)
  trap 'rm -f "$reqs"' EXIT
  grep -v -E '^(torch|triton)==' requirements.txt > "$reqs"
  grep -v -E '^-r ' requirements-dev.txt >> "$reqs"
  .venv/bin/python -m pip install -q -r "$reqs"
else
  # torch first, alone, so pip takes the CPU wheel instead of resolving a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -r requirements-dev.txt
fi
# the bundled checkpoints are tracked as model.safetensors.xz: unpack them once (~2 s; loads would do it lazily)
.venv/bin/python -m backend models --unpack-weights
