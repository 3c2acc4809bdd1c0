#!/usr/bin/env bash
# The CUDA check, as one short job on a machine with a GPU (under 5 minutes on one H200):
#   1. the tests marked `gpu` (tests/test_gpu.py and any other): train, evaluate, predict
#      (torch, autocast, compile, onnxruntime), demo, benchmark, every network's forward;
#   2. the model benchmark on the GPU for six families at 256 px (eager and bf16; compile is
#      exercised by the tests, its per-model compile time would not fit).
#
# Usage, from the repository root:   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# It uses the python on PATH (PYTHON to choose another), with torch for CUDA already installed,
# and runs the project from src/ (no install). Packages the project needs that such a machine
# lacks (rasterio, pydantic, ...) can travel as wheels in .whl/ (see the device tool's README):
# they are installed into /tmp/site first. Logs go to OUT_DIR (default: gpu_check_out).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${1:-gpu_check_out}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')" \
    || exit 1
status=0
timeout 190 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tee "$OUT/gpu_tests.log"
test "${PIPESTATUS[0]}" -eq 0 || status=1
timeout 100 "$PYTHON" benchmarks/models.py --device cuda --threads 8 --sizes 256 \
    --models glf_cr,dsen2cr,uncrtaints,utae_cr,spa_gan,mmcanet --runtimes eager,bf16 \
    --timeout 30 --markdown "$OUT/models_cuda.md" 2>&1 | tee "$OUT/models_cuda.log"
test "${PIPESTATUS[0]}" -eq 0 || status=1
exit $status
