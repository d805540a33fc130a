#!/usr/bin/env bash
# The test command: the whole suite (tests needing ../shared/data skip when it is absent).
# The external-encoder (timm) tests also run in .venv-timm when scripts/setup-timm.sh made it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then ./scripts/setup.sh; fi
.venv/bin/python -m ruff check src tests benchmarks
if [ -x .venv-timm/bin/python ] && [ $# -eq 0 ]; then
  .venv-timm/bin/python -m pytest -q -p no:cacheprovider tests/encoders/test_timm.py
fi
.venv/bin/python -m pytest -q "$@"
