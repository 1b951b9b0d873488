//! `gpufs diff`: what changed between two snapshots, or a snapshot and the live
//! filesystem. Files are matched by inode number and generation (a number reused for
//! another file is another file): one only in the newer is created, only in the older
//! deleted; an entry that moved (another directory, name or readdir place) is a rename
//! of its file, whose size, mtime, mode, owner, records or xattrs may also have changed
//! (modified). A directory renamed is one change: what lies below it did not move
//! within it. Only the checkpoint segments (format v7: 1,024 inode slots each) whose
//! identity differs between the two sides are compared, directory by directory in cookie
//! order: a segment holds its inodes, their records and xattrs and the entries of its
//! directories, so one that did not change holds no change. Paths are built only for
//! what changed (the entries naming modified files are found in one pass over the
//! entry table).

use std::collections::{BTreeMap, HashSet};

use gpufs_compute::kernels::path_build::path_of;
use gpufs_format::segments::SEGMENT_SLOTS;
use gpufs_format::{DirentRecord, FileKind, InodeRecord, ROOT_INO};

use super::Filesystem;
use crate::error::FsResult;
use crate::namespace::Namespace;

/// One change, paths from the root ("/a/b").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Created(Vec<u8>),
    Deleted(Vec<u8>),
    Modified(Vec<u8>),
    Renamed { from: Vec<u8>, to: Vec<u8> },
}

/// Inode `ino` is one file in both: live in each with one generation.
fn same_file(old: &Namespace, new: &Namespace, ino: u32) -> bool {
    match (old.inode(ino), new.inode(ino)) {
        (Some(a), Some(b)) => a.generation == b.generation,
        _ => false,
    }
}

/// The path of entry `id` of `ns`.
fn path(ns: &Namespace, id: u32) -> Vec<u8> {
    let mut p = Vec::new();
    path_of(&ns.view(), id, &mut p);
    p
}

/// Entry ids of `ns` naming each inode of `want`, found in one pass (a bit per inode
/// slot to test each entry against).
fn entries_naming(ns: &Namespace, want: &HashSet<u32>) -> BTreeMap<u32, Vec<u32>> {
    let mut out: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if want.is_empty() {
        return out;
    }
    let mut bits = vec![0u64; ns.inode_slots().div_ceil(64)];
    for &ino in want {
        if let Some(w) = bits.get_mut(ino as usize / 64) {
            *w |= 1 << (ino % 64);
        }
    }
    let wanted = |ino: u32| {
        bits.get(ino as usize / 64)
            .is_some_and(|w| w >> (ino % 64) & 1 == 1)
    };
    for (id, d) in ns.live_dirents() {
        if wanted(d.ino) {
            out.entry(d.ino).or_default().push(id);
        }
    }
    out
}

