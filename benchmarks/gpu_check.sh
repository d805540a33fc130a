#!/usr/bin/env bash
# GPU check (issue 16 part 4): one script, under 10 minutes on one H200 GPU.
#
#   (i)  one round of one classification unit (the survey training preset, embedded
#        PneumoniaMNIST) and one ACDC unit (survey preset, iterations capped by ACDC_ITERS),
#        both with --device cuda --selection-device cuda;
#   (ii) the selection benchmark (benchmarks/selection.py) at n = 10^6 for badge, coreset_l2
#        and bald, and at TYPI_N (default 9 * 10^4) for typiclust (kNN / typicality on the
#        device, k-means on the host), with --selection-device cuda and the numpy CPU path
#        beside it.
#
# Writes $OUT/gpu_check.csv (header step,n,impl,seconds,peak_mb; the run rows have
# step run:<unit> and n = nan), the runs under $OUT/runs
# and each step's log under $OUT/logs. $OUT defaults to ./runs/gpu-check.
#
# Usage:
#   bash benchmarks/gpu_check.sh                     # on the GPU machine
#   bash benchmarks/gpu_check.sh --dry-run           # CPU smoke test: small n, smoke preset,
#                                                    # torch backend on the CPU (no GPU needed)
set -euo pipefail

DRY=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $arg (use --dry-run or nothing)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
OUT="${OUT:-./runs/gpu-check}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
DATA_ROOT="${DATA_ROOT:-}"
if [ -z "$DATA_ROOT" ]; then
  for d in ../shared/data shared/data; do [ -d "$d/acdc" ] && DATA_ROOT="$d" && break; done
fi
mkdir -p "$OUT/logs" "$OUT/runs"
CSV="$OUT/gpu_check.csv"
echo "step,n,impl,seconds,peak_mb" > "$CSV"

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; SEL=cpu; BENCH_SEL=torch-cpu; PRESET=smoke; EPOCHS="--epochs 1"
  ACDC_ITERS="${ACDC_ITERS:-2}"; N="${N:-20000}"; BENCH_ARGS="--budget 50 --n-labeled 50 --dim 64"
  TYPI_N="${TYPI_N:-5000}"
  LIMIT=300
else
  DEVICE=cuda; SEL=cuda; BENCH_SEL=cuda; PRESET=survey; EPOCHS=""
  ACDC_ITERS="${ACDC_ITERS:-400}"; N="${N:-1000000}"; BENCH_ARGS=""
  TYPI_N="${TYPI_N:-90000}"
  LIMIT=240
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "gpu_check.sh: no CUDA device (torch.cuda.is_available() is False); use --dry-run" >&2; exit 2; }
  "$PY" -c "import torch; print('gpu:', torch.cuda.get_device_name(0))"
fi
echo "gpu_check: OUT=$OUT n=$N preset=$PRESET device=$DEVICE selection=$SEL data_root=${DATA_ROOT:-none}"

run_unit() {  # NAME ARGS...: one `medactive run`, its wall time as a CSV row
  local name="$1"; shift
  local start end
  start=$(date +%s.%N)
  if timeout "$LIMIT" "$PY" -m medactive run --out "$OUT/runs/$name" --overwrite --rounds 1 \
      --device "$DEVICE" --selection-device "$SEL" --no-progress "$@" \
      > "$OUT/logs/$name.log" 2>&1; then
    end=$(date +%s.%N)
    echo "run:$name,nan,medactive-$SEL,$(awk "BEGIN {printf \"%.1f\", $end - $start}"),nan" >> "$CSV"
  else
    echo "gpu_check: $name failed, see $OUT/logs/$name.log" >&2
    echo "run:$name,nan,medactive-$SEL,nan,nan" >> "$CSV"
  fi
  tail -n 3 "$OUT/logs/$name.log"
}

# (i) one round of each unit
run_unit classification --data default --strategy badge --initial 50 --budget 50 \
  --preset "$PRESET" $EPOCHS
if [ -n "$DATA_ROOT" ]; then
  run_unit acdc --data "$DATA_ROOT/acdc" --strategy entropy --initial 10 --budget 10 \
    --preset "$PRESET" --epochs "$ACDC_ITERS"
else
  echo "gpu_check: no acdc/ under ../shared/data or shared/data: ACDC unit skipped" >&2
fi

# (ii) the selection step at n, on the device and on numpy beside it
for sel in "$BENCH_SEL" cpu; do
  timeout $((3 * LIMIT)) "$PY" benchmarks/selection.py --n "$N" --impls ours \
    --strategies badge coreset_l2 bald --selection-device "$sel" --threads "$(nproc)" \
    --timeout "$LIMIT" $BENCH_ARGS 2> "$OUT/logs/selection-$sel.log" \
    | tail -n +2 >> "$CSV" || echo "gpu_check: selection ($sel) failed or timed out" >&2
  timeout "$LIMIT" "$PY" benchmarks/selection.py --n "$TYPI_N" --impls ours \
    --strategies typiclust --selection-device "$sel" --threads "$(nproc)" \
    --timeout "$LIMIT" $BENCH_ARGS 2> "$OUT/logs/selection-typiclust-$sel.log" \
    | tail -n +2 >> "$CSV" || echo "gpu_check: typiclust ($sel) failed or timed out" >&2
done

cat "$CSV"
echo "gpu_check: wrote $CSV"
