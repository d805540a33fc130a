#!/usr/bin/env bash
# Optional second environment for external timm encoders (`--encoder timm:NAME`).
# timm needs torchvision; on this project's machines the only torchvision that imports is the
# one built for torch 2.14.1 (a CUDA build, about 5.5 GB), while the main .venv keeps the small
# torch 2.13.0 CPU build. So timm gets its own .venv-timm; scripts/test.sh runs the timm tests
# there when it exists. On a machine where `pip install timm` works beside your torch, install
# it into .venv instead (`pip install -e ".[timm]"`) and skip this script.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-timm
.venv-timm/bin/python -m pip install -q --upgrade pip
.venv-timm/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
.venv-timm/bin/python -m pip install -q -e ".[timm]" "pytest>=8" "pytest-timeout>=2.3"
echo "timm environment ready in .venv-timm"
