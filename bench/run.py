#!/usr/bin/env python3
"""Side-by-side filesystem benchmark: gpufs against tmpfs and ext4 on a loop device.

Every workload runs on all three targets in one run, REPS times each, and the table
reports medians and gpufs/peer ratios. Images live in one directory on the same disk.
Needs root, /dev/fuse, fio, e2fsprogs and a release build (cargo build --release).

    python3 bench/run.py [--reps 3] [--files 100000] [--mem-files 1000000] [--json out.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# GPUFS_BIN / GPUFS_BENCH_BIN run another build (e.g. an earlier commit's, for a
# before/after pair of runs).
GPUFS = os.environ.get("GPUFS_BIN") or os.path.join(ROOT, "target/release/gpufs")
BENCH = os.environ.get("GPUFS_BENCH_BIN") or os.path.join(ROOT, "target/release/gpufs-bench")


def sh(*args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def is_mounted(mp):
    with open("/proc/self/mounts") as f:
        return any(l.split()[1] == mp for l in f)


def fio(directory, name, rw, bs, size, runtime=None, end_fsync=False):
    args = ["fio", "--name=" + name, "--directory=" + directory, "--filename=bench.dat",
            "--rw=" + rw, "--bs=" + bs, "--size=" + size, "--ioengine=psync",
            "--output-format=json"]
    if runtime:
        args += ["--runtime=%d" % runtime, "--time_based"]
    if end_fsync:
        args += ["--end_fsync=1"]
    job = json.loads(sh(*args))["jobs"][0]
    side = job["write"] if "write" in rw else job["read"]
    return {"MB/s": side["bw_bytes"] / 1e6, "IOPS": side["iops"]}


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


class Target:
    def __init__(self, name, work):
        self.name, self.work = name, work
        self.mp = os.path.join(work, name)
        os.makedirs(self.mp, exist_ok=True)

    def mount(self):
        img = os.path.join(self.work, self.name + ".img")
        if self.name == "tmpfs":
            sh("mount", "-t", "tmpfs", "-o", "size=6G", "tmpfs", self.mp)
        elif self.name == "ext4":
            sh("truncate", "-s", "6G", img)
            sh("mkfs.ext4", "-q", "-F", img)
            sh("mount", "-o", "loop", img, self.mp)
        else:
            sh(GPUFS, "mkfs", img, "--size", "6G", "--force")
            sh(GPUFS, "mount", img, self.mp)
        if not is_mounted(self.mp):
            sys.exit("FAIL: %s is not mounted" % self.mp)

    def unmount(self):
        if self.name == "gpufs":
            sh(GPUFS, "unmount", self.mp)
        else:
            sh("umount", self.mp)


def run_target(t, args, results):
    r = results.setdefault(t.name, {})
    def add(key, value):
        r.setdefault(key, []).append(value)

    for _ in range(args.reps):
        m = json.loads(sh(BENCH, "meta", t.mp, "--files", str(args.files)))
        add("create files/s", args.files / m["create_s"])
        add("stat files/s", args.files / m["stat_s"])
        add("unlink files/s", args.files / m["unlink_s"])
    sh(BENCH, "bigdir", t.mp, "--files", str(args.files))
    big = os.path.join(t.mp, "big")
    for _ in range(args.reps):
        drop_caches()
        add("ls -f 100k (ms)", 1000 * timed("ls -f %s" % big))
        drop_caches()
        add("ls -l 100k (ms)", 1000 * timed("ls -l %s" % big))
    for _ in range(args.reps):
        w = fio(t.mp, "seqwrite", "write", "1M", "1G", end_fsync=True)
        add("seq write 1G+fsync MB/s", w["MB/s"])
        drop_caches()
        add("cold seq read MB/s", fio(t.mp, "seqread", "read", "1M", "1G")["MB/s"])
        drop_caches()
        add("4K rand read IOPS", fio(t.mp, "randread", "randread", "4k", "1G", runtime=8)["IOPS"])
        add("4K rand write IOPS", fio(t.mp, "randwrite", "randwrite", "4k", "1G", runtime=8,
                                      end_fsync=True)["IOPS"])
        os.unlink(os.path.join(t.mp, "bench.dat"))


def daemon_rss_kib(mp):
    pidfile = os.path.join(os.environ.get("XDG_STATE_HOME", os.path.expanduser("~/.local/state")),
                           "gpufs", "".join(c if c.isalnum() else "_" for c in mp).strip("_") + ".pid")
    pid = open(pidfile).read().strip()
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def memory_per_file(work, files):
    t = Target("gpufs", work)
    t.mount()
    try:
        before = daemon_rss_kib(t.mp)
        fill = json.loads(sh(BENCH, "fill", t.mp, "--files", str(files)))
        time.sleep(6)  # let the periodic commit run, as in steady state
        after = daemon_rss_kib(t.mp)
    finally:
        t.unmount()
    return {"files": files, "rss_before_kib": before, "rss_after_kib": after,
            "bytes_per_file": (after - before) * 1024 / files,
            "fill_files_per_s": files / fill["create_s"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--mem-files", type=int, default=1_000_000)
    ap.add_argument("--json")
    ap.add_argument("--work", default="/var/tmp")
    args = ap.parse_args()
    for b in (GPUFS, BENCH):
        if not os.path.exists(b):
            sys.exit("build first: cargo build --release --workspace")
    work = tempfile.mkdtemp(prefix="gpufs-bench.", dir=args.work)
    results = {}
    for name in ("tmpfs", "ext4", "gpufs"):
        t = Target(name, work)
        t.mount()
        try:
            run_target(t, args, results)
        finally:
            t.unmount()
    mem = memory_per_file(work, args.mem_files) if args.mem_files else None
    sh("rm", "-rf", work)

    keys = list(results["gpufs"].keys())
    lower_is_better = lambda k: "(ms)" in k
    print("| workload (median of %d) | tmpfs | ext4 (loop) | gpufs | gpufs/tmpfs | gpufs/ext4 |" % args.reps)
    print("|---|---:|---:|---:|---:|---:|")
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    for k in keys:
        g, tm, e4 = med["gpufs"][k], med["tmpfs"][k], med["ext4"][k]
        print("| %s | %.0f | %.0f | %.0f | %.2f | %.2f |" % (k, tm, e4, g, g / tm, g / e4))
    if mem:
        print("\ndaemon memory with %(files)d files: %(bytes_per_file).0f bytes/file "
              "(RSS %(rss_before_kib)d KiB -> %(rss_after_kib)d KiB; fill at %(fill_files_per_s).0f files/s)" % mem)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"raw": results, "median": med, "memory": mem}, f, indent=1)


if __name__ == "__main__":
    main()
