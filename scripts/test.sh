#!/usr/bin/env bash
# The test command: the whole suite (tests needing ../shared/data skip when it is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then ./scripts/setup.sh; fi
.venv/bin/python -m ruff check src tests benchmarks
.venv/bin/python -m pytest -q "$@"
