#!/usr/bin/env python3
"""Write and read paths side by side: gpufs (default mount, and --kernel-writeback)
against ext4 on a loop image, in one run, REPS times each; medians and ratios.

  fio 4K random write   psync, 1 GiB file, 8 s, end_fsync (IOPS)
  dd bs=4k / bs=1M      512 MiB of random bytes (a file read from the page cache; zeros
                        would be holes on gpufs), conv=fsync (MB/s; their ratio per target)
  seq write + fsync     fio 1M blocks, 1 GiB, end_fsync (MB/s)
  cold seq read         fio 1M blocks, 1 GiB, caches dropped (MB/s)
  scrub vs cat          on gpufs: `gpufs scrub` of a tree against `cat` of every file,
                        caches dropped before each (s)

Needs root, /dev/fuse, fio, e2fsprogs and a release build.

    python3 bench/io.py [--reps 3] [--json out.json]
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
GPUFS = os.environ.get("GPUFS_BIN") or os.path.join(ROOT, "target/release/gpufs")
TARGETS = ["ext4", "gpufs", "gpufs --kernel-writeback"]


# Shared with the side-by-side benchmark of bench/run.py.
from run import drop_caches, fio as fio_run, sh  # noqa: E402


def fio(d, name, rw, bs, size, runtime=None, end_fsync=False):
    r = fio_run(d, name, rw, bs, size, runtime, end_fsync)
    return r["MB/s"], r["IOPS"]


SOURCE = None


def dd(dst, bs, count):
    start = time.perf_counter()
    sh("dd", "if=" + SOURCE, "of=" + dst, "bs=" + bs, "count=%d" % count, "conv=fsync",
       "status=none")
    secs = time.perf_counter() - start
    os.unlink(dst)
    return 512 * (1 << 20) / secs / 1e6


class Target:
    def __init__(self, name, work):
        self.name = name
        slug = name.replace(" --", "-")
        self.img = os.path.join(work, slug + ".img")
        self.mp = os.path.join(work, slug)
        os.makedirs(self.mp, exist_ok=True)

    def mount(self):
        if self.name == "ext4":
            sh("truncate", "-s", "8G", self.img)
            sh("mkfs.ext4", "-q", "-F", self.img)
            sh("mount", "-o", "loop", self.img, self.mp)
        else:
            sh(GPUFS, "mkfs", self.img, "--size", "8G", "--force")
            extra = ["--kernel-writeback"] if "kernel" in self.name else []
            sh(GPUFS, "mount", *extra, self.img, self.mp)

    def unmount(self):
        if self.name == "ext4":
            sh("umount", self.mp)
        else:
            sh(GPUFS, "unmount", self.mp)
        os.unlink(self.img)


def run(t, reps, r):
    add = lambda k, v: r.setdefault(k, []).append(v)
    for _ in range(reps):
        add("4K rand write IOPS", fio(t.mp, "rw", "randwrite", "4k", "1G", 8, True)[1])
        os.unlink(os.path.join(t.mp, "bench.dat"))
        add("dd bs=4k MB/s", dd(os.path.join(t.mp, "dd"), "4k", 131072))
        add("dd bs=1M MB/s", dd(os.path.join(t.mp, "dd"), "1M", 512))
        add("seq write+fsync MB/s", fio(t.mp, "sw", "write", "1M", "1G", None, True)[0])
        drop_caches()
        add("cold seq read MB/s", fio(t.mp, "sr", "read", "1M", "1G")[0])
        os.unlink(os.path.join(t.mp, "bench.dat"))


def scrub_vs_cat(work, reps, tree):
    t = Target("gpufs", work)
    t.mount()
    try:
        sh("cp", "-a", tree, os.path.join(t.mp, "tree"))
        # Made durable (and every record placed) by an fsync of the tree's root.
        fd = os.open(os.path.join(t.mp, "tree"), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        out = {"scrub s": [], "cat s": [], "records": 0, "bytes": 0}
        for _ in range(reps):
            drop_caches()
            start = time.perf_counter()
            rep = json.loads(sh(GPUFS, "scrub", t.mp, "--restart", "--json"))
            out["scrub s"].append(time.perf_counter() - start)
            out["records"], out["bytes"] = rep["records"], rep["bytes_read"]
            drop_caches()
            start = time.perf_counter()
            subprocess.run("find %s -type f -exec cat {} + > /dev/null" % t.mp, shell=True,
                           check=True)
            out["cat s"].append(time.perf_counter() - start)
        return out
    finally:
        t.unmount()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tree", default="/usr/share/doc")
    ap.add_argument("--work", default="/var/tmp")
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gpufs-io-", dir=a.work)
    global SOURCE
    SOURCE = os.path.join(work, "random.bin")
    with open(SOURCE, "wb") as f:
        f.write(os.urandom(512 << 20))
    results = {}
    try:
        for name in TARGETS:
            t = Target(name, work)
            t.mount()
            try:
                run(t, a.reps, results.setdefault(name, {}))
            finally:
                t.unmount()
            print(name, {k: round(statistics.median(v), 1) for k, v in results[name].items()},
                  file=sys.stderr)
        results["scrub"] = scrub_vs_cat(work, a.reps, a.tree)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {n: {k: statistics.median(v) if isinstance(v, list) else v for k, v in r.items()}
           for n, r in results.items()}
    e = med["ext4"]
    print("%-24s %12s %12s %12s %10s %10s" % ("medians of %d" % a.reps, "ext4", "gpufs",
                                              "gpufs kw", "ratio", "ratio kw"))
    for k in e:
        g, kw = med["gpufs"][k], med["gpufs --kernel-writeback"][k]
        print("%-24s %12.1f %12.1f %12.1f %10.3f %10.3f" % (k, e[k], g, kw, g / e[k], kw / e[k]))
    for n in TARGETS:
        m = med[n]
        print("%s: dd bs=4k / bs=1M = %.3f" % (n, m["dd bs=4k MB/s"] / m["dd bs=1M MB/s"]))
    s = med["scrub"]
    print("scrub of %d records (%.1f MiB) %.2f s, cat of every file %.2f s (cold): "
          "scrub/cat time %.3f" % (s["records"], s["bytes"] / (1 << 20), s["scrub s"],
                                   s["cat s"], s["scrub s"] / s["cat s"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
