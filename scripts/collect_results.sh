#!/usr/bin/env bash
# Copy a benchmark's report (tables, curves, report.md) into results/<name>/ for committing;
# the SQLite databases stay in runs/. Usage: scripts/collect_results.sh runs/cpu-blood [...]
set -euo pipefail
cd "$(dirname "$0")/.."
for run in "$@"; do
  name=$(basename "$run")
  .venv/bin/medactive report "$run" >/dev/null
  rm -rf "results/$name"
  mkdir -p "results/$name"
  cp -r "$run/report/tables" "$run/report/curves" "$run/report/report.md" "results/$name/"
  cp "$run"/report/labels_to_target.* "results/$name/" 2>/dev/null || true
  echo "results/$name"
done
