#!/usr/bin/env bash
# Real programs in a gpufs mount: git, tar + diff -r, sqlite3, stress-ng, dbench,
# bonnie++. Each must succeed; afterwards fsck must be clean.
source "$(dirname "$0")/lib.sh"
need_binary
for tool in git sqlite3 stress-ng dbench bonnie++ tar; do
    command -v "$tool" >/dev/null || die "$tool is not installed (see .ci/run)"
done
scratch
"$GPUFS" mkfs "$SCRATCH/img" --size 8G >/dev/null
M="$SCRATCH/mnt"
gpufs_mount "$SCRATCH/img" "$M" --allow-other
step() { echo "== $*"; }

step "git: init, two commits of a source tree, fsck"
mkdir "$M/repo"
cp -r "$ROOT/crates" "$ROOT/Cargo.toml" "$M/repo/"
(
    cd "$M/repo"
    git init -q
    git -c user.name=t -c user.email=t@t add -A
    git -c user.name=t -c user.email=t@t commit -qm one
    echo change >> Cargo.toml
    git -c user.name=t -c user.email=t@t commit -qam two
    git gc -q
    git fsck --full --strict
    [ "$(git rev-list --count HEAD)" = 2 ]
)

step "tar: extract a source tarball and diff -r against the original"
src=/usr/include
tar -C "$(dirname $src)" -cf "$SCRATCH/src.tar" "$(basename $src)"
mkdir "$M/untar"
tar -C "$M/untar" -xf "$SCRATCH/src.tar"
diff -r --no-dereference "$src" "$M/untar/$(basename $src)"

step "sqlite3: build a database, integrity_check"
sqlite3 "$M/test.db" <<'SQL'
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<200000)
INSERT INTO t(name, blob) SELECT 'row' || x, randomblob(100) FROM c;
CREATE INDEX t_name ON t(name);
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SQL
[ "$(sqlite3 "$M/test.db" 'PRAGMA integrity_check;')" = ok ] || die "sqlite integrity_check"
[ "$(sqlite3 "$M/test.db" 'SELECT count(*) FROM t;')" = 133334 ] || die "sqlite row count"

step "stress-ng: file stressors with verification"
mkdir "$M/stress"
stress-ng --temp-path "$M/stress" --hdd 2 --hdd-bytes 64M --dir 1 --rename 1 --link 1 \
    --symlink 1 --fallocate 1 --seek 1 --dentry 1 --chmod 1 --utime 1 --xattr 1 \
    --timeout "${STRESS_SECS:-20}s" --verify --metrics-brief

step "dbench"
dbench -D "$M" -t "${DBENCH_SECS:-20}" 4 | tail -4

step "bonnie++"
mkdir "$M/bonnie"
bonnie++ -d "$M/bonnie" -u root -s 1024 -r 512 -n 32 -q >/dev/null

step "unmount and fsck"
gpufs_unmount "$M"
fsck_clean "$SCRATCH/img"
echo "real programs: all passed"
