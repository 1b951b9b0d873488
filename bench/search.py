#!/usr/bin/env python3
"""Live search and du against the peers, side by side in one run.

Builds one seeded tree (default 1,000,000 files in about 60,000 directories, realistic
names) twice: on tmpfs for the peers and in a fresh gpufs mount. Then, for each query
kind, times as a user would run them (a new process per query, median of --reps):

  gpufs search MNT ...            (end to end: the CLI process, socket, daemon, output)
  plocate -d DB ...               (index built by `updatedb -l no` over the tmpfs copy)
  fdfind -u ...                   (tmpfs copy)
  find ...                        (tmpfs copy)

in the same output mode (count: counts against counts; paths: every full path printed
and read through a pipe by `wc -l`, the same cheap reader for every tool; both: each in
turn on the same trees), the runs of the four tools interleaved (see timed_together,
which also reports the share of CPU time the hypervisor gave other guests meanwhile,
"steal", per tool), and checks that every
tool found the same number of results. Then `gpufs du -s` against `du -s`. Needs root
(mount), plocate and fd-find.

  [GPUFS_BIN=path/to/gpufs] python3 bench/search.py --files 1000000 --reps 5 [--mode count|paths|both]
                          [--reader wc|python] [--json out.json]
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# GPUFS_BIN runs another build (e.g. an earlier commit's, for a before/after pair of runs).
GPUFS = os.environ.get("GPUFS_BIN") or os.path.join(ROOT, "target", "release", "gpufs")

WORDS = ["report", "parser", "main", "index", "config", "notes", "draft", "invoice",
         "backup", "photo", "scan", "build", "cache", "module", "test", "data", "summary",
         "budget", "thesis", "chapter", "slides", "README", "server", "client", "utils",
         "schema", "kernel", "driver", "network", "storage", "lib", "app", "view", "model",
         "handler", "error", "types", "queue", "vacation", "family", "meeting", "agenda"]
EXTS = ["rs", "c", "h", "py", "js", "md", "txt", "json", "toml", "jpg", "png", "pdf",
        "docx", "log", "gz", "o", "html", "css", "go", "mp3", "csv", "JPG"]
DIRS = ["src", "docs", "tests", "build", "assets", "images", "2023", "2024", "archive",
        "projects", "music", "Downloads", "include", "lib", "bin", "photos", "work",
        "personal", "old", "vendor", "examples"]


def tree(seed, files, per_dir):
    """(directories, files) as relative paths, deterministic for a seed."""
    rng = random.Random(seed)
    dirs = [""]
    out_files = []
    k = 0
    while len(out_files) < files:
        k += 1
        if rng.randrange(per_dir) == 0:
            parent = dirs[rng.randrange(len(dirs))]
            name = rng.choice(DIRS) + ("-%d" % k if rng.randrange(3) == 0 else "")
            d = os.path.join(parent, name)
            if d not in dirs_set:
                dirs_set.add(d)
                dirs.append(d)
            continue
        parent = dirs[len(dirs) - 1 - rng.randrange(min(len(dirs), 64))]
        r = rng.randrange(5)
        if r == 0:
            name = "IMG_2023%02d%02d_%06d.jpg" % (1 + rng.randrange(12), 1 + rng.randrange(28), k)
        elif r == 1:
            name = "%s_%s_%d.%s" % (rng.choice(WORDS), rng.choice(WORDS), k, rng.choice(EXTS))
        elif r == 2:
            name = "%s-%d.%s" % (rng.choice(WORDS), k, rng.choice(EXTS))
        elif r == 3:
            name = "%s%d.%s" % (rng.choice(WORDS), k, rng.choice(EXTS))
        else:
            name = "%s.%d.%s" % (rng.choice(WORDS), k, rng.choice(EXTS))
        out_files.append(os.path.join(parent, name))
    return dirs[1:], out_files


dirs_set = set()


def populate(base, dirs, files):
    for d in dirs:
        os.makedirs(os.path.join(base, d), exist_ok=True)
    for f in files:
        fd = os.open(os.path.join(base, f), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        os.close(fd)


def drain(cmd, reader="wc"):
    """Runs `cmd` with its output read through a pipe, the same reader for every tool;
    (exit code, lines, stderr). "wc": `wc -l` reads the pipe (a C line counter that takes
    it in at memory speed, so the reader costs every tool the least). "python": this
    process reads it into one reused 1 MiB buffer and counts the newlines itself (about
    1 byte per cycle: 26 ms of CPU for 30 MB here, more than the search it reads)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        if reader == "wc":
            w = subprocess.Popen(["wc", "-l"], stdin=p.stdout, stdout=subprocess.PIPE)
            p.stdout.close()
            lines = int(w.communicate()[0])
        else:
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            lines = 0
            fd = p.stdout.fileno()
            while True:
                n = os.readv(fd, [view])
                if n == 0:
                    break
                lines += buf.count(b"\n", 0, n)
            p.stdout.close()
        code = p.wait()
        err.seek(0)
        return code, lines, err.read()


