#!/usr/bin/env bash
# The GPU check, one script under 8 minutes, for a session lent a GPU (the device tool's `run`):
#   run: bash bench/gpu_check.sh        (results in $OUT, else bench/results/gpu/)
# 1. installs fastctrl into the machine's own python (no network there: no deps, no build
#    isolation; torch, triton, transformers, pybind11 and scikit-build-core are in its image),
# 2. the Triton engine bench (fused kernel vs torch eager / compile, e2e, launch, CUDA graph),
# 3. the hook on CUDA on a tiny model under a real ms budget (bench/gpu_hook_check.py),
# each writing JSON beside nvidia-smi's view of the card.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-bench/results/gpu}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -3
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$RESULTS/gpu.csv"
python3 -c "import fastctrl, torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" \
  | tee "$RESULTS/versions.txt"
timeout 300 python3 -m pytest bench/bench_triton.py --benchmark-only -q -p no:cacheprovider \
  --benchmark-json="$RESULTS/triton.json" 2>&1 | tail -25
timeout 150 python3 bench/gpu_hook_check.py --json "$RESULTS/hook_cuda.json"
