#!/usr/bin/env python3
"""Space and cost of compression, gpufs side by side with btrfs in one run.

For each target a fresh loop image (btrfs made with `-m single -d single`, mounted with
`compress=lzo` or `compress=zstd:3`; gpufs made with `--compression lz4|zstd|none`;
ext4 for reference) gets:

  tree    a real mixed tree (`cp -a` of --tree, default /usr/include and /usr/share/doc)
  zeros   256 MiB of zeros written with dd
  random  256 MiB of random bytes written with dd
and the df delta (statvfs used blocks) after `sync` is recorded for each. Then, on gpufs
lz4 and none only, the time to write --mib MiB of compressible data (the tree as one
tar, repeated) with `dd bs=1M conv=fsync`, interleaved, REPS times: medians and ratio.

Needs root, /dev/fuse, btrfs-progs, e2fsprogs and a release build.

    python3 bench/space.py [--reps 5] [--mib 512] [--json out.json]
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
IMAGE_SIZE = "8G"
MIB = 1 << 20

TARGETS = {
    "btrfs lzo": ("btrfs", "compress=lzo"),
    "btrfs zstd:3": ("btrfs", "compress=zstd:3"),
    "gpufs lz4": ("gpufs", "lz4"),
    "gpufs zstd": ("gpufs", "zstd"),
    "gpufs none": ("gpufs", "none"),
    "ext4": ("ext4", None),
}


# Shared with the side-by-side benchmark of bench/run.py.
from run import is_mounted, sh  # noqa: E402


def used_bytes(mp):
    os.sync()
    # sync(2) does not reach a FUSE daemon: an fsync of the mount's root commits gpufs
    # (its buffered records placed, compressed), and is harmless elsewhere.
    fd = os.open(mp, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    st = os.statvfs(mp)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class Target:
    def __init__(self, name, work):
        self.name = name
        self.kind, self.opt = TARGETS[name]
        slug = name.replace(" ", "-").replace(":", "")
        self.img = os.path.join(work, slug + ".img")
        self.mp = os.path.join(work, slug)
        os.makedirs(self.mp, exist_ok=True)

    def mount(self):
        if os.path.exists(self.img):
            os.unlink(self.img)
        if self.kind == "gpufs":
            sh(GPUFS, "mkfs", self.img, "--size", IMAGE_SIZE, "--compression", self.opt)
            sh(GPUFS, "mount", self.img, self.mp)
        else:
            sh("truncate", "-s", IMAGE_SIZE, self.img)
            if self.kind == "btrfs":
                sh("mkfs.btrfs", "-q", "-f", "-m", "single", "-d", "single", self.img)
                sh("mount", "-o", "loop," + self.opt, self.img, self.mp)
            else:
                sh("mkfs.ext4", "-q", "-F", self.img)
                sh("mount", "-o", "loop", self.img, self.mp)
        if not is_mounted(self.mp):
            sys.exit("FAIL: %s is not mounted" % self.mp)

    def unmount(self):
        if self.kind == "gpufs":
            sh(GPUFS, "unmount", self.mp)
        else:
            sh("umount", self.mp)
        os.unlink(self.img)


def grown_by(mp, action):
    before = used_bytes(mp)
    action()
    return used_bytes(mp) - before


def dd(src, dst, mib):
    sh("dd", "if=" + src, "of=" + dst, "bs=1M", "count=%d" % mib, "conv=fsync", "status=none")


def space(t, trees, random_file):
    r = {}
    t.mount()
    try:
        def copy():
            for i, tree in enumerate(trees):
                sh("cp", "-a", tree, os.path.join(t.mp, "tree%d" % i))
        r["tree"] = grown_by(t.mp, copy)
        r["zeros"] = grown_by(t.mp, lambda: dd("/dev/zero", os.path.join(t.mp, "zeros"), 256))
        r["random"] = grown_by(t.mp, lambda: dd(random_file, os.path.join(t.mp, "random"), 256))
    finally:
        t.unmount()
    return r


def write_times(work, source, mib, reps):
    """dd of the compressible file onto gpufs lz4 and none, interleaved."""
    targets = [Target("gpufs lz4", work), Target("gpufs none", work)]
    times = {t.name: [] for t in targets}
    for t in targets:
        t.mount()
    try:
        for _ in range(reps):
            for t in targets:
                dst = os.path.join(t.mp, "c")
                start = time.perf_counter()
                dd(source, dst, mib)
                times[t.name].append(time.perf_counter() - start)
                os.unlink(dst)
                sh("sync")
    finally:
        for t in targets:
            t.unmount()
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--tree", action="append", help="directory to copy (repeatable)")
    ap.add_argument("--work", default="/var/tmp")
    ap.add_argument("--json")
    ap.add_argument("--write-only", action="store_true",
                    help="only the lz4/none write times, no space figures")
    a = ap.parse_args()
    trees = a.tree or ["/usr/include", "/usr/share/doc"]
    tree_bytes = int(sh("du", "-sb", "--apparent-size", *trees).split()[0]) if len(trees) == 1 \
        else sum(int(l.split()[0]) for l in sh("du", "-sb", "--apparent-size", *trees).splitlines())
    work = tempfile.mkdtemp(prefix="gpufs-space-", dir=a.work)
    random_file = os.path.join(work, "random.bin")
    with open(random_file, "wb") as f:
        f.write(os.urandom(256 * MIB))
    # Compressible source: the trees as one tar, repeated to --mib MiB.
    tar = subprocess.run(["tar", "cf", "-", *trees], check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout
    source = os.path.join(work, "compressible.bin")
    with open(source, "wb") as f:
        left = a.mib * MIB
        while left > 0:
            f.write(tar[:left])
            left -= min(left, len(tar))
    results = {"tree_apparent_bytes": tree_bytes, "space": {}, "write_s": {}}
    for name in [] if a.write_only else TARGETS:
        results["space"][name] = space(Target(name, work), trees, random_file)
        print(name, results["space"][name], file=sys.stderr)
    results["write_s"] = write_times(work, source, a.mib, a.reps)
    shutil.rmtree(work)

    s = results["space"]
    if a.write_only:
        s = {}
    print("tree: %s (%.1f MiB apparent)" % (" + ".join(trees), tree_bytes / MIB))
    print("%-14s %12s %14s %14s" % ("target", "tree MiB", "256M zeros MiB", "256M random MiB"))
    for name, r in s.items():
        print("%-14s %12.1f %14.2f %14.1f" % (name, r["tree"] / MIB, r["zeros"] / MIB,
                                               r["random"] / MIB))
    for ours, peer in [] if a.write_only else [("gpufs lz4", "btrfs lzo"),
                                              ("gpufs zstd", "btrfs zstd:3")]:
        print("%s / %s tree space: %.3f" % (ours, peer, s[ours]["tree"] / s[peer]["tree"]))
    w = results["write_s"]
    lz4, none = statistics.median(w["gpufs lz4"]), statistics.median(w["gpufs none"])
    print("write %d MiB compressible, dd bs=1M conv=fsync: lz4 %.2f s, none %.2f s, "
          "ratio %.3f (medians of %d)" % (a.mib, lz4, none, lz4 / none, a.reps))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
