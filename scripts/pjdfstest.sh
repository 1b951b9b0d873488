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
