#!/usr/bin/env bash
# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
#
# All GPU measurements of docs/benchmarks.md in one run of under 5 minutes (one H100/H200).
#
#   benchmarks/run_gpu_suite.sh prepare     # here, before lending a GPU machine: copy the pure-Python packages that
#                                           # the GPU image lacks (monai, segment-anything, nibabel, pytorch-ignite)
#                                           # into .gpu_site/ (git-ignored through .git/info/exclude, about 35 MB)
#   benchmarks/run_gpu_suite.sh OUT_DIR     # on the GPU machine, from the repository root: writes 7 JSON files and
#                                           # suite.log (8 files) into OUT_DIR
#
# With the session's device tool: run(command="bash benchmarks/run_gpu_suite.sh $OUT", carry=[".gpu_site"],
# timeout_s=420, kind="nvidia-h200"); on an H100 the batch-32 fp32 rows may report "out of memory".
# Every stage has its own time limit, so a slow stage cannot starve the ones after it (bench_forward writes its JSON
# after every configuration, the most important first). A plumbing check on CPU:
# DEVICE=cpu SUITE_EXTRA=--smoke benchmarks/run_gpu_suite.sh /tmp/suite
set -u

if [ "${1:-}" = "prepare" ]; then
    site=$(python -c "import monai, os; print(os.path.dirname(os.path.dirname(monai.__file__)))")
    rm -rf .gpu_site && mkdir -p .gpu_site
    for pkg in monai segment_anything nibabel ignite; do
        cp -r "$site/$pkg" .gpu_site/
    done
    find .gpu_site -name __pycache__ -type d -prune -exec rm -rf {} +
    rm -rf .gpu_site/nibabel/tests .gpu_site/nibabel/*/tests
    grep -qx '/.gpu_site/' .git/info/exclude 2>/dev/null || echo '/.gpu_site/' >> .git/info/exclude
    du -sh .gpu_site
    exit 0
fi

OUT=${1:?usage: benchmarks/run_gpu_suite.sh prepare | OUT_DIR}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/.gpu_site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOG="$OUT/suite.log"
SUITE_START=$(date +%s)

stage() {  # stage NAME LIMIT_S MODULE ARGS...
    local name=$1 limit=$2 module=$3
    shift 3
    local start
    start=$(date +%s)
    echo "== $name: $module $* (limit ${limit}s)" | tee -a "$LOG"
    timeout "$limit" "$PY" -m "benchmarks.$module" --device "${DEVICE:-cuda}" --out "$OUT/$name.json" "$@" ${SUITE_EXTRA:-} >>"$LOG" 2>&1
    echo "== $name: exit $?, $(($(date +%s) - start)) s (suite $(($(date +%s) - SUITE_START)) s)" | tee -a "$LOG"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c "import torch, monai, segment_anything; print('torch', torch.__version__, 'monai', monai.__version__)"
} >>"$LOG" 2>&1

# 1. automatic forward, ViT-B at 256/512/1024, C = 4 and 9, fp32 and bf16, against the reference loop (with the
#    largest logit difference and the label agreement of the two paths on the GPU)
stage forward_vit_b 75 bench_forward --sam-types vit_b --sizes 1024 512 256 --classes 9 4 --batches 1 8 16 32 \
    --dtypes bf16 fp32 --warmup 1 --repeats 3 --baseline-repeats 3
# ViT-H at 1024, bf16
stage forward_vit_h 40 bench_forward --sam-types vit_h --sizes 1024 --classes 4 9 --batches 1 8 16 --dtypes bf16 \
    --warmup 2 --repeats 3 --baseline-repeats 2
# segment-anything's own encoder attention instead of the default SDPA path (relative position as an additive mask)
stage forward_stock 30 bench_forward --sam-types vit_b vit_h --sizes 1024 --classes 9 --batches 1 8 32 --dtypes bf16 \
    --stock-encoder --no-baseline --warmup 2 --repeats 5
# 2. training step with LoRA, ViT-B at 1024, C = 9, bf16, against the per-class loop step
stage train 45 bench_train_step --sam-type vit_b --size 1024 --classes 9 --batches 1 4 8 --baseline-batch 1 \
    --warmup 1 --repeats 3
# 3. one interactive edit with a cached embedding (tiny@256, ViT-B@256, ViT-B@1024)
stage edit 25 bench_interactive_edit --warmup 2 --repeats 10
# 4. whole volumes NIfTI -> NIfTI (ACDC 256x216x10, Synapse 512x512x150), ViT-B at 1024, C = 9, bf16; the
#    slab-streamed path of the bundles' inference and the whole-volume path of evaluation
stage volume 50 bench_volume --sam-type vit_b --size 1024 --classes 9 --sw-batch-size 32 --slab-slices 64
# 5. FLOPs per slice and the achieved fraction of ~790 bf16 TFLOP/s (measured matmul peak of H100/H200)
stage flops 30 bench_flops --sam-types vit_b vit_h --sizes 1024 --classes 4 9 --batch 16 --dtype bf16 \
    --peak-tflops 790 --warmup 2 --repeats 3

echo "== suite done in $(($(date +%s) - SUITE_START)) s" | tee -a "$LOG"
