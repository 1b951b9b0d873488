#!/usr/bin/env bash
# POSIX conformance: pjdfstest on a fresh gpufs mount. Fails on any failed test or on
# fewer passes than docs/CONFORMANCE.md records (PJDFSTEST_MIN_PASS, default 382).
source "$(dirname "$0")/lib.sh"
need_binary
cargo_tool pjdfstest
scratch
"$GPUFS" mkfs "$SCRATCH/img" --size 4G >/dev/null
gpufs_mount "$SCRATCH/img" "$SCRATCH/mnt" --allow-other
out="$SCRATCH/pjdfstest.out"
(cd "$SCRATCH/mnt" && pjdfstest -c "$ROOT/scripts/pjdfstest.conf" -p "$SCRATCH/mnt") >"$out" 2>&1 || true
summary=$(grep '^Summary:' "$out" || true)
echo "pjdfstest on gpufs: $summary"
[ -n "$summary" ] || { tail -50 "$out"; die "pjdfstest did not finish"; }
failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$summary")
passed=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$summary")
if [ "$failed" != 0 ]; then
    grep -B1 -A3 FAILED "$out" | head -80
    die "pjdfstest: $failed failed"
fi
[ "$passed" -ge "${PJDFSTEST_MIN_PASS:-382}" ] || die "pjdfstest: only $passed passed"
gpufs_unmount "$SCRATCH/mnt"
fsck_clean "$SCRATCH/img"

# PJDFSTEST_PEERS=1: the same suite and configuration on ext4 (loop device) and tmpfs.
if [ "${PJDFSTEST_PEERS:-0}" = 1 ]; then
    truncate -s 4G "$SCRATCH/ext4.img"
    mkfs.ext4 -q -F "$SCRATCH/ext4.img"
    mkdir -p "$SCRATCH/ext4" "$SCRATCH/tmpfs"
    mount -o loop "$SCRATCH/ext4.img" "$SCRATCH/ext4"
    mount -t tmpfs tmpfs "$SCRATCH/tmpfs"
    for peer in ext4 tmpfs; do
        (cd "$SCRATCH/$peer" && pjdfstest -c "$ROOT/scripts/pjdfstest.conf" -p "$SCRATCH/$peer") \
            >"$SCRATCH/$peer.out" 2>&1 || true
        echo "pjdfstest on $peer: $(grep '^Summary:' "$SCRATCH/$peer.out")"
        umount "$SCRATCH/$peer"
    done
fi
