#!/usr/bin/env bash
# Creates .venv and installs ftray with its development and example extras.
# torch goes in first: with no torch present, the plain `torch` requirement of ftray (and of
# DeepSpeed, PEFT, transformers) would pull a multi-GB CUDA build. TORCH_SPEC picks another.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,examples]"
