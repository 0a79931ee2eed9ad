#!/usr/bin/env bash
# Set up .venv, make sure a headless browser exists for the e2e test, run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/ui -x`. Exit code is pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "Installing chromium for the browser test (apt-get)..."
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  else
    echo "Note: /usr/bin/chromium is missing and we are not root: the e2e browser test will be skipped." >&2
  fi
fi
# Triton kernels run through the interpreter on CPU-only machines (harmless where a GPU exists: GPU
# tests set their own environment).
export TRITON_INTERPRET=1
# A hung test fails after 15 minutes instead of eating CI's whole budget (pytest-timeout, pinned in
# requirements-dev.txt); override with e.g. `bash scripts/test.sh --timeout=0`.
set +e
.venv/bin/python -m pytest --timeout=900 "$@"
rc=$?
set -e
exit $rc
