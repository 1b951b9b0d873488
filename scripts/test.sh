#!/usr/bin/env bash
# The whole test suite: unit, property, crash and mounted tests, then the peer tools.
# Needs root, /dev/fuse and the packages .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -e /dev/fuse ] || { echo "FAIL: /dev/fuse is missing: the mount tests cannot run" >&2; exit 1; }
cargo build --release --workspace
cargo test --release --workspace
scripts/pjdfstest.sh
scripts/fsx.sh
scripts/real-programs.sh
echo "all tests passed"
