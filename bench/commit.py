#!/usr/bin/env python3
"""Metadata at scale: what one small change costs on disk, how long a mount takes, and
how long a snapshot takes, gpufs (paged checkpoints in segments, format v7) side by side
with btrfs (`subvolume snapshot` of the subvolume holding the files), in one run.

For each count in --files a fresh image of each kind gets that many empty files
(`gpufs-bench fill`: 1,000 per directory), is unmounted, and then:

  mount     seconds of the mount command until the filesystem serves (gpufs: the
            daemon has loaded its checkpoint; btrfs: mount -o loop), median of REPS
            remounts after a clean unmount, caches dropped before each
  commit    bytes of the image that change when one file is touched and the change is
            made durable (touch, then fsync of the file: gpufs commits its journal,
            btrfs its transaction), counted as changed 4 KiB blocks
  unmount   bytes changed by the unmount after that touch (gpufs: its checkpoint,
            written page by page; btrfs: its last transaction)
  blob      (gpufs) bytes of the checkpoint blob: a version 4 build wrote it whole,
            twice, at every checkpoint; a version 5 checkpoint writes the pages that
            changed
  snapshot  seconds of the snapshot command, median of REPS snapshots each after a
            touch and fsync of one file (gpufs: also the time inside the daemon);
            btrfs snapshots are read-only (`-r`), as gpufs's are, so they can be sent
  diff      seconds to list what changed between the first and the last snapshot
            (gpufs diff; btrfs: send --no-data -p FIRST LAST | receive --dump, its
            way of listing the changes), median of REPS
  search    seconds to find one name in the first snapshot (gpufs search --snapshot;
            btrfs: find in the snapshot's directory, caches warm), median of REPS
  send      seconds and bytes of a full stream of the first snapshot and of an
            incremental one from the first to the last (gpufs send [--from];
            btrfs send [-p]), written to a file

Needs root, /dev/fuse, btrfs-progs and a release build (gpufs, gpufs-bench).

    python3 bench/commit.py [--files 1000,100000,1000000] [--reps 3] [--json out.json]
"""

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPUFS = os.environ.get("GPUFS_BIN") or os.path.join(ROOT, "target/release/gpufs")
BENCH = os.path.join(ROOT, "target/release/gpufs-bench")
BLOCK = 4096

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import drop_caches, is_mounted, sh  # noqa: E402

KINDS = ["gpufs", "btrfs"]


