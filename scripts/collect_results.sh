#!/usr/bin/env bash
# Copy a benchmark's report (tables, curves, report.md, labels_to_target) into results/<name>/
# for committing; the SQLite databases stay in runs/. Only what `medactive report` writes is
# replaced: other files in results/<name>/ (notes, per-run folders) are kept as they are.
# Usage: scripts/collect_results.sh runs/cpu-blood [...]   (RESULTS_DIR=... to write elsewhere)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
results="${RESULTS_DIR:-$root/results}"
for run in "$@"; do
  name=$(basename "$run")
  "$root/.venv/bin/medactive" report "$run" >/dev/null
  dest="$results/$name"
  mkdir -p "$dest"
  rm -rf "$dest/tables" "$dest/curves" "$dest/report.md" "$dest"/labels_to_target.*
  cp -r "$run/report/tables" "$run/report/report.md" "$dest/"
  if [ -d "$run/report/curves" ]; then cp -r "$run/report/curves" "$dest/"; fi
  cp "$run"/report/labels_to_target.* "$dest/" 2>/dev/null || true
  echo "$dest"
done
