#!/usr/bin/env bash
# The CUDA tests, then the GPU throughput figures, in one device call of the session's budget
# (about 9 minutes): tests/test_cuda.py (compiled step with CUDA graphs against eager, packed
# against one at a time, bfloat16 and float16 autocast, a killed and resumed run, pruning on
# the GPU against the CPU), then packed against one-at-a-time training for K = 1..16, the
# compiled update and masked step at batch 128, and the PX ResNet-20 grid's projected full
# time with packing off and on (in bfloat16: float16 runs are not packed).
#
# Run from the repository root on the GPU machine:   bash bench/perf/gpu_check.sh OUT
# It needs, carried as git-ignored folders: .data/ with ../shared/data's cifar10-jpeg.npz and
# cifar10_from_jpeg.py, and .whl/ with the wheels the machine lacks (constriction); see
# results/perf/README.md, "GPU check". Each step has its own time limit, so one that overruns
# costs only itself; OUT gets gpu.txt (hardware, versions, each step's exit status) and one
# folder per step with its log (and the throughput steps' JSON files).
#
# BENCH_CHECK_SMALL=1 runs the same steps on the CPU at toy sizes, to check the script here;
# BENCH_CHECK_DATA names another folder holding the npz and its script (default .data).
set -uo pipefail
out=${1:?usage: bash bench/perf/gpu_check.sh OUT}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [[ -z ${BENCH_CHECK_SMALL:-} ]] && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/bench-site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/bench-site${PYTHONPATH:+:$PYTHONPATH}
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
data=$scratch/cifar  # outside OUT, whose files all come back
if [[ -n ${BENCH_CHECK_SMALL:-} ]]; then
    device=cpu; subset=(--train 600 --test 200)
    packing=(--pack-sizes 1,2 --train-images 250 --repeats 1 --warmup 1)
    compiled=(--train-images 250 --repeats 1 --warmup 1)
    grid=(--budget-scale 0.0125 --grid-images 200,100 --grid-width 0.25 --grid-seeds 0
          --grid-densities 0.5 --grid-methods random,px-2024)
    limits=(120 300 600 600)
else
    device=cuda; subset=()
    packing=(--pack-sizes 1,2,4,8,16 --train-images 10000 --repeats 2 --warmup 1)
    compiled=(--train-images 10000 --repeats 3 --warmup 1)
    grid=(--budget-scale 0.0125 --grid-images 10000,2000 --grid-seeds 0)
    limits=(170 100 90 150)
fi
source=${BENCH_CHECK_DATA:-.data}
python3 "$source/cifar10_from_jpeg.py" "$data" "${subset[@]}" >/dev/null || exit 1
# the tests' 2000/1000 subset (tests/conftest.py reads $BENCH_TEST_DATA)
python3 "$source/cifar10_from_jpeg.py" "$scratch/test-cifar" --train 2000 --test 1000 \
    >/dev/null || exit 1

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv 2>&1
    python3 -c 'import torch; print("torch", torch.__version__, "cudnn",
        torch.backends.cudnn.version(), "cuda", torch.cuda.is_available())'
    echo "host cores: $(nproc)"
} >"$out/gpu.txt"

run_step() {  # run_step NAME LIMIT COMMAND...: COMMAND's log in OUT/NAME, its status in gpu.txt
    local name=$1 limit=$2
    shift 2
    mkdir -p "$out/$name"
    timeout "$limit" "$@" >"$out/$name/log.txt" 2>&1
    local status=$?
    echo "$name: exit $status after ${SECONDS}s of the script (limit ${limit}s)" \
        | tee -a "$out/gpu.txt"
}

step() {  # step NAME LIMIT ARGS...: one bench perf command, its log and JSON in OUT/NAME
    local name=$1 limit=$2
    shift 2
    run_step "$name" "$limit" python3 -m bench perf --device "$device" --data-dir "$data" \
        --out "$out/$name" "$@"
}

# The CUDA tests (collected and skipped without CUDA, as here with BENCH_CHECK_SMALL).
BENCH_TEST_DATA=$scratch/test-cifar run_step tests "${limits[0]}" python3 -m pytest -q -ra \
    -p no:cacheprovider -m cuda tests/test_cuda.py
step packing "${limits[1]}" --sections packing --batch 128 "${packing[@]}"
step compiled "${limits[2]}" --compile --sections update,masked --batch 128 "${compiled[@]}"
step grid "${limits[3]}" --sections grid --grid px-cifar10-resnet20 --pack 1,8 "${grid[@]}"
