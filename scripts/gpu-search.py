#!/usr/bin/env python3
"""Live search through the GPU kernels and through the CPU twins, on one tree, in one run.

Fills a fresh gpufs mount with the seeded tree of bench/search.py (default 1,000,000
files), then for each backend (default: gpu, then cpu; the image is unmounted and mounted
again with `--compute BACKEND` between them) runs every query kind of
scripts/search-equivalence.py through `gpufs search` end to end (a new CLI process per
query, median of --reps after one warm-up), in count mode and in paths mode (paths read
through a pipe and thrown away), and `gpufs du -s`. Every backend's path sets must be
identical to each other and to `find` on the same mount; the daemon's own per-kernel
figures (`gpufs stats --json`) are written beside the table.

  python3 scripts/gpu-search.py [--files N] [--reps R] [--backends gpu,cpu] [--json F]

`GPUFS_BIN` names the gpufs binary (default target/release/gpufs). Exits 1 on a
difference. Needs root (mount).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPUFS = os.environ.get("GPUFS_BIN", os.path.join(ROOT, "target", "release", "gpufs"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import search as bench  # noqa: E402  (the tree generator of the search benchmark)

equivalence = __import__("search-equivalence")


def run_paths(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode not in (0, 1):
        raise SystemExit("%s failed (%d): %s" % (" ".join(cmd), p.returncode,
                                                 p.stderr.decode(errors="replace")[:300]))
    return p.stdout


def median_ms(cmd, reps):
    times = []
    for _ in range(reps + 1):
        t = time.perf_counter()
        run_paths(cmd)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:]) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--per-dir", type=int, default=17)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--backends", default="gpu,cpu")
    ap.add_argument("--json")
    a = ap.parse_args()
    backends = [b for b in a.backends.split(",") if b]
    work = tempfile.mkdtemp(prefix="gpufs-gpu-search-", dir="/var/tmp")
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)
    img = os.path.join(work, "img")
    subprocess.run([GPUFS, "mkfs", img, "--size", "16G"], check=True, stdout=subprocess.DEVNULL)
    results = {"files": a.files, "backends": {}}
    sets = {}
    failed = False
    mounted = False
    try:
        for i, backend in enumerate(backends):
            subprocess.run([GPUFS, "mount", img, mnt, "--compute", backend], check=True)
            mounted = True
            if i == 0:
                dirs, files = bench.tree(42, a.files, a.per_dir)
                t = time.time()
                bench.populate(mnt, dirs, files)
                print("tree: %d files, %d dirs (%.0f s)" % (len(files), len(dirs),
                                                           time.time() - t), flush=True)
            qs, _ = equivalence.queries(mnt)
            rows = {}
            for name, ours, theirs in qs:
                base = [GPUFS, "search", mnt] + ours
                got = set(x for x in run_paths(base + ["-0"]).split(b"\0") if x)
                if i == 0:
                    want = set(x for x in run_paths(
                        ["find", mnt, "-mindepth", "1"] + theirs + ["-print0"]).split(b"\0") if x)
                    if got != want:
                        failed = True
                        print("%s, %s: gpufs %d, find %d; only gpufs %s; only find %s" % (
                            backend, name, len(got), len(want), sorted(got - want)[:3],
                            sorted(want - got)[:3]))
                    sets[name] = got
                elif got != sets[name]:
                    failed = True
                    print("%s, %s: %d paths, %s gave %d" % (backend, name, len(got),
                                                            backends[0], len(sets[name])))
                rows[name] = {
                    "results": len(got),
                    "count_ms": median_ms(base + ["--count"], a.reps),
                    "paths_ms": median_ms(base, a.reps),
                }
                print("%-4s %-24s count %7.2f ms  paths %7.2f ms  (%d results)" % (
                    backend, name, rows[name]["count_ms"], rows[name]["paths_ms"],
                    len(got)), flush=True)
            rows["du -s"] = {"ms": median_ms([GPUFS, "du", "-s", mnt], a.reps)}
            print("%-4s du -s %.2f ms" % (backend, rows["du -s"]["ms"]), flush=True)
            stats = subprocess.run([GPUFS, "stats", mnt, "--json"], stdout=subprocess.PIPE)
            try:
                rows["stats"] = json.loads(stats.stdout.decode() or "null")
            except ValueError:
                rows["stats"] = stats.stdout.decode(errors="replace")
            results["backends"][backend] = rows
            subprocess.run([GPUFS, "unmount", mnt], check=True)
            mounted = False
    finally:
        if mounted:
            subprocess.run([GPUFS, "unmount", mnt])
        shutil.rmtree(work, ignore_errors=True)
    if len(backends) > 1:
        first, rest = backends[0], backends[1:]
        for name in sets:
            for b in rest:
                r0 = results["backends"][first][name]
                r1 = results["backends"][b][name]
                print("%-24s %s/%s: count %.2fx, paths %.2fx" % (
                    name, b, first, r1["count_ms"] / r0["count_ms"],
                    r1["paths_ms"] / r0["paths_ms"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    if failed:
        sys.exit(1)
    print("identical results: every backend and find")


if __name__ == "__main__":
    main()
