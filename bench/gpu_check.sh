#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): runs without Ray, on one GPU, in well under 8 minutes.
#   bash bench/gpu_check.sh [--dry-run]
# On the accelerator machine, Python packages its image lacks (pydantic, DeepSpeed, ...) travel
# as wheels in .whl/ (bench/gpu_wheels.sh fetches them here) and are installed to /tmp/site.
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
has() { "$python" -c "import importlib.util as u, sys; sys.exit(not u.find_spec('$1'))"; }
if ! { has pydantic && has deepspeed; } && compgen -G ".whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONUNBUFFERED=1 DS_BUILD_OPS=0
exec "$python" bench/gpu_check.py "$@"