def steal_ticks():
    """(ticks the hypervisor gave other guests, all ticks) from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def once(cmd, count_mode, reader="wc"):
    """Seconds of one run of `cmd`, and its result count."""
    t = time.perf_counter()
    if count_mode:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        code, err = p.returncode, p.stderr
    else:
        code, lines, err = drain(cmd, reader)
    elapsed = time.perf_counter() - t
    if code not in (0, 1):
        raise SystemExit("%s failed: %s" % (" ".join(cmd), err.decode()[:300]))
    if count_mode:
        out = p.stdout.decode().strip()
        return elapsed, int(out.splitlines()[-1]) if out else 0
    return elapsed, lines


def timed(cmd, reps, count_mode, reader="wc"):
    """Median seconds of `reps` runs (after one that warms up), and the result count of
    the last run."""
    return timed_together([cmd], reps, count_mode, reader)[0][:2]


def timed_together(cmds, reps, count_mode, reader="wc"):
    """[(median seconds, result count, steal share)] per command of `cmds`, their runs
    interleaved: one run of each in turn, `reps` + 1 rounds, the first warming up. Every
    tool is then timed across the same stretch of time: on a machine whose speed drifts
    (other guests of its host taking its CPUs for seconds at a time, which /proc/stat
    shows as steal) a slow spell weighs on all alike instead of on whichever tool ran
    inside it, and a fast tool's runs are not all taken in one spell. The steal share
    is the part of the machine's ticks during that tool's counted runs that went to
    other guests."""
    times = [[] for _ in cmds]
    counts = [None] * len(cmds)
    stolen = [[0, 0] for _ in cmds]
    for r in range(reps + 1):
        for i, cmd in enumerate(cmds):
            s0, t0 = steal_ticks()
            elapsed, counts[i] = once(cmd, count_mode, reader)
            s1, t1 = steal_ticks()
            if r > 0:
                times[i].append(elapsed)
                stolen[i][0] += s1 - s0
                stolen[i][1] += t1 - t0
    return [(statistics.median(t), n, st[0] / st[1] if st[1] else 0.0)
            for t, n, st in zip(times, counts, stolen)]


def sh_count(cmd):
    return ["sh", "-c", cmd + " | wc -l"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--per-dir", type=int, default=17)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mode", choices=["count", "paths", "both"], default="count")
    ap.add_argument("--reader", choices=["wc", "python"], default="wc",
                    help="what reads the paths mode's output (see drain)")
    ap.add_argument("--json")
    a = ap.parse_args()
    modes = ["count", "paths"] if a.mode == "both" else [a.mode]
    work = tempfile.mkdtemp(prefix="gpufs-search-", dir="/var/tmp")
    tmpfs = os.path.join(work, "tmpfs")
    mnt = os.path.join(work, "gpufs")
    os.makedirs(tmpfs)
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8g,nr_inodes=0", "tmpfs", tmpfs], check=True)
    img = os.path.join(work, "gpufs.img")
    subprocess.run([GPUFS, "mkfs", img, "--size", "16G"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([GPUFS, "mount", img, mnt], check=True)
    results = {}
    try:
        dirs, files = tree(42, a.files, a.per_dir)
        t = time.perf_counter()
        populate(tmpfs, dirs, files)
        print("tree: %d files, %d dirs; tmpfs fill %.1f s" % (len(files), len(dirs), time.perf_counter() - t))
        t = time.perf_counter()
        populate(mnt, dirs, files)
        print("gpufs fill %.1f s" % (time.perf_counter() - t))
        db = os.path.join(work, "plocate.db")
        t = time.perf_counter()
        subprocess.run(["updatedb", "-l", "no", "-U", tmpfs, "-o", db], check=True)
        print("updatedb %.2f s" % (time.perf_counter() - t))
        for mode in modes:
            count_mode = mode == "count"
            print("== %s" % mode)
            c = ["--count"] if count_mode else []
            wc = sh_count if count_mode else (lambda s: ["sh", "-c", s])
            queries = {
                "substring report": (
                    [GPUFS, "search", mnt, "report"] + c,
                    ["plocate", "-d", db, "-b"] + (["-c"] if count_mode else []) + ["report"],
                    wc("fdfind -u -s --fixed-strings report %s" % tmpfs),
                    wc("find %s -mindepth 1 -name '*report*'" % tmpfs),
                ),
                "case-insensitive readme": (
                    [GPUFS, "search", mnt, "-i", "readme"] + c,
                    ["plocate", "-d", db, "-b", "-i"] + (["-c"] if count_mode else []) + ["readme"],
                    wc("fdfind -u -i --fixed-strings readme %s" % tmpfs),
                    wc("find %s -mindepth 1 -iname '*readme*'" % tmpfs),
                ),
                "glob *.jpg": (
                    [GPUFS, "search", mnt, "--glob", "*.jpg"] + c,
                    ["plocate", "-d", db, "-b"] + (["-c"] if count_mode else []) + ["*.jpg"],
                    wc("fdfind -u -s -g '*.jpg' %s" % tmpfs),
                    wc("find %s -mindepth 1 -name '*.jpg'" % tmpfs),
                ),
                "regex ^IMG_2023..": (
                    [GPUFS, "search", mnt, "--regex", "^IMG_20230[1-3][0-9]{2}_"] + c,
                    ["plocate", "-d", db, "-b", "--regex"] + (["-c"] if count_mode else []) + ["^IMG_20230[1-3][0-9]{2}_"],
                    wc("fdfind -u -s '^IMG_20230[1-3][0-9]{2}_' %s" % tmpfs),
                    wc("find %s -mindepth 1 -regextype posix-extended -regex '.*/IMG_20230[1-3][0-9]{2}_[^/]*'" % tmpfs),
                ),
                "full path photos/IMG": (
                    [GPUFS, "search", mnt, "--full-path", "photos/IMG"] + c,
                    ["plocate", "-d", db] + (["-c"] if count_mode else []) + ["photos/IMG"],
                    wc("fdfind -u -s --full-path --fixed-strings photos/IMG %s" % tmpfs),
                    wc("find %s -mindepth 1 -path '*photos/IMG*'" % tmpfs),
                ),
            }
            for name, (g, p, f, fi) in queries.items():
                tools = ("gpufs", "plocate", "fd", "find")
                timings = timed_together([g, p, f, fi], a.reps, count_mode, a.reader)
                row = {tool: {"seconds": secs, "results": n, "steal": st}
                       for tool, (secs, n, st) in zip(tools, timings)}
                results.setdefault(mode, {})[name] = row
                counts = {t: r["results"] for t, r in row.items()}
                print("%-24s gpufs %8.1f ms  plocate %8.1f ms  fd %8.1f ms  find %8.1f ms   plocate/gpufs %5.1fx  fd/gpufs %6.1fx  steal %s  counts %s" % (
                    name, row["gpufs"]["seconds"] * 1e3, row["plocate"]["seconds"] * 1e3,
                    row["fd"]["seconds"] * 1e3, row["find"]["seconds"] * 1e3,
                    row["plocate"]["seconds"] / row["gpufs"]["seconds"],
                    row["fd"]["seconds"] / row["gpufs"]["seconds"],
                    "/".join("%.0f%%" % (r["steal"] * 100) for r in row.values()), counts))
        (g, _, gs), (d, _, ds) = timed_together(
            [[GPUFS, "du", "-s", "-b", "--apparent-size", mnt],
             ["du", "-s", "-b", "--apparent-size", tmpfs]], a.reps, False, a.reader)
        results["du -s"] = {"gpufs": g, "du": d, "steal": [gs, ds]}
        print("du -s: gpufs %.1f ms, du %.1f ms (%.1fx)" % (g * 1e3, d * 1e3, d / g))
    finally:
        subprocess.run([GPUFS, "unmount", mnt])
        subprocess.run(["umount", tmpfs])
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
