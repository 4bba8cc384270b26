#!/usr/bin/env bash
# The whole GPU check in one run on a CUDA machine (the device machine, or a user's GPU
# box), from the repository root: install the carried wheels, run the CUDA tests, the
# GPU kernel and store benchmark, then the encoder benchmark. Results go to $OUT
# (default ./gpu-results).
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
# Parts, in order, each under its own time limit so that all three fit one ~6 minute
# device call (install ~15 s): GPU_PARTS picks which run (e.g. GPU_PARTS=encoders to rerun
# one), GPU_*_TIMEOUT caps each. A part cut short keeps what it wrote to $OUT. Issue 11's
# parts (tests, kernels: 150 s each; most of the tests' time is compiling kernels) come
# first; the encoder part (issue 15, resolved) gets what is left, 50 s: rerun it alone
# with GPU_PARTS=encoders GPU_ENCODERS_TIMEOUT=300 for all three models.
GPU_PARTS="${GPU_PARTS:-tests,kernels,encoders}"
part() { [[ ",$GPU_PARTS," == *",$1,"* ]]; }
timed() {  # name, then the command: its wall time goes to $OUT/parts.txt
    local name=$1 start=$SECONDS rc
    shift
    "$@"
    rc=$?
    echo "$name: rc=$rc, $((SECONDS - start)) s" >>"$OUT/parts.txt"
    return $rc
}
status=0
: >"$OUT/parts.txt"
if part kernels; then
    # The kernel compiled by this machine's triton for its own GPU: registers, spills and
    # shared memory per launch shape (CPU work, run beside the tests; no timing).
    arch=$(python3 -c "import torch; p = torch.cuda.get_device_capability(); print(p[0] * 10 + p[1])")
    (env -u TRITON_INTERPRET timeout 120 python3 -m bench.kernel_resources --arch "$arch" \
        --json "$OUT/kernel_resources.json" >"$OUT/kernel_resources.log" 2>&1) &
    resources=$!
fi
if part tests; then
    # Tests check results, not speed: the fixed launch shape spares a timing run per shape.
    LATESTORE_KERNEL_AUTOTUNE=0 timed tests timeout "${GPU_TEST_TIMEOUT:-150}" python3 -m pytest \
        -q -p no:cacheprovider tests/index tests/store/test_gpu_store.py \
        >"$OUT/pytest.log" 2>&1 || status=1
    tail -25 "$OUT/pytest.log"
fi
if part kernels; then
    timed kernels timeout "${GPU_BENCH_TIMEOUT:-150}" python3 -m bench.gpu --out "$OUT" \
        ${GPU_BENCH_ARGS:-} >"$OUT/bench.log" 2>&1 || status=1
    cut -c1-400 "$OUT/bench.log" | tail -20
fi
if part encoders; then
    # Issue 15: pages/s of three real-size random-weight models, latestore against
    # colpali-engine (bench/gpu_encoders.py); about 2 minutes on an H100.
    timed encoders timeout "${GPU_ENCODERS_TIMEOUT:-50}" python3 -m bench.gpu_encoders \
        --out "$OUT" ${GPU_ENCODERS_ARGS:-} >"$OUT/encoders.log" 2>&1 || status=1
    grep -v 'Writing\|Loading' "$OUT/encoders.log" | cut -c1-400 | tail -12
fi
if [[ -n "${resources:-}" ]]; then
    wait "$resources" || echo "kernel_resources: failed, see kernel_resources.log" >>"$OUT/parts.txt"
fi
cat "$OUT/parts.txt"
exit $status
