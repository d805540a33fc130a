#!/usr/bin/env bash
# Set-up on a fresh machine: a virtual environment with the CPU build of torch, then medactive.
# torch==2.13.0 is installed first so that nothing pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test,docs]"
echo "medactive installed in .venv (activate with: source .venv/bin/activate)"
