#!/usr/bin/env python3
"""Encryption at rest against no encryption, gpufs beside its peer, in one run.

Four targets, each an 8 GiB image in --dir: gpufs (`mkfs`), gpufs encrypted (`mkfs
--encrypt`), ext4 on a loop device, and ext4 on LUKS2 (`cryptsetup luksFormat`,
aes-xts-plain64, 512-bit key) on a loop device. For each, interleaved, --reps times:

- sequential write + fsync: `dd bs=1M conv=fsync` of --mib MiB of random bytes (what
  compression cannot shrink: the cipher's whole cost shows) and of text (compressed
  first, then encrypted);
- cold read: unmount, drop caches, mount (the key from a key file), `dd bs=1M` of the
  random file to /dev/null.

Prints MB/s medians and the ratios encrypted / plain per filesystem (issue 21's
target: gpufs >= 0.8, aim 0.95).

  python3 bench/crypt.py [--mib 1024] [--reps 3] [--dir /var/tmp/gpufs-crypt] [--json out]
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import drop_caches, sh  # noqa: E402


class Target:
    def __init__(self, name, work, key):
        self.name = name
        self.work = work
        self.key = key
        slug = name.replace(" ", "-")
        self.img = os.path.join(work, slug + ".img")
        self.mp = os.path.join(work, slug)
        self.loop = None
        os.makedirs(self.mp, exist_ok=True)

    def make(self):
        if self.name.startswith("ext4"):
            sh("truncate", "-s", "8G", self.img)
            self.loop = subprocess.run(["losetup", "-f", "--show", self.img], check=True,
                                       capture_output=True, text=True).stdout.strip()
            dev = self.loop
            if "luks" in self.name:
                sh("cryptsetup", "luksFormat", "-q", "--type", "luks2", "--cipher",
                   "aes-xts-plain64", "--key-size", "512", "--pbkdf-memory", "65536",
                   "--key-file", self.key, self.loop)
                dev = self.open_luks()
            sh("mkfs.ext4", "-q", "-F", dev)
            self.close_luks()
        else:
            extra = ["--encrypt", "--key-file", self.key] if "encrypted" in self.name else []
            sh(GPUFS, "mkfs", self.img, "--size", "8G", "--force", *extra)

    def open_luks(self):
        name = "gpufs-bench-luks"
        sh("cryptsetup", "open", "--key-file", self.key, self.loop, name)
        return "/dev/mapper/" + name

    def close_luks(self):
        if "luks" in self.name and os.path.exists("/dev/mapper/gpufs-bench-luks"):
            sh("cryptsetup", "close", "gpufs-bench-luks")

    def mount(self):
        if self.name.startswith("ext4"):
            dev = self.open_luks() if "luks" in self.name else self.loop
            sh("mount", dev, self.mp)
        else:
            extra = ["--key-file", self.key] if "encrypted" in self.name else []
            sh(GPUFS, "mount", *extra, self.img, self.mp)

    def unmount(self):
        if self.name.startswith("ext4"):
            sh("umount", self.mp)
            self.close_luks()
        else:
            sh(GPUFS, "unmount", self.mp)

    def destroy(self):
        if self.loop:
            sh("losetup", "-d", self.loop)
        os.unlink(self.img)


def write_mbs(src, dst, mib):
    start = time.perf_counter()
    sh("dd", "if=" + src, "of=" + dst, "bs=1M", "count=%d" % mib, "conv=fsync", "status=none")
    return mib * (1 << 20) / (time.perf_counter() - start) / 1e6


def read_mbs(t, path, mib):
    t.unmount()
    drop_caches()
    t.mount()
    start = time.perf_counter()
    sh("dd", "if=" + path, "of=/dev/null", "bs=1M", "status=none")
    return mib * (1 << 20) / (time.perf_counter() - start) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp/gpufs-crypt")
    ap.add_argument("--json")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    work = tempfile.mkdtemp(dir=a.dir)
    key = os.path.join(work, "key")
    with open(key, "w") as f:
        f.write("benchmark passphrase\n")
    rand = os.path.join(work, "random.bin")
    text = os.path.join(work, "text.txt")
    sh("dd", "if=/dev/urandom", "of=" + rand, "bs=1M", "count=%d" % a.mib, "status=none")
    with open(text, "wb") as f:
        words = [b"gpufs ", b"seals ", b"every ", b"record\n", b"of ", b"text "]
        line = b"".join(words[(i * 7) % 6] for i in range(40))
        while f.tell() < a.mib << 20:
            f.write(line)
    names = ["gpufs", "gpufs encrypted", "ext4", "ext4 luks"]
    if not os.path.exists("/dev/mapper/control") or shutil.which("cryptsetup") is None:
        # A container without device-mapper cannot open LUKS: ext4 runs plain only.
        print("ext4 on LUKS2: not measured (no device-mapper or cryptsetup here)")
        names.remove("ext4 luks")
    targets = [Target(n, work, key) for n in names]
    results = {t.name: {"write random": [], "write text": [], "cold read": []} for t in targets}
    try:
        for t in targets:
            t.make()
            t.mount()
        for _ in range(a.reps):
            for t in targets:
                r = results[t.name]
                dst = os.path.join(t.mp, "r")
                r["write random"].append(write_mbs(rand, dst, a.mib))
                r["cold read"].append(read_mbs(t, dst, a.mib))
                os.unlink(dst)
                tdst = os.path.join(t.mp, "t")
                r["write text"].append(write_mbs(text, tdst, a.mib))
                os.unlink(tdst)
                sh("sync")
    finally:
        for t in targets:
            try:
                t.unmount()
            except subprocess.CalledProcessError:
                pass
            t.destroy()
        shutil.rmtree(work, ignore_errors=True)
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    cols = ["write random", "write text", "cold read"]
    print("| %d MiB, medians of %d (MB/s) | %s |" % (a.mib, a.reps, " | ".join(cols)))
    print("|---|" + "---:|" * len(cols))
    for n in med:
        print("| %s | %s |" % (n, " | ".join("%.0f" % med[n][c] for c in cols)))
    for plain, enc in [("gpufs", "gpufs encrypted"), ("ext4", "ext4 luks")]:
        if enc not in med:
            continue
        print("| %s / %s | %s |" % (enc, plain, " | ".join(
            "**%.2f**" % (med[enc][c] / med[plain][c]) for c in cols)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"mib": a.mib, "reps": a.reps, "runs": results, "medians": med}, f, indent=1)


if __name__ == "__main__":
    main()
