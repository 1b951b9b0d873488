#!/usr/bin/env bash
# Data integrity: fsx on a gpufs mount, one long run (FSX_OPS), then FSX_ROUNDS rounds
# of FSX_ROUND_OPS, each followed by an unmount, a remount and a byte comparison of the
# file against a copy taken before the unmount.
source "$(dirname "$0")/lib.sh"
need_binary
cargo_tool fsx
OPS=${FSX_OPS:-100000}
ROUNDS=${FSX_ROUNDS:-5}
ROUND_OPS=${FSX_ROUND_OPS:-4000}
scratch
"$GPUFS" mkfs "$SCRATCH/img" --size 2G >/dev/null
gpufs_mount "$SCRATCH/img" "$SCRATCH/mnt"
if [ "$OPS" -gt 0 ]; then
    start=$(date +%s)
    fsx -f "$ROOT/scripts/fsx.toml" -N "$OPS" -S "${FSX_SEED:-1}" "$SCRATCH/mnt/long" >"$SCRATCH/fsx.log" 2>&1 \
        || { tail -40 "$SCRATCH/fsx.log"; die "fsx found a miscompare"; }
    echo "fsx: $OPS operations, no miscompare ($(( $(date +%s) - start )) s)"
fi
start=$(date +%s)
for r in $(seq 1 "$ROUNDS"); do
    fsx -f "$ROOT/scripts/fsx.toml" -N "$ROUND_OPS" -S "$((1000 + r))" "$SCRATCH/mnt/round$r" >"$SCRATCH/fsx-$r.log" 2>&1 \
        || { tail -40 "$SCRATCH/fsx-$r.log"; die "fsx round $r found a miscompare"; }
    cp "$SCRATCH/mnt/round$r" "$SCRATCH/expect$r"
    gpufs_unmount "$SCRATCH/mnt"
    fsck_clean "$SCRATCH/img" >/dev/null
    gpufs_mount "$SCRATCH/img" "$SCRATCH/mnt"
    for k in $(seq 1 "$r"); do
        cmp "$SCRATCH/mnt/round$k" "$SCRATCH/expect$k" || die "round$k differs after remount $r"
    done
done
echo "fsx: $ROUNDS rounds of $ROUND_OPS operations with a remount between rounds, all files intact ($(( $(date +%s) - start )) s)"
gpufs_unmount "$SCRATCH/mnt"
fsck_clean "$SCRATCH/img"
# The same long run with the kernel's write-back cache (--kernel-writeback), then a
# remount and a comparison.
KW_OPS=${FSX_KERNEL_WRITEBACK_OPS:-30000}
if [ "$KW_OPS" -gt 0 ]; then
    gpufs_mount "$SCRATCH/img" "$SCRATCH/mnt" --kernel-writeback
    start=$(date +%s)
    fsx -f "$ROOT/scripts/fsx.toml" -N "$KW_OPS" -S "${FSX_SEED:-1}" "$SCRATCH/mnt/kw" >"$SCRATCH/fsx-kw.log" 2>&1 \
        || { tail -40 "$SCRATCH/fsx-kw.log"; die "fsx with --kernel-writeback found a miscompare"; }
    cp "$SCRATCH/mnt/kw" "$SCRATCH/expect-kw"
    gpufs_unmount "$SCRATCH/mnt"
    fsck_clean "$SCRATCH/img" >/dev/null
    gpufs_mount "$SCRATCH/img" "$SCRATCH/mnt"
    cmp "$SCRATCH/mnt/kw" "$SCRATCH/expect-kw" || die "kw differs after remount"
    gpufs_unmount "$SCRATCH/mnt"
    echo "fsx --kernel-writeback: $KW_OPS operations, no miscompare, intact after remount ($(( $(date +%s) - start )) s)"
fi
