#!/usr/bin/env bash
# Builds .venv with everything the demo, the benchmark and the tests need (CPU only, no model weights).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and pinned, so nothing later can pull a CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -r requirements-dev.txt
python -m pip install -q --no-deps -r requirements-nodeps.txt
# Debian's chromium for the browser test (no browser download); skipped where apt is not usable.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup: could not install chromium; browser tests will be skipped" >&2
fi
echo "setup: .venv ready ($(python -c 'import torch; print("torch", torch.__version__)'))"
