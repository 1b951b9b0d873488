#!/usr/bin/env python3
"""gpufs search gives exactly what find gives, on a big tree, while it changes.

Mounts a fresh gpufs image, fills it with the seeded tree of bench/search.py (default
1,000,000 files), then starts a mutator process that keeps creating, renaming and
deleting files and directories all over the tree. Each round the mutator is paused
(SIGSTOP, after its current operation), every query kind runs through `gpufs search`
and through `find` on the same mount, the two path sets must be identical, and the
mutator resumes. Query kinds: substring, case-insensitive, glob, case-insensitive
glob, regex, and full path (substring with '/', glob, regex).

  python3 scripts/search-equivalence.py [--files N] [--rounds R]

Exits 1 on the first difference (printing a few of the differing paths). Needs root.
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPUFS = os.path.join(ROOT, "target", "release", "gpufs")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import search as bench  # noqa: E402  (the tree generator of the search benchmark)


def paths(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(cmd), p.returncode,
                                                 p.stderr.decode(errors="replace")[:300]))
    return set(x for x in p.stdout.split(b"\0") if x)


def queries(mnt):
    m = mnt.encode()
    return [
        ("substring report", ["report"], ["-name", "*report*"]),
        ("case-insensitive readme", ["-i", "readme"], ["-iname", "*readme*"]),
        ("glob *.jpg", ["--glob", "*.jpg"], ["-name", "*.jpg"]),
        ("glob -i *.JPG", ["--glob", "-i", "*.JPG"], ["-iname", "*.JPG"]),
        ("glob class", ["--glob", "[a-m]*_[0-9]*.md"], ["-name", "[a-m]*_[0-9]*.md"]),
        ("regex", ["--regex", "^IMG_20230[1-3][0-9]{2}_"],
         ["-regextype", "posix-extended", "-regex", ".*/IMG_20230[1-3][0-9]{2}_[^/]*"]),
        ("full path substring", ["--full-path", "photos/IMG"],
         ["-path", mnt + "*photos/IMG*"]),
        ("full path glob", ["--full-path", "--glob", "*/src/*.rs"],
         ["-path", mnt + "*/src/*.rs"]),
        ("full path regex", ["--full-path", "--regex", "^/[a-z]+(-[0-9]+)?/.*\\.(md|rs)$"],
         ["-regextype", "posix-extended", "-regex", mnt + "/[a-z]+(-[0-9]+)?/.*\\.(md|rs)"]),
    ], m


def mutate(mnt, seed):
    """Runs forever: creates, renames and deletes files and directories."""
    rng = random.Random(seed)
    made = []
    dirs = [mnt]
    words = bench.WORDS + ["photos", "src", "docs"]
    k = 0
    while True:
        k += 1
        op = rng.randrange(10)
        try:
            if op < 4 or not made:
                parent = rng.choice(dirs)
                name = "%s_mut%d.%s" % (rng.choice(words), k, rng.choice(bench.EXTS))
                p = os.path.join(parent, name)
                os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
                made.append(p)
            elif op < 5:
                d = os.path.join(rng.choice(dirs), "%s-mut%d" % (rng.choice(words), k))
                os.mkdir(d)
                dirs.append(d)
            elif op < 8:
                i = rng.randrange(len(made))
                new = os.path.join(rng.choice(dirs), "%s-moved%d.%s" % (
                    rng.choice(words), k, rng.choice(bench.EXTS)))
                os.rename(made[i], new)
                made[i] = new
            else:
                os.unlink(made.pop(rng.randrange(len(made))))
        except FileNotFoundError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--per-dir", type=int, default=17)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds the mutator runs between rounds")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gpufs-equiv-", dir="/var/tmp")
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)
    img = os.path.join(work, "img")
    subprocess.run([GPUFS, "mkfs", img, "--size", "16G"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([GPUFS, "mount", img, mnt], check=True)
    mutator = None
    failed = False
    try:
        dirs, files = bench.tree(42, a.files, a.per_dir)
        t = time.time()
        bench.populate(mnt, dirs, files)
        print("tree: %d files, %d dirs (%.0f s)" % (len(files), len(dirs), time.time() - t))
        pid = os.fork()
        if pid == 0:
            try:
                mutate(mnt, 7)
            finally:
                os._exit(0)
        mutator = pid
        qs, m = queries(mnt)
        for r in range(a.rounds):
            time.sleep(a.settle)
            os.kill(mutator, signal.SIGSTOP)
            time.sleep(0.05)
            for name, ours, theirs in qs:
                got = paths([GPUFS, "search", mnt, "-0"] + ours)
                # gpufs matches full paths inside the mount ("/a/b"), find whole paths
                # ("MNT/a/b"): the find patterns above start with MNT for that.
                want = paths(["find", mnt, "-mindepth", "1"] + theirs + ["-print0"])
                if got != want:
                    failed = True
                    print("round %d, %s: gpufs %d, find %d; only gpufs: %s; only find: %s" % (
                        r, name, len(got), len(want), sorted(got - want)[:3],
                        sorted(want - got)[:3]))
                else:
                    print("round %d, %-24s identical (%d paths)" % (r, name, len(got)))
            os.kill(mutator, signal.SIGCONT)
            if failed:
                break
    finally:
        if mutator:
            os.kill(mutator, signal.SIGKILL)
            os.waitpid(mutator, 0)
        subprocess.run([GPUFS, "unmount", mnt])
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        sys.exit(1)
    print("all rounds identical")


if __name__ == "__main__":
    main()
