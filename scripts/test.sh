#!/usr/bin/env bash
# The whole test suite: unit, property, crash and mounted tests, then the peer tools.
# Needs root, /dev/fuse and the packages .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -e /dev/fuse ] || { echo "FAIL: /dev/fuse is missing: the mount tests cannot run" >&2; exit 1; }
# Mesa warns on every device open without it; harmless, but noisy.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
cargo build --release --workspace
# The kernel tests compare every WGSL kernel with its CPU twin: they need a Vulkan, Metal
# or DX12 device (lavapipe will do) and fail without one; say so plainly first.
if [ "${GPUFS_GPU_TESTS:-}" != skip ]; then
  ./target/release/gpufs compute --compute gpu || {
    echo "FAIL: no GPU adapter for the kernel tests (apt-get install mesa-vulkan-drivers)" >&2; exit 1; }
fi
cargo test --release --workspace
scripts/pjdfstest.sh
scripts/fsx.sh
scripts/real-programs.sh
# gpufs search against find on a mounted tree while another process keeps changing it
# (CI size; the 1,000,000-file run is in docs/BENCHMARKS.md).
python3 scripts/search-equivalence.py --files "${EQUIV_FILES:-20000}" --rounds "${EQUIV_ROUNDS:-3}" --settle 1
echo "all tests passed"