def image_size(files):
    # gpufs: two checkpoint copies of ~180 bytes a file, journal, room to spare;
    # btrfs: its metadata for that many files.
    return str(max(2, files * 3 // 1_000_000 + 1)) + "G"


def make(kind, img, size):
    if kind == "gpufs":
        sh(GPUFS, "mkfs", img, "--size", size)
    else:
        sh("truncate", "-s", size, img)
        sh("mkfs.btrfs", "-q", "-f", "-m", "single", "-d", "single", img)


def mount(kind, img, mp):
    t = time.perf_counter()
    if kind == "gpufs":
        sh(GPUFS, "mount", img, mp)
    else:
        sh("mount", "-o", "loop", img, mp)
    return time.perf_counter() - t


def unmount(kind, mp):
    if is_mounted(mp):
        sh(GPUFS, "unmount", mp) if kind == "gpufs" else sh("umount", mp)


def blocks(img):
    """The image's data regions (holes skipped) in 1 MiB chunks, by offset."""
    chunks = {}
    step = 1 << 20
    fd = os.open(img, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            pos = start - start % step
            while pos < end:
                chunks[pos] = os.pread(fd, step, pos)
                pos += step
            off = end
    finally:
        os.close(fd)
    return chunks


def changed_bytes(before, after):
    """Bytes of the 4 KiB blocks that differ between two images of one size."""
    n = 0
    for off in set(before) | set(after):
        a, b = before.get(off, b""), after.get(off, b"")
        if a == b:
            continue
        for i in range(0, max(len(a), len(b)), BLOCK):
            x, y = a[i:i + BLOCK], b[i:i + BLOCK]
            if x.strip(b"\0") == b"" and y.strip(b"\0") == b"":
                continue
            if x != y:
                n += BLOCK
    return n


def gpufs_blob_len(img):
    """Bytes of the current checkpoint blob (superblock -> root -> [page index ->] page
    table)."""
    with open(img, "rb") as f:
        slots = []
        for slot in (0, 1):
            f.seek(slot * BLOCK)
            sb = f.read(256)
            if sb[:8] == b"GPUFS\0SB":
                slots.append((struct.unpack_from("<Q", sb, 32)[0], sb))
        sb = max(slots)[1]
        root = struct.unpack_from("<Q", sb, 88)[0]
        f.seek(root * BLOCK)
        r = f.read(BLOCK)
        version, count = struct.unpack_from("<II", r, 8)
        table_len = struct.unpack_from("<Q", r, 24)[0]
        if version < 5:
            return table_len
        start = struct.unpack_from("<Q", r, 40)[0]
        f.seek(start * BLOCK)
        head = f.read(BLOCK)
        if head[:8] == b"GPUFSPGI":
            # Version 8: a page index; the table's header is its first page's start.
            f.seek(struct.unpack_from("<Q", head, 32)[0] * BLOCK)
            head = f.read(32)
        return struct.unpack_from("<Q", head, 16)[0]


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def measure(kind, files, reps, work):
    img = os.path.join(work, kind + ".img")
    mp = os.path.join(work, kind)
    os.makedirs(mp, exist_ok=True)
    make(kind, img, image_size(files))
    mount(kind, img, mp)
    # btrfs snapshots a subvolume: the files go in one.
    top = mp
    if kind == "btrfs":
        top = os.path.join(mp, "vol")
        sh("btrfs", "-q", "subvolume", "create", top)
    t = time.perf_counter()
    sh(BENCH, "fill", top, "--files", str(files))
    fill_s = time.perf_counter() - t
    unmount(kind, mp)
    mounts = []
    for _ in range(reps):
        drop_caches()
        mounts.append(mount(kind, img, mp))
        unmount(kind, mp)
    out = {"fill_s": round(fill_s, 2), "mount_s": round(statistics.median(mounts), 3)}
    if kind == "gpufs":
        out["blob_bytes"] = gpufs_blob_len(img)
    mount(kind, img, mp)
    # The first fsync after a mount may carry the mount's own bookkeeping: settle it.
    fill = os.path.join(top, "fill")
    first_dir = os.path.join(fill, sorted(os.listdir(fill))[0])
    target = os.path.join(first_dir, sorted(os.listdir(first_dir))[0])
    os.utime(target)
    fsync(target)
    time.sleep(1)
    before = blocks(img)
    os.utime(target)
    fsync(target)
    time.sleep(1)
    after = blocks(img)
    out["commit_bytes"] = changed_bytes(before, after)
    unmount(kind, mp)
    out["unmount_bytes"] = changed_bytes(after, blocks(img))
    mount(kind, img, mp)
    snaps, daemon = [], []
    for i in range(reps):
        os.utime(target)
        fsync(target)
        t = time.perf_counter()
        if kind == "gpufs":
            r = subprocess.run([GPUFS, "snapshot", "create", mp, f"s{i}", "--json"],
                               check=True, capture_output=True, text=True)
            snaps.append(time.perf_counter() - t)
            daemon.append(json.loads(r.stdout)["daemon_us"] / 1e6)
        else:
            sh("btrfs", "-q", "subvolume", "snapshot", "-r", top, os.path.join(mp, f"s{i}"))
            snaps.append(time.perf_counter() - t)
    out["snapshot_s"] = round(statistics.median(snaps), 4)
    if daemon:
        out["snapshot_daemon_s"] = round(statistics.median(daemon), 4)
    out.update(across_time(kind, mp, reps, work, os.path.basename(target)))
    unmount(kind, mp)
    os.unlink(img)
    return out


def timed(cmd, out=subprocess.DEVNULL):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def across_time(kind, mp, reps, work, name):
    """diff, search in a snapshot and send, between snapshots s0 and s{reps-1}."""
    first, last = "s0", f"s{reps - 1}"
    stream = os.path.join(work, "stream")
    diffs, searches = [], []
    for _ in range(reps):
        if kind == "gpufs":
            diffs.append(timed([GPUFS, "diff", mp, first, last]))
            searches.append(timed([GPUFS, "search", mp, name, "--snapshot", first]))
        else:
            a, b = os.path.join(mp, first), os.path.join(mp, last)
            t = time.perf_counter()
            send = subprocess.Popen(["btrfs", "send", "-q", "--no-data", "-p", a, b],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            subprocess.run(["btrfs", "receive", "--dump"], stdin=send.stdout, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            send.wait()
            diffs.append(time.perf_counter() - t)
            searches.append(timed(["find", a, "-name", name]))
    out = {"diff_s": round(statistics.median(diffs), 4),
           "search_snapshot_s": round(statistics.median(searches), 4)}
    for what, args in (("full", None), ("incremental", first)):
        with open(stream, "wb") as f:
            if kind == "gpufs":
                cmd = [GPUFS, "send", mp, first if args is None else last]
                if args is not None:
                    cmd += ["--from", args]
            else:
                snap = os.path.join(mp, first if args is None else last)
                cmd = ["btrfs", "send", "-q", snap]
                if args is not None:
                    cmd += ["-p", os.path.join(mp, args)]
            secs = timed(cmd, out=f)
        out[f"send_{what}_s"] = round(secs, 3)
        out[f"send_{what}_bytes"] = os.path.getsize(stream)
        os.unlink(stream)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", default="1000,100000,1000000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work:
        for files in [int(x) for x in args.files.split(",")]:
            for kind in KINDS:
                r = measure(kind, files, args.reps, work)
                results[f"{kind}/{files}"] = r
                print(json.dumps({"kind": kind, "files": files, **r}), flush=True)
    print()
    print("| files | fs | diff (ms) | search in a snapshot (ms) | full send (s, MiB) | "
          "incremental send (s, KiB) |")
    print("|---:|---|---:|---:|---:|---:|")
    for key, r in results.items():
        kind, files = key.split("/")
        print(
            f"| {int(files):,} | {kind} | {r['diff_s'] * 1e3:.1f} | "
            f"{r['search_snapshot_s'] * 1e3:.1f} | {r['send_full_s']}, "
            f"{r['send_full_bytes'] / 1048576:.1f} | {r['send_incremental_s']}, "
            f"{r['send_incremental_bytes'] / 1024:.1f} |"
        )
    print()
    print("| files | fs | fill (s) | mount (s) | touch+fsync writes | unmount writes | "
          "checkpoint blob | snapshot (ms) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for key, r in results.items():
        kind, files = key.split("/")
        blob = r.get("blob_bytes")
        snap = f"{r['snapshot_s'] * 1e3:.1f}"
        if "snapshot_daemon_s" in r:
            snap += f" ({r['snapshot_daemon_s'] * 1e3:.1f} in the daemon)"
        print(
            f"| {int(files):,} | {kind} | {r['fill_s']} | {r['mount_s']} | "
            f"{r['commit_bytes'] / 1024:.0f} KiB | {r['unmount_bytes'] / 1024:.0f} KiB | "
            f"{'' if blob is None else f'{blob / 1048576:.1f} MiB'} | {snap} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
