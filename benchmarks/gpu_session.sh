#!/usr/bin/env bash
# Issue 37's GPU measurements in one lent-machine session (15 minutes of device time in all, start
# included): every step bounded by `timeout`, results under $OUT (default benchmarks/results/gpu).
# A lent machine has its own Python with torch but not this project's environment and no network, so
# the package is imported from src/ and steps whose modules are missing fail alone and say so.
#
#     OUT=$OUT bash benchmarks/gpu_session.sh        # on the device (the run tool's $OUT comes back)
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
THREADS=4
step() {  # step NAME SECONDS COMMAND...: one bounded measurement, its log in $OUT/NAME.log
    local name=$1 seconds=$2
    shift 2
    local start=$SECONDS
    timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
    echo "$name: exit $? after $((SECONDS - start)) s (log $OUT/$name.log)"
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"; } > "$OUT/machine.txt" 2>&1
step table1_costs 90 python benchmarks/table1_costs.py --devices cuda --threads $THREADS --out "$OUT/table1_costs"
step simulation_speed 120 python benchmarks/mixmil_simulation_speed.py --device cuda --threads $THREADS \
    --epochs 300 --out "$OUT/mixmil_simulation_speed_cuda"
step onek1k_scale 180 python benchmarks/onek1k_scale.py --device cuda --threads $THREADS --epochs 5 \
    --out "$OUT/onek1k_scale_cuda"
step gpu_determinism 120 python benchmarks/gpu_determinism.py --device cuda --epochs 50 --threads $THREADS \
    --out "$OUT/gpu_determinism"
step model_tests 120 python -m pytest -q -x -p no:cacheprovider tests/models
cat "$OUT"/*.md 2>/dev/null | head -120
