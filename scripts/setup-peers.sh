#!/usr/bin/env bash
# Optional environment for benchmarks/peers.py: the peer libraries (scikit-activeml, baal) that
# medactive's selection is measured against. baal pulls jupyter and some 70 other packages, so
# the peers get their own .venv-peers instead of the main .venv (which CI builds and tests, and
# which never needs the peers). torch==2.13.0 (the CPU build of .venv) is installed first so
# that baal's `torch>=1.6` pulls nothing bigger, then medactive itself with the `peers` extra.
# Where .venv exists, its numpy, scipy, scikit-learn and faiss-cpu versions are kept (a pip
# constraints file), so that both interpreters build byte-identical inputs and medactive's
# numbers do not depend on which environment ran them.
# benchmarks/peers.py runs the peer processes with .venv-peers/bin/python when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-peers
.venv-peers/bin/python -m pip install -q --upgrade pip
.venv-peers/bin/python -m pip install -q torch==2.13.0
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
if [ -x .venv/bin/python ]; then
  .venv/bin/python -m pip freeze | grep -iE '^(numpy|scipy|scikit-learn|faiss-cpu|torch)==' \
    > "$constraints" || true
fi
.venv-peers/bin/python -m pip install -q -c "$constraints" -e ".[peers]" "pytest>=8"
.venv-peers/bin/python -c "import skactiveml, baal, torch, numpy, sklearn; print('peers ready in .venv-peers: scikit-activeml', skactiveml.__version__, '| torch', torch.__version__, '| numpy', numpy.__version__, '| scikit-learn', sklearn.__version__)"
