#!/usr/bin/env bash
# Creates .venv and installs ftray with the extras named by $1 (default: dev,examples; `make
# demo` asks for examples only, which spares it the test tools and trackers).
# torch goes in first: with no torch present, the plain `torch` requirement of ftray (and of
# DeepSpeed, PEFT, transformers) would pull a multi-GB CUDA build. TORCH_SPEC picks another.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${1:-dev,examples}]"
