#!/usr/bin/env bash
# results/cpu-mini/check_calibration_avx2/: every seed of the check calibration's reference setting
# (learning rate 3e-3) run again from its own config.json, unchanged but for ATen's CPU kernels: AVX2
# instead of the AVX-512 the originals used (ATEN_CPU_CAPABILITY), one thread as each of the grid's
# two jobs had. Nothing meant to change, the numerics do: what a library release, another machine or
# a refactor does to a run, the case `harness check --pair-seeds` is for (section (d) of
# reports/check_calibration.md). About 1 minute per seed on a CPU core; finished seeds are skipped.
#
#   scripts/check_calibration_reruns.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/cpu-mini/check_calibration_avx2
for run in results/cpu-mini/check_calibration/runs/*/; do
  name=$(basename "$run")-avx2
  rate=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['learning_rate'])" "$run/config.json")
  if [ "$rate" != "0.003" ] || [ -e "$out/runs/$name/metrics.json" ]; then continue; fi
  ATEN_CPU_CAPABILITY=avx2 OMP_NUM_THREADS=1 harness run --config "$run/config.json" --output-dir "$out" \
    --run-name "$name"
done
