#!/usr/bin/env python3
"""Two builds of gpufs side by side in one run: `gpufs snapshot create` on one image of
FILES empty files (`gpufs-bench fill`), each round mounting a fresh copy of it with one
build then the other (caches dropped before each mount), and SNAPS snapshots per mount,
each after a touch and fsync of one file. Reports the median time inside the daemon (the
`daemon_us` the command prints) and of the whole command, per build. Both builds must
read the image: it is made by the older one (`--before`). Needs root (mount).

  python3 bench/snapshot_ab.py --before path/to/old/gpufs [--after target/release/gpufs]
                               [--files 1000000] [--rounds 3] [--snaps 8] [--json out.json]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import drop_caches, sh  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.environ.get("GPUFS_BENCH_BIN") or os.path.join(ROOT, "target/release/gpufs-bench")


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshots(gpufs, img, mp, snaps):
    """Mounts `img` with `gpufs`, takes `snaps` snapshots; (daemon_us, command_us) each."""
    drop_caches()
    sh(gpufs, "mount", img, mp)
    try:
        first_dir = os.path.join(mp, "fill", sorted(os.listdir(os.path.join(mp, "fill")))[0])
        target = os.path.join(first_dir, sorted(os.listdir(first_dir))[0])
        out = []
        for i in range(snaps):
            os.utime(target)
            fsync(target)
            r = json.loads(sh(gpufs, "snapshot", "create", mp, f"s{i}", "--json"))
            out.append((r["daemon_us"], r["command_us"]))
        return out
    finally:
        sh("umount", mp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default=os.path.join(ROOT, "target/release/gpufs"))
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--snaps", type=int, default=8)
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gpufs-snap-ab.", dir="/var/tmp")
    base, img, mp = (os.path.join(work, n) for n in ("base.img", "ab.img", "mnt"))
    os.makedirs(mp)
    try:
        size = str(max(2, a.files * 3 // 1_000_000 + 1)) + "G"
        sh(a.before, "mkfs", base, "--size", size)
        sh(a.before, "mount", base, mp)
        sh(BENCH, "fill", mp, "--files", str(a.files))
        sh("umount", mp)
        times = {"before": [], "after": []}
        for _ in range(a.rounds):
            for build in ("before", "after"):
                sh("cp", "--sparse=always", base, img)
                times[build] += snapshots(getattr(a, build), img, mp, a.snaps)
        result = {"files": a.files}
        for build, ts in times.items():
            result[build] = {
                "daemon_ms": round(statistics.median(t[0] for t in ts) / 1e3, 2),
                "command_ms": round(statistics.median(t[1] for t in ts) / 1e3, 2),
                "snapshots": len(ts),
            }
        print(json.dumps(result))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1)
    finally:
        subprocess.run(["umount", mp], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
