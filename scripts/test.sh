#!/usr/bin/env bash
# The whole test suite: unit, property, crash and mounted tests, then the peer tools.
# Needs root, /dev/fuse and the packages .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -e /dev/fuse ] || { echo "FAIL: /dev/fuse is missing: the mount tests cannot run" >&2; exit 1; }
# Mesa warns on every device open without it; harmless, but noisy.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# The habits that hold the line: formatting and every lint, warnings as errors.
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo build --release --workspace
# The kernel tests compare every WGSL kernel with its CPU twin: they need a Vulkan, Metal
# or DX12 device (lavapipe will do) and fail without one; say so plainly first.
if [ "${GPUFS_GPU_TESTS:-}" != skip ]; then
  ./target/release/gpufs compute --compute gpu || {
    echo "FAIL: no GPU adapter for the kernel tests (apt-get install mesa-vulkan-drivers)" >&2; exit 1; }
fi
cargo test --release --workspace
# The GPU is a cargo feature: the core links no wgpu without it, and the CPU twins alone
# pass every test that needs no adapter.
if cargo tree -p gpufs-core -e normal --no-default-features | grep -q wgpu; then
  echo "FAIL: gpufs-core without default features still depends on wgpu" >&2; exit 1
fi
cargo clippy --release -p gpufs-compute -p gpufs-core --no-default-features --all-targets -- -D warnings
cargo test --release -p gpufs-compute --no-default-features
scripts/pjdfstest.sh
scripts/fsx.sh
scripts/real-programs.sh
# gpufs search against find on a mounted tree while another process keeps changing it
# (CI size; the 1,000,000-file run is in docs/BENCHMARKS.md).
python3 scripts/search-equivalence.py --files "${EQUIV_FILES:-20000}" --rounds "${EQUIV_ROUNDS:-3}" --settle 1
echo "all tests passed"
