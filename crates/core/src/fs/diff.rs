//! `gpufs diff`: what changed between two snapshots, or a snapshot and the live
//! filesystem. Files are matched by inode number and generation (a number reused for
//! another file is another file): one only in the newer is created, only in the older
//! deleted; one in both whose paths differ is renamed, whose size, mtime, mode,
//! owner, records or xattrs differ is modified. Both namespaces are compared whole (O(files), no I/O beyond
//! loading a snapshot's namespace).

use std::collections::{BTreeSet, HashMap};

use gpufs_format::ROOT_INO;

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

/// Every path of every live inode of `ns`.
fn paths(ns: &Namespace) -> HashMap<u32, BTreeSet<Vec<u8>>> {
    let mut dir_path: HashMap<u32, Vec<u8>> = HashMap::new();
    dir_path.insert(ROOT_INO, Vec::new());
    for (dir, entry) in ns.dirs_below(ROOT_INO) {
        let d = ns.dirent(entry);
        if let Some(parent) = dir_path.get(&d.parent).cloned() {
            let mut p = parent;
            p.push(b'/');
            p.extend_from_slice(ns.name_bytes(d));
            dir_path.insert(dir, p);
        }
    }
    let mut out: HashMap<u32, BTreeSet<Vec<u8>>> = HashMap::new();
    out.entry(ROOT_INO).or_default().insert(b"/".to_vec());
    for (_, d) in ns.live_dirents() {
        if let Some(parent) = dir_path.get(&d.parent) {
            let mut p = parent.clone();
            p.push(b'/');
            p.extend_from_slice(ns.name_bytes(d));
            out.entry(d.ino).or_default().insert(p);
        }
    }
    out
}

/// The changes from `old` to `new`, sorted by path.
pub fn diff_namespaces(old: &Namespace, new: &Namespace) -> Vec<Change> {
    let (a, b) = (paths(old), paths(new));
    let mut out = Vec::new();
    for (ino, old_paths) in &a {
        let (Some(ra), new_rec) = (old.inode(*ino), new.inode(*ino)) else {
            continue;
        };
        let same_file = new_rec.is_some_and(|rb| rb.is_live() && rb.generation == ra.generation);
        let Some(new_paths) = b.get(ino).filter(|_| same_file) else {
            out.extend(old_paths.iter().cloned().map(Change::Deleted));
            continue;
        };
        let gone: Vec<&Vec<u8>> = old_paths.difference(new_paths).collect();
        let came: Vec<&Vec<u8>> = new_paths.difference(old_paths).collect();
        if gone.len() == 1 && came.len() == 1 {
            out.push(Change::Renamed {
                from: gone[0].clone(),
                to: came[0].clone(),
            });
        } else {
            out.extend(gone.into_iter().cloned().map(Change::Deleted));
            out.extend(came.into_iter().cloned().map(Change::Created));
        }
        let rb = new_rec.copied().unwrap_or(*ra);
        // Not the ctime alone: a rename or a link moves it.
        let changed = (ra.size, ra.mtime_ns, ra.mode, ra.uid, ra.gid)
            != (rb.size, rb.mtime_ns, rb.mode, rb.uid, rb.gid)
            || old.extents(*ino) != new.extents(*ino)
            || old.xattrs(*ino) != new.xattrs(*ino);
        if changed {
            if let Some(p) = new_paths.iter().next() {
                out.push(Change::Modified(p.clone()));
            }
        }
    }
    for (ino, new_paths) in &b {
        let Some(rb) = new.inode(*ino) else { continue };
        let known = a.contains_key(ino)
            && old
                .inode(*ino)
                .is_some_and(|ra| ra.is_live() && ra.generation == rb.generation);
        if !known {
            out.extend(new_paths.iter().cloned().map(Change::Created));
        }
    }
    out.sort_by(|x, y| key(x).cmp(key(y)));
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
        let g = self.lock();
        let old = g.vol.snapshot_namespace(&g.vol.snapshot(from)?)?;
        let changes = match to {
            Some(name) => {
                let new = g.vol.snapshot_namespace(&g.vol.snapshot(name)?)?;
                drop(g);
                diff_namespaces(&old, &new)
            }
            None => diff_namespaces(&old, g.vol.namespace()),
        };
        Ok(changes)
    }
}
