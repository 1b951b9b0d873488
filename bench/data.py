#!/usr/bin/env python3
"""The data kernels against the peer tools, side by side in one run.

1. `gpufs-bench data` builds three seeded 1 GiB corpora of 64 KiB records (text-like,
   binary-like, random), times CRC32C, BLAKE3, LZ4 compression and decompression and
   AES-256-XTS encryption and decryption on them (CPU one thread, CPU all cores, and
   the GPU when one is present: kernel time, upload and read-back apart), and writes
   the corpora to a tmpfs directory.
2. On the same files, in the same run, the single-core peers: `lz4 -1` (compress and
   decompress), `zstd -1 -T1` (compress and decompress), `b3sum --num-threads 1`, and
   `openssl speed -evp aes-256-xts` (64 KiB blocks, one process).

Prints one table (GB/s = 10^9 bytes of input per second, medians of --reps) and the
check of issue 4's CPU target: all-core batch speed >= 0.8 x cores x one-thread speed.

  python3 bench/data.py [--bytes 1G] [--reps 3] [--compute auto|gpu|cpu] [--json out.json]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "gpufs-bench")


def timed(cmd, reps, stdout=subprocess.DEVNULL):
    """Median wall seconds of `reps` runs of cmd (after one warm-up run)."""
    subprocess.run(cmd, check=True, stdout=stdout, stderr=subprocess.DEVNULL)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=stdout, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peers(corpus_dir, kinds, reps):
    rows = []
    for kind in kinds:
        src = os.path.join(corpus_dir, kind + ".bin")
        size = os.path.getsize(src)
        lz4_out = lambda i, o: [i, o]  # lz4 1.9 takes INPUT OUTPUT and has no -o
        zstd_out = lambda i, o: [i, "-o", o]
        for tool, cmd_c, cmd_d, suffix, io in [
            ("lz4 -1", ["lz4", "-1", "-q", "-f"], ["lz4", "-d", "-q", "-f"], ".lz4", lz4_out),
            ("zstd -1 -T1", ["zstd", "-1", "-T1", "-q", "-f"],
             ["zstd", "-d", "-T1", "-q", "-f"], ".zst", zstd_out),
        ]:
            packed = src + suffix
            out = src + ".out"
            t_c = timed(cmd_c + io(src, packed), reps)
            t_d = timed(cmd_d + io(packed, out), reps)
            ratio = size / os.path.getsize(packed)
            os.unlink(out)
            os.unlink(packed)
            rows.append({"tool": tool, "kernel": "compress", "data": kind,
                         "gb_per_s": size / t_c / 1e9, "ratio": ratio})
            rows.append({"tool": tool, "kernel": "decompress", "data": kind,
                         "gb_per_s": size / t_d / 1e9})
        if shutil.which("b3sum"):
            t = timed(["b3sum", "--num-threads", "1", src], reps)
            rows.append({"tool": "b3sum --num-threads 1", "kernel": "blake3", "data": kind,
                         "gb_per_s": size / t / 1e9})
    for op, flag in [("encrypt", []), ("decrypt", ["-decrypt"])]:
        out = subprocess.run(["openssl", "speed", "-evp", "aes-256-xts", "-bytes", "65536",
                              "-seconds", "3"] + flag, check=True, capture_output=True,
                             text=True).stdout
        m = re.search(r"^AES-256-XTS\s+([\d.]+)k", out, re.M | re.I)
        if m:
            rows.append({"tool": "openssl speed -evp aes-256-xts" + (" -decrypt" if flag else ""),
                         "kernel": "xts " + op, "data": "any",
                         "gb_per_s": float(m.group(1)) * 1000 / 1e9})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bytes", default="1G")
    ap.add_argument("--record-size", default="64K")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--compute", default="auto")
    ap.add_argument("--kinds", default="text,binary,random")
    ap.add_argument("--json")
    a = ap.parse_args()
    if not os.path.exists(BENCH):
        sys.exit("build first: cargo build --release -p gpufs-bench")
    corpus_dir = tempfile.mkdtemp(prefix="gpufs-data-", dir="/dev/shm")
    try:
        out = subprocess.run([BENCH, "data", "--bytes", a.bytes, "--record-size",
                              a.record_size, "--reps", str(a.reps), "--compute", a.compute,
                              "--kinds", a.kinds, "--write-corpus", corpus_dir, "--json"],
                             check=True, capture_output=True, text=True).stdout
        ours = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"gpufs": ours}, f, indent=1)
        theirs = peers(corpus_dir, a.kinds.split(","), a.reps)
    finally:
        shutil.rmtree(corpus_dir, ignore_errors=True)
    info = next((r for r in ours if "machine" in r), {})
    print("# %s; GPU: %s" % (info.get("machine", "?"), info.get("gpu", "none")))
    print("| kernel | data | gpufs CPU 1 thread | gpufs CPU %s threads | all/one | gpufs GPU kernel"
          " (upload, read back) | ratio (CPU / GPU) |" % info.get("threads", "?"))
    print("|---|---|---|---|---|---|---|")
    for r in ours:
        if "kernel" not in r:
            continue
        g = "-"
        if r.get("gpu_gb_per_s") is not None:
            g = "%.2f (%.2f, %.2f)" % (r["gpu_gb_per_s"], r["upload_gb_per_s"],
                                       r["read_gb_per_s"])
        ratio = "-"
        if r.get("ratio") is not None:
            ratio = "%.2f / %s" % (r["ratio"], "%.2f" % r["gpu_ratio"]
                                   if r.get("gpu_ratio") is not None else "-")
        print("| %s | %s | %.2f | %.2f | %.2fx | %s | %s |" % (
            r["kernel"], r["data"], r["cpu1_gb_per_s"], r["cpu_all_gb_per_s"],
            r["cpu_all_gb_per_s"] / max(r["cpu1_gb_per_s"], 1e-9), g, ratio))
    print()
    print("| peer (one core) | kernel | data | GB/s | ratio |")
    print("|---|---|---|---|---|")
    for r in theirs:
        print("| %s | %s | %s | %.2f | %s |" % (r["tool"], r["kernel"], r["data"],
                                               r["gb_per_s"],
                                               "%.2f" % r["ratio"] if "ratio" in r else "-"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"gpufs": ours, "peers": theirs}, f, indent=1)


if __name__ == "__main__":
    main()