/// `ranges` (slot ranges where `old` and `new` differ) and the segments of the
/// directories of `old` naming a file `other` says is another file on the other side: such a
/// slot's own segment changed, but an entry naming it may read the same on both sides in
/// a directory whose segment did not. (An entry that reads the same on both sides is in
/// `old`, so `old` alone is searched.) A directory's entry is known; a file's links are
/// counted in the directories of `ranges` first, and the whole entry table is searched
/// only when some are elsewhere.
pub(super) fn with_parents_of(
    old: &Namespace,
    ranges: &[(u32, u32)],
    other: impl Fn(u32) -> bool,
) -> Vec<(u32, u32)> {
    let mut out = ranges.to_vec();
    let segment_of = |dir: u32| {
        let first = dir / SEGMENT_SLOTS * SEGMENT_SLOTS;
        (first, first.saturating_add(SEGMENT_SLOTS))
    };
    let mut files: HashSet<u32> = HashSet::new();
    for ino in ranges.iter().flat_map(|&(first, end)| first..end) {
        if !other(ino) {
            continue;
        }
        match old.inode(ino) {
            Some(r) if r.kind() == Some(FileKind::Directory) => {
                if let Some(id) = old.entry_of_dir(ino) {
                    out.push(segment_of(old.dirent(id).parent));
                }
            }
            Some(_) => {
                files.insert(ino);
            }
            None => {}
        }
    }
    if !files.is_empty() {
        // Links found in the directories already compared.
        let mut seen: hashbrown::HashMap<u32, u32> = hashbrown::HashMap::new();
        for (_, d) in dirents_in(old, Some(ranges)) {
            if files.contains(&d.ino) {
                *seen.entry(d.ino).or_default() += 1;
            }
        }
        files.retain(|ino| {
            let links = old.inode(*ino).map_or(0, |r| r.nlink);
            seen.get(ino).copied().unwrap_or(0) < links
        });
    }
    for &id in entries_naming(old, &files).values().flatten() {
        out.push(segment_of(old.dirent(id).parent));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Live inodes of `ns` in the slot ranges `only` (every one when `None`).
pub(super) fn inodes_in<'a>(
    ns: &'a Namespace,
    only: Option<&'a [(u32, u32)]>,
) -> Box<dyn Iterator<Item = (u32, &'a InodeRecord)> + 'a> {
    match only {
        None => Box::new(ns.live_inode_iter()),
        Some(ranges) => Box::new(ranges.iter().flat_map(move |&(first, end)| {
            let end = end.min(ns.inode_slots() as u32);
            (first..end).filter_map(move |ino| ns.inode(ino).map(|r| (ino, r)))
        })),
    }
}

/// Live entries of `ns` (with their ids) of the directories in the slot ranges `only`
/// (every one when `None`).
pub(super) fn dirents_in<'a>(
    ns: &'a Namespace,
    only: Option<&'a [(u32, u32)]>,
) -> Box<dyn Iterator<Item = (u32, &'a DirentRecord)> + 'a> {
    match only {
        None => Box::new(ns.live_dirents()),
        Some(_) => Box::new(
            inodes_in(ns, only)
                .filter(|(_, r)| r.kind() == Some(FileKind::Directory))
                .flat_map(move |(dir, _)| ns.entries_after(dir, 0).map(|(_, id)| id))
                .map(move |id| (id, ns.dirent(id))),
        ),
    }
}

/// The entries of `a` (ids) not in `b` as they are: for a directory that is one file in
/// both, its lists merged by cookie; for any other, all of them.
fn entries_gone(
    a: &Namespace,
    b: &Namespace,
    same: &impl Fn(u32) -> bool,
    only: Option<&[(u32, u32)]>,
) -> Vec<u32> {
    let mut gone = Vec::new();
    for (dir, _) in inodes_in(a, only).filter(|(_, r)| r.kind() == Some(FileKind::Directory)) {
        let mine: Vec<(u64, u32)> = a.entries_after(dir, 0).collect();
        if !same(dir) {
            gone.extend(mine.iter().map(|(_, id)| *id));
            continue;
        }
        let theirs: Vec<(u64, u32)> = b.entries_after(dir, 0).collect();
        let mut k = 0;
        for (cookie, id) in mine {
            while k < theirs.len() && theirs[k].0 < cookie {
                k += 1;
            }
            let kept = theirs.get(k).is_some_and(|&(c, other)| {
                let (x, y) = (a.dirent(id), b.dirent(other));
                c == cookie
                    && x.ino == y.ino
                    && x.kind == y.kind
                    && same(x.ino)
                    && a.name_bytes(x) == b.name_bytes(y)
            });
            if !kept {
                gone.push(id);
            }
        }
    }
    gone
}

/// Paths of entries that moved, by the inode they name.
type Moves = BTreeMap<u32, Vec<Vec<u8>>>;

/// Entries `ids` of `ns` that went (or came): those naming a file of both sides are its
/// moves; the others are `lone` changes (its file was deleted, or created).
fn split(
    ns: &Namespace,
    ids: Vec<u32>,
    same: &impl Fn(u32) -> bool,
    moves: &mut Moves,
    out: &mut Vec<Change>,
    lone: fn(Vec<u8>) -> Change,
) {
    for id in ids {
        let ino = ns.dirent(id).ino;
        if same(ino) {
            moves.entry(ino).or_default().push(path(ns, id));
        } else {
            out.push(lone(path(ns, id)));
        }
    }
}

/// The changes from `old` to `new`, sorted by path.
#[cfg(test)]
pub fn diff_namespaces(old: &Namespace, new: &Namespace) -> Vec<Change> {
    diff_namespaces_in(old, new, None)
}

/// The changes from `old` to `new`, sorted by path, where the two differ only in the
/// inode slot ranges `only` (`None`: anywhere).
pub fn diff_namespaces_in(
    old: &Namespace,
    new: &Namespace,
    only: Option<&[(u32, u32)]>,
) -> Vec<Change> {
    let same = |ino: u32| same_file(old, new, ino);
    // A slot holding another file on each side.
    let replaced = |ino: u32| match (old.inode(ino), new.inode(ino)) {
        (Some(a), Some(b)) => a.generation != b.generation,
        _ => false,
    };
    let only = only.map(|ranges| with_parents_of(old, ranges, replaced));
    let only = only.as_deref();
    let gone = entries_gone(old, new, &same, only);
    let came = entries_gone(new, old, &same, only);
    let mut out = Vec::new();
    let mut moved_from = Moves::new();
    let mut moved_to = Moves::new();
    split(old, gone, &same, &mut moved_from, &mut out, Change::Deleted);
    split(new, came, &same, &mut moved_to, &mut out, Change::Created);
    let moved: HashSet<u32> = moved_from.keys().chain(moved_to.keys()).copied().collect();
    for ino in &moved {
        let from = moved_from.remove(ino).unwrap_or_default();
        let to = moved_to.get(ino).cloned().unwrap_or_default();
        if let ([f], [t]) = (from.as_slice(), to.as_slice()) {
            out.push(Change::Renamed {
                from: f.clone(),
                to: t.clone(),
            });
        } else {
            out.extend(from.into_iter().map(Change::Deleted));
            out.extend(to.into_iter().map(Change::Created));
        }
    }
    // Not the ctime alone: a rename or a link moves it.
    let modified: HashSet<u32> = inodes_in(new, only)
        .filter(|(ino, _)| same(*ino))
        .filter(|(ino, rb)| {
            old.inode(*ino).is_some_and(|ra| {
                (ra.size, ra.mtime_ns, ra.mode, ra.uid, ra.gid)
                    != (rb.size, rb.mtime_ns, rb.mode, rb.uid, rb.gid)
                    || old.extents(*ino) != new.extents(*ino)
                    || old.xattrs(*ino) != new.xattrs(*ino)
            })
        })
        .map(|(ino, _)| ino)
        .collect();
    let need: HashSet<u32> = modified
        .iter()
        .filter(|i| **i != ROOT_INO && !moved_to.contains_key(i))
        .copied()
        .collect();
    let found = entries_naming(new, &need);
    for ino in &modified {
        let p = if *ino == ROOT_INO {
            Some(b"/".to_vec())
        } else if let Some(p) = moved_to.get(ino).and_then(|v| v.first()) {
            Some(p.clone())
        } else {
            found
                .get(ino)
                .and_then(|ids| ids.first())
                .map(|&id| path(new, id))
        };
        if let Some(p) = p {
            out.push(Change::Modified(p));
        }
    }
    // By path, and equal paths (a link gone and another come) in one order.
    out.sort_by(|x, y| key(x).cmp(key(y)).then_with(|| x.cmp(y)));
    out
}

fn key(c: &Change) -> &[u8] {
    match c {
        Change::Created(p) | Change::Deleted(p) | Change::Modified(p) => p,
        Change::Renamed { to, .. } => to,
    }
}

impl Filesystem {
    /// The changes from snapshot `from` to snapshot `to`, or to the live filesystem when
    /// `to` is `None`.
    pub fn diff(&self, from: &[u8], to: Option<&[u8]>) -> FsResult<Vec<Change>> {
        // Through the loaded views: a second diff of the same snapshots loads nothing.
        let id = |name: &[u8]| self.lock().vol.snapshot(name).map(|r| r.id);
        let old = self.snapshot_view(id(from)?)?;
        let changes = match to {
            Some(name) => {
                let new = self.snapshot_view(id(name)?)?;
                let slots = old.ns.inode_slots().max(new.ns.inode_slots());
                let only = old.segments.differing(&new.segments, slots);
                diff_namespaces_in(&old.ns, &new.ns, Some(&only))
            }
            None => {
                let g = self.lock();
                let slots = old.ns.inode_slots().max(g.vol.namespace().inode_slots());
                let only = old.segments.differing(&g.vol.live_segment_ids(), slots);
                diff_namespaces_in(&old.ns, g.vol.namespace(), Some(&only))
            }
        };
        Ok(changes)
    }
}
