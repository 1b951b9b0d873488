#!/usr/bin/env python3
"""Deduplication, gpufs side by side with btrfs + duperemove, in one run.

  second copy   a --mib MiB file of random bytes written twice with `dd conv=fsync`
                into a gpufs made with `--dedup`: df growth of the second copy
  cost          the same random file written into a `dedup on` and a `dedup off`
                directory of one gpufs, interleaved, REPS times: medians and ratio
  offline dup   a 256 MiB random file and a byte copy of it on a gpufs without dedup,
                then `gpufs dedup`: the share of the copy's space given back
  tree          files made of 64 KiB chunks drawn from a pool (duplicates at record
                granularity) written to gpufs and to btrfs (`-m single`); then
                `gpufs dedup` and `duperemove -dr -b 64k --dedupe-options=partial`: df
                given back by each (every chunk is fsync'd on its own, so btrfs keeps
                it as an extent of its own, which duperemove can share whole)
  ram           --records unique records (4 KiB records, random bytes) written to a
                `--dedup` gpufs: the dedup table's bytes per entry (`gpufs stats`), and
                the daemon's RSS growth per record against the same writes without dedup

Needs root, /dev/fuse, btrfs-progs, duperemove and a release build.

    python3 bench/dedup.py [--reps 3] [--mib 512] [--records 1000000] [--json out.json]
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPUFS = os.environ.get("GPUFS_BIN") or os.path.join(ROOT, "target/release/gpufs")
MIB = 1 << 20
CHUNK = 64 << 10

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import daemon_rss_kib, is_mounted, sh  # noqa: E402
from space import used_bytes  # noqa: E402


def gpufs_mount(work, name, size="16G", *mkfs):
    img = os.path.join(work, name + ".img")
    mp = os.path.join(work, name)
    os.makedirs(mp, exist_ok=True)
    sh(GPUFS, "mkfs", img, "--size", size, *mkfs)
    sh(GPUFS, "mount", img, mp)
    return mp


def gpufs_unmount(mp):
    if is_mounted(mp):
        sh(GPUFS, "unmount", mp)


def dd(src, dst):
    t = time.perf_counter()
    sh("dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync", "status=none")
    return time.perf_counter() - t


def second_copy(work, src, mib):
    mp = gpufs_mount(work, "inline", "8G", "--dedup")
    try:
        dd(src, os.path.join(mp, "one"))
        before = used_bytes(mp)
        dd(src, os.path.join(mp, "two"))
        grown = used_bytes(mp) - before
        stats = json.loads(sh(GPUFS, "stats", "--json", mp))["dedup"]
    finally:
        gpufs_unmount(mp)
    return {"mib": mib, "second_copy_grew_bytes": grown,
            "grew_share": grown / (mib * MIB), "hits": stats["hits"]}


def cost(work, src, reps):
    mp = gpufs_mount(work, "cost", "8G")
    times = {"on": [], "off": []}
    try:
        for d in times:
            os.makedirs(os.path.join(mp, d))
            sh(GPUFS, "property", "set", os.path.join(mp, d), "dedup", d)
        for i in range(reps):
            for d in times:
                dst = os.path.join(mp, d, f"f{i}")
                times[d].append(dd(src, dst))
                # Unique data each round: the next write must not find this one.
                os.unlink(dst)
                used_bytes(mp)
    finally:
        gpufs_unmount(mp)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    return {"on_s": on, "off_s": off, "ratio": on / off, "all": times}


def offline_dup(work):
    mp = gpufs_mount(work, "offline", "4G")
    try:
        a = os.path.join(mp, "a")
        sh("dd", "if=/dev/urandom", f"of={a}", "bs=1M", "count=256", "conv=fsync",
           "status=none")
        dd(a, os.path.join(mp, "b"))
        before = used_bytes(mp)
        t = time.perf_counter()
        report = json.loads(sh(GPUFS, "dedup", "--json", mp))
        took = time.perf_counter() - t
        back = before - used_bytes(mp)
    finally:
        gpufs_unmount(mp)
    return {"reclaimed_bytes": back, "share_of_copy": back / (256 * MIB), "seconds": took,
            "report": report}


def make_tree(root, seed):
    rng = random.Random(seed)
    pool = [os.urandom(CHUNK) for _ in range(400)]
    for d in range(10):
        os.makedirs(os.path.join(root, f"d{d}"), exist_ok=True)
        for f in range(20):
            chunks = [pool[rng.randrange(len(pool))] if rng.random() < 0.85
                      else os.urandom(CHUNK) for _ in range(16)]
            # Each chunk made durable on its own, so that btrfs stores it as an extent
            # of its own: the case duperemove handles best (whole extents shared).
            with open(os.path.join(root, f"d{d}", f"f{f}"), "wb") as out:
                for c in chunks:
                    out.write(c)
                    out.flush()
                    os.fsync(out.fileno())


def tree(work):
    out = {}
    mp = gpufs_mount(work, "tree", "4G")
    try:
        make_tree(os.path.join(mp, "t"), 7)
        before = used_bytes(mp)
        sh(GPUFS, "dedup", mp)
        out["gpufs_reclaimed_bytes"] = before - used_bytes(mp)
    finally:
        gpufs_unmount(mp)
    img = os.path.join(work, "btrfs.img")
    bmp = os.path.join(work, "btrfs")
    os.makedirs(bmp, exist_ok=True)
    sh("truncate", "-s", "4G", img)
    sh("mkfs.btrfs", "-q", "-f", "-m", "single", "-d", "single", img)
    sh("mount", "-o", "loop", img, bmp)
    try:
        make_tree(os.path.join(bmp, "t"), 7)
        before = used_bytes(bmp)
        sh("duperemove", "-dr", "-b", "64k", "--dedupe-options=partial", "-q", bmp)
        os.sync()
        sh("btrfs", "filesystem", "sync", bmp)
        out["btrfs_duperemove_reclaimed_bytes"] = before - used_bytes(bmp)
    finally:
        sh("umount", bmp)
    out["tree_bytes"] = 10 * 20 * 16 * CHUNK
    out["ratio"] = out["gpufs_reclaimed_bytes"] / max(1, out["btrfs_duperemove_reclaimed_bytes"])
    return out


def ram(work, records):
    out = {"records": records}
    for mode in ("off", "on"):
        mkfs = ["--record-size", "4K"] + (["--dedup"] if mode == "on" else [])
        mp = gpufs_mount(work, "ram-" + mode, "16G", *mkfs)
        try:
            before = daemon_rss_kib(mp)
            sh("dd", "if=/dev/urandom", f"of={os.path.join(mp, 'r')}", "bs=1M",
               f"count={records * 4096 // MIB}", "conv=fsync", "status=none")
            time.sleep(6)
            out[f"rss_growth_{mode}_kib"] = daemon_rss_kib(mp) - before
            if mode == "on":
                d = json.loads(sh(GPUFS, "stats", "--json", mp))["dedup"]
                out["table_entries"] = d["table_entries"]
                out["table_bytes"] = d["table_bytes"]
                out["table_bytes_per_entry"] = d["table_bytes_per_entry"]
        finally:
            gpufs_unmount(mp)
    out["rss_bytes_per_record_for_dedup"] = (
        (out["rss_growth_on_kib"] - out["rss_growth_off_kib"]) * 1024 / records)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--only", help="comma-separated: second,cost,offline,tree,ram")
    ap.add_argument("--json")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    work = tempfile.mkdtemp(prefix="gpufs-dedup-", dir="/var/tmp")
    src = os.path.join(work, "random.bin")
    sh("dd", "if=/dev/urandom", f"of={src}", "bs=1M", f"count={args.mib}", "status=none")
    res = {}
    try:
        for name, run in [("second", lambda: second_copy(work, src, args.mib)),
                          ("cost", lambda: cost(work, src, args.reps)),
                          ("offline", lambda: offline_dup(work)),
                          ("tree", lambda: tree(work)),
                          ("ram", lambda: ram(work, args.records))]:
            if only and name not in only:
                continue
            res[name] = run()
            print(name, json.dumps(res[name]), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
    finally:
        sh("rm", "-rf", work)


if __name__ == "__main__":
    main()
