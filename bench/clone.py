#!/usr/bin/env python3
"""Copies that share records: `cp` of a large file, gpufs side by side with btrfs (whose
`cp` clones with FICLONE) and ext4 (which copies bytes), in one run.

For each target a fresh loop image gets a --mib MiB file of random bytes (written with
dd, then synced). Then, REPS times, interleaved across targets:

  cp      `cp SRC DST` then fsync(DST): on gpufs the kernel's copy_file_range reaches
          the daemon, which shares whole records; on btrfs cp clones; on ext4 it copies
  bytes   the same file copied as bytes (`dd bs=1M conv=fsync`): what a copy costs
          without sharing
and the df delta (statvfs used bytes) of each cp. Reported: medians, cp/bytes per
target (the issue's target: gpufs cp <= 5% of its byte copy, df growth < 1%).

Needs root, /dev/fuse, btrfs-progs, e2fsprogs and a release build.

    python3 bench/clone.py [--reps 5] [--mib 1024] [--json out.json]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPUFS = os.environ.get("GPUFS_BIN") or os.path.join(ROOT, "target/release/gpufs")
IMAGE_SIZE = "8G"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import is_mounted, sh  # noqa: E402
from space import used_bytes  # noqa: E402

KINDS = ["gpufs", "btrfs", "ext4"]


def mount(kind, work):
    img = os.path.join(work, kind + ".img")
    mp = os.path.join(work, kind)
    os.makedirs(mp, exist_ok=True)
    if kind == "gpufs":
        sh(GPUFS, "mkfs", img, "--size", IMAGE_SIZE)
        sh(GPUFS, "mount", img, mp)
    else:
        sh("truncate", "-s", IMAGE_SIZE, img)
        if kind == "btrfs":
            sh("mkfs.btrfs", "-q", "-f", "-m", "single", "-d", "single", img)
        else:
            sh("mkfs.ext4", "-q", "-F", img)
        sh("mount", "-o", "loop", img, mp)
    return mp


def unmount(kind, mp):
    if is_mounted(mp):
        if kind == "gpufs":
            sh(GPUFS, "unmount", mp)
        else:
            sh("umount", mp)


def timed(*cmd):
    t = time.perf_counter()
    sh(*cmd)
    return time.perf_counter() - t


def fsync(path):
    # `sync -f` is syncfs(2), which does not reach a FUSE daemon; fsync(2) does.
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def one_round(mp, src, i):
    dst = os.path.join(mp, f"cp{i}")
    before = used_bytes(mp)
    t = time.perf_counter()
    sh("cp", src, dst)
    fsync(dst)
    cp = time.perf_counter() - t
    grown = used_bytes(mp) - before
    raw = os.path.join(mp, f"bytes{i}")
    t = time.perf_counter()
    sh("dd", f"if={src}", f"of={raw}", "bs=1M", "conv=fsync", "status=none")
    byte_copy = time.perf_counter() - t
    for p in (dst, raw):
        os.unlink(p)
    return cp, byte_copy, grown


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--json")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gpufs-clone-", dir="/var/tmp")
    mps = {}
    try:
        for k in KINDS:
            mps[k] = mount(k, work)
            src = os.path.join(mps[k], "src")
            sh("dd", "if=/dev/urandom", f"of={src}", "bs=1M", f"count={args.mib}",
               "conv=fsync", "status=none")
        rows = {k: [] for k in KINDS}
        for i in range(args.reps):
            for k in KINDS:
                rows[k].append(one_round(mps[k], os.path.join(mps[k], "src"), i))
        out = {"mib": args.mib, "reps": args.reps, "targets": {}}
        print(f"cp of a {args.mib} MiB file, medians of {args.reps}:")
        print(f"{'target':8} {'cp s':>8} {'bytes s':>8} {'cp/bytes':>9} {'df grown MiB':>13}")
        for k in KINDS:
            cp = statistics.median(r[0] for r in rows[k])
            bc = statistics.median(r[1] for r in rows[k])
            grown = statistics.median(r[2] for r in rows[k]) / (1 << 20)
            out["targets"][k] = {"cp_s": cp, "bytes_s": bc, "ratio": cp / bc,
                                 "df_grown_mib": grown}
            print(f"{k:8} {cp:8.3f} {bc:8.3f} {cp / bc:9.3f} {grown:13.1f}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=2)
    finally:
        for k, mp in mps.items():
            unmount(k, mp)
        sh("rm", "-rf", work)


if __name__ == "__main__":
    main()
