//! Batched path lookup: N paths to inode numbers by probing the flat dirent index with
//! `name_hash(parent, name)`, the same index and hash the core's lookup uses. The CPU
//! twin of kernels/path_lookup.wgsl. Empty components and "." are skipped, ".." goes up
//! (the root's parent is the root), every component but the last must be a directory,
//! symlinks are not followed; a path that does not resolve gives 0.

use gpufs_format::{name_hash, FileKind, NAME_MAX, ROOT_INO};
use rayon::prelude::*;

use crate::index::probe;
use crate::view::NamespaceView;

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub use gpu::gpu;

pub const NAME: &str = "path_lookup";

/// The live entry `name` in directory `parent`, probing `view.index`.
pub fn lookup(view: &NamespaceView<'_>, parent: u32, name: &[u8]) -> Option<u32> {
    let h = name_hash(parent, name);
    probe(view.index, h, |id| {
        view.dirents.get(id as usize).is_some_and(|d| {
            d.name_hash == h && d.parent == parent && d.ino != 0 && view.name_of(d) == name
        })
    })
}

fn parent_of(view: &NamespaceView<'_>, dir: u32) -> u32 {
    if dir == ROOT_INO {
        return ROOT_INO;
    }
    view.entry_of_dir(dir)
        .map_or(ROOT_INO, |e| view.dirents[e as usize].parent)
}

/// The inode `path` names, 0 when it does not resolve.
pub fn resolve(view: &NamespaceView<'_>, path: &[u8]) -> u32 {
    let mut cur = ROOT_INO;
    let mut is_dir = true;
    for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if !is_dir {
            return 0;
        }
        match comp {
            b"." => {}
            b".." => cur = parent_of(view, cur),
            _ => {
                if comp.len() > NAME_MAX {
                    return 0;
                }
                let Some(e) = lookup(view, cur, comp) else {
                    return 0;
                };
                let d = &view.dirents[e as usize];
                cur = d.ino;
                is_dir = d.kind == FileKind::Directory as u8;
            }
        }
    }
    cur
}

/// CPU twin on every core.
pub fn cpu(view: &NamespaceView<'_>, paths: &[&[u8]]) -> Vec<u32> {
    paths.par_iter().map(|p| resolve(view, p)).collect()
}

/// CPU twin on one thread.
pub fn cpu_one_thread(view: &NamespaceView<'_>, paths: &[&[u8]]) -> Vec<u32> {
    paths.iter().map(|p| resolve(view, p)).collect()
}
