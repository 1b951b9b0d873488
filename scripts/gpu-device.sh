#!/usr/bin/env bash
# Every GPU measurement of the project in one short run, for a machine with a hardware
# GPU (a lent one has minutes, not hours): the adapter and its calibrated crossovers,
# the metadata kernels (`gpufs-bench compute`), the data kernels (`gpufs-bench data`) and,
# where /dev/fuse works, live search through the GPU kernels against the CPU twins on a
# 1M-file mount (scripts/gpu-search.py). The one-thread CPU column is left out (its
# figures come from the 2-core runs in docs/BENCHMARKS.md); the all-core column runs on
# the same machine as the GPU, so the ratios are side by side.
#
#   GPUFS_BIN=path/to/gpufs BENCH_BIN=path/to/gpufs-bench OUT=dir bash scripts/gpu-device.sh
#
# Logs go to $OUT (default /tmp/gpufs-gpu). Each stage has its own time limit, so a slow
# stage cannot take the ones after it down.
set -u
BIN=${GPUFS_BIN:-target/release/gpufs}
BENCH_BIN=${BENCH_BIN:-target/release/gpufs-bench}
OUT=${OUT:-/tmp/gpufs-gpu}
mkdir -p "$OUT"
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -z "${VK_DRIVER_FILES:-}" ] && [ -e "$icd" ] && export VK_DRIVER_FILES=$icd
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
nproc; grep -m1 'model name' /proc/cpuinfo
stage() { # name seconds command...
    local name=$1 secs=$2
    shift 2
    echo "=== $name"
    local t=$SECONDS
    timeout "$secs" "$@" 2>&1 | tee "$OUT/$name.txt"
    echo "=== $name: exit ${PIPESTATUS[0]}, $((SECONDS - t)) s"
}
stage adapter 60 "$BIN" compute --compute gpu --calibrate
stage compute 200 "$BENCH_BIN" compute --sizes 1k,10k,100k,1M,10M --compute gpu --reps 5 --skip-one-thread
stage data 150 "$BENCH_BIN" data --bytes 1G --reps 3 --compute gpu --skip-one-thread
if [ -e /dev/fuse ]; then
    stage search 330 env GPUFS_BIN="$BIN" PYTHONUNBUFFERED=1 python3 scripts/gpu-search.py \
        --files "${SEARCH_FILES:-1000000}" --reps 3 --json "$OUT/search.json"
else
    echo "=== search: no /dev/fuse here, skipped"
fi
