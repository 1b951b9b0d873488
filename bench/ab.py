#!/usr/bin/env python3
"""Two builds of gpufs side by side in one run: the same seeded tree (bench/search.py's)
in a mount of each, and every query of the search benchmark run on both, their runs
interleaved round by round (so a slow spell of the machine weighs on both alike).
For a change that must not cost speed (a restructuring): its figures against the build
before it. Needs root (mount).

  python3 bench/ab.py --before path/to/old/gpufs [--after target/release/gpufs]
                      [--files 300000] [--reps 21] [--json out.json]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import search  # noqa: E402  (the tree, the fill and the interleaved timer)

QUERIES = {
    "substring report": ["report"],
    "case-insensitive readme": ["-i", "readme"],
    "glob *.jpg": ["--glob", "*.jpg"],
    "regex ^IMG_2023..": ["--regex", "^IMG_20230[1-3][0-9]{2}_"],
    "full path photos/IMG": ["--full-path", "photos/IMG"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the gpufs program of the earlier build")
    ap.add_argument("--after", default=search.GPUFS)
    ap.add_argument("--files", type=int, default=300_000)
    ap.add_argument("--per-dir", type=int, default=17)
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--json")
    a = ap.parse_args()
    builds = {"before": a.before, "after": a.after}
    work = tempfile.mkdtemp(prefix="gpufs-ab-", dir="/var/tmp")
    mounts = {}
    results = {}
    try:
        dirs, files = search.tree(42, a.files, a.per_dir)
        for name, gpufs in builds.items():
            img, mnt = os.path.join(work, name + ".img"), os.path.join(work, name)
            os.makedirs(mnt)
            subprocess.run([gpufs, "mkfs", img, "--size", "16G"], check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run([gpufs, "mount", img, mnt], check=True)
            mounts[name] = mnt
            search.populate(mnt, dirs, files)
        print("tree: %d files, %d dirs in each mount" % (len(files), len(dirs)))
        rows = [(q, args, mode) for mode in ("count", "paths") for q, args in QUERIES.items()]
        rows.append(("du -s", None, "du"))
        for q, args, mode in rows:
            if args is None:
                cmds = [[g, "du", "-s", "-b", "--apparent-size", mounts[n]]
                        for n, g in builds.items()]
            else:
                extra = ["--count"] if mode == "count" else []
                cmds = [[g, "search", mounts[n]] + args + extra for n, g in builds.items()]
            (tb, nb, sb), (ta, na, sa) = search.timed_together(
                cmds, a.reps, mode == "count")
            results.setdefault(mode, {})[q] = {
                "before": tb, "after": ta, "results": [nb, na], "steal": [sb, sa]}
            print("%-6s %-24s before %7.2f ms  after %7.2f ms  after/before %.3f  results %s/%s  steal %.0f/%.0f%%" % (
                mode, q, tb * 1e3, ta * 1e3, ta / tb, nb, na, sb * 100, sa * 100))
            if nb != na:
                print("results differ", file=sys.stderr)
                sys.exit(1)
    finally:
        for name, mnt in mounts.items():
            subprocess.run([builds[name], "unmount", mnt])
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
