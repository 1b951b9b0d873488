# Shared helpers for the scripts that run peer tools against a real gpufs mount.
# Source it; it sets GPUFS to the release binary and defines mount helpers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GPUFS="$ROOT/target/release/gpufs"

die() { echo "FAIL: $*" >&2; exit 1; }

need_binary() {
    [ -x "$GPUFS" ] || (cd "$ROOT" && cargo build --release -p gpufs)
}

is_mounted() { grep -q " $1 fuse" /proc/self/mounts; }

# gpufs_mount IMAGE MOUNTPOINT [mount options...]: mounts and proves the mount exists,
# so nothing is ever written into the plain directory underneath.
gpufs_mount() {
    local img=$1 mp=$2; shift 2
    mkdir -p "$mp"
    "$GPUFS" mount "$@" "$img" "$mp" || die "cannot mount $img on $mp"
    is_mounted "$mp" || die "$mp is not a FUSE mount after gpufs mount"
}

gpufs_unmount() {
    "$GPUFS" unmount "$1" || die "unmount of $1 failed"
}

# fsck_clean IMAGE: fails unless fsck finds nothing at all.
fsck_clean() {
    "$GPUFS" fsck "$1" || die "fsck of $1 is not clean"
}

# A scratch directory removed on exit, unmounting what is left mounted in it.
scratch() {
    SCRATCH=$(mktemp -d /tmp/gpufs-run.XXXXXX)
    chmod 755 "$SCRATCH"  # the dummy users of pjdfstest must reach the mount
    trap 'for m in $(grep -o " $SCRATCH/[^ ]*" /proc/self/mounts); do umount -l "$m" 2>/dev/null || true; done; rm -rf "$SCRATCH"' EXIT
}

# Installs a crates.io tool unless present.
cargo_tool() {
    command -v "$1" >/dev/null 2>&1 || cargo install --locked "$1"
}
