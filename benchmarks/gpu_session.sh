#!/usr/bin/env bash
# Issue 37's GPU measurements in one lent-machine session (15 minutes of device time in all, start
# included; one command may run 10 minutes): every step bounded by `timeout`, the steps' bounds adding up
# to under 9 minutes.
#
# A lent machine has its own Python (`python3`, with torch and numba but not this project's environment)
# and no network, so the package is imported from src/, and the wheels of what the model tests need
# beyond that image travel in .whl/ (made here by `python benchmarks/gpu_wheels.py`; installed in a
# temporary folder when present). A step whose modules are still missing fails alone and says so in its log.
#
# A lent machine returns at most 8 files from $OUT, so the steps write to a work folder and $OUT holds
# one archive, gpu_session.tar.gz (rewritten after every step: a run stopped at its limit still returns
# the finished steps), and steps.txt (each step's exit status and seconds).
#
#     python benchmarks/gpu_wheels.py                    # here, once: the wheels into .whl/
#     OUT=$OUT bash benchmarks/gpu_session.sh            # on the device, carrying .whl
#     tar -xzf gpu_session.tar.gz -C benchmarks/results/gpu   # here, with the files that came back
#
# DEVICE=cpu SMOKE=1 runs every step on the CPU at toy sizes (tests/test_benchmarks.py does, with the
# lent image's package list imposed), so the script is known to work before device time is spent.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}
OUT=${OUT:-benchmarks/results/gpu}
THREADS=4
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)   # the steps' files, archived into $OUT
SITE=$(mktemp -d)   # the carried wheels, installed
trap 'rm -rf "$WORK" "$SITE"' EXIT
WHEELS=${WHEELS:-.whl}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
        > "$WORK/wheels.log" 2>&1 && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [ "$SMOKE" = 1 ]; then  # toy sizes: each step's code path, not its measurement
    SIMULATION=(--epochs 4 --outputs 2 --rounds 0)
    ONEK1K=(--bags 40 --instances 4000 --outputs 3 --epochs 1)
    DETERMINISM=(--models mixmil abmil --epochs 2 --outputs 1)
    TESTS=(tests/models/test_attention_pool_kernels.py tests/test_bags.py)
else
    SIMULATION=(--epochs 300)
    ONEK1K=(--epochs 5)
    DETERMINISM=(--epochs 50)
    TESTS=(tests/models tests/test_bags.py tests/studies tests/test_io.py)
fi

: > "$OUT/steps.txt"
step() {  # step NAME SECONDS COMMAND...: one bounded measurement, its log NAME.log in the archive
    local name=$1 seconds=$2
    shift 2
    local start=$SECONDS
    timeout "$seconds" "$@" > "$WORK/$name.log" 2>&1
    local status=$?
    echo "$name: exit $status after $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
    tar -czf "$OUT/gpu_session.tar.gz.part" -C "$WORK" . && mv "$OUT/gpu_session.tar.gz.part" "$OUT/gpu_session.tar.gz"
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PYTHON" -c "import sys, torch, numpy, numba; print('python', sys.version.split()[0], 'torch', torch.__version__,
      'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'numba', numba.__version__)"
  cat "$WORK/wheels.log" 2>/dev/null; } > "$WORK/machine.txt" 2>&1
step table1_costs 60 "$PYTHON" benchmarks/table1_costs.py --devices "$DEVICE" --threads $THREADS --out "$WORK/table1_costs"
step simulation_speed 100 "$PYTHON" benchmarks/mixmil_simulation_speed.py --device "$DEVICE" --threads $THREADS \
    "${SIMULATION[@]}" --out "$WORK/mixmil_simulation_speed_$DEVICE"
step onek1k_scale 150 "$PYTHON" benchmarks/onek1k_scale.py --device "$DEVICE" --threads $THREADS "${ONEK1K[@]}" \
    --out "$WORK/onek1k_scale_$DEVICE"
step gpu_determinism 100 "$PYTHON" benchmarks/gpu_determinism.py --device "$DEVICE" --threads $THREADS \
    "${DETERMINISM[@]}" --out "$WORK/gpu_determinism"
step model_tests 140 "$PYTHON" -m pytest -v -p no:cacheprovider "${TESTS[@]}"
tail -n 3 "$WORK/model_tests.log"
cat "$WORK"/*.md 2>/dev/null | head -120
