#!/usr/bin/env bash
# The whole GPU check in one run on a CUDA machine (the device machine, or a user's GPU
# box), from the repository root: install the carried wheels, run the CUDA tests, then
# the GPU benchmark. Results go to $OUT (default ./gpu-results).
#
# The device image has torch, triton, numpy and transformers but none of latestore's
# SQL/FAISS dependencies; `make gpu-wheels` downloads them (and the two peer kernels,
# used by the benchmark only) into .whl/, which travels with the run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
SITE="${GPU_CHECK_SITE:-/tmp/latestore-site}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl || exit 1
    export PYTHONPATH="$SITE:${PYTHONPATH:-}"
fi
# The mapped package folders as one import package, without an install.
python3 tools/package_links.py build/links
export PYTHONPATH="$PWD/build/links:$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >"$OUT/gpu.txt" 2>&1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
status=0
# Tests check results, not speed: the fixed launch shape spares a timing run per shape.
LATESTORE_KERNEL_AUTOTUNE=0 timeout "${GPU_TEST_TIMEOUT:-240}" python3 -m pytest -q -p no:cacheprovider \
    tests/index tests/store/test_gpu_store.py 2>&1 | tee "$OUT/pytest.log" | tail -25 || status=1
timeout "${GPU_BENCH_TIMEOUT:-420}" python3 -m bench.gpu --out "$OUT" ${GPU_BENCH_ARGS:-} 2>&1 |
    tee "$OUT/bench.log" || status=1
exit $status
