//! Batched path lookup: N paths to inode numbers by probing the flat dirent index with
//! `name_hash(parent, name)`, the same index and hash the core's lookup uses. The CPU
//! twin of kernels/path_lookup.wgsl. Empty components and "." are skipped, ".." goes up
//! (the root's parent is the root), every component but the last must be a directory,
//! symlinks are not followed; a path that does not resolve gives 0.

use gpufs_format::{name_hash, FileKind, NAME_MAX, ROOT_INO};
use rayon::prelude::*;

use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{arrays_group, GpuContext, Slot};
use crate::index::{fmix32, EMPTY, TOMBSTONE};
use crate::mirror::NamespaceMirror;
use crate::view::NamespaceView;

pub const NAME: &str = "path_lookup";
const SOURCE: &str = include_str!("../../kernels/path_lookup.wgsl");

/// The live entry `name` in directory `parent`, probing `view.index`.
pub fn lookup(view: &NamespaceView<'_>, parent: u32, name: &[u8]) -> Option<u32> {
    let slots = view.index;
    if slots.is_empty() || !slots.len().is_power_of_two() {
        return None;
    }
    let h = name_hash(parent, name);
    let mask = slots.len() - 1;
    let mut slot = fmix32(h) as usize & mask;
    for _ in 0..slots.len() {
        match slots[slot] {
            EMPTY => return None,
            TOMBSTONE => {}
            id => {
                if let Some(d) = view.dirents.get(id as usize) {
                    if d.name_hash == h
                        && d.parent == parent
                        && d.ino != 0
                        && view.name_of(d) == name
                    {
                        return Some(id);
                    }
                }
            }
        }
        slot = (slot + 1) & mask;
    }
    None
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

/// The GPU kernel: same inodes as [`cpu`]. A batch whose path bytes exceed one binding
/// runs as several dispatches, each under the limit.
pub fn gpu(ctx: &GpuContext, mirror: &NamespaceMirror, paths: &[&[u8]]) -> ComputeResult<Vec<u32>> {
    let limit = ctx.max_binding.min(u64::from(u32::MAX));
    let mut found = Vec::with_capacity(paths.len());
    let mut start = 0;
    while start < paths.len() {
        let mut end = start;
        let mut bytes = 0u64;
        while end < paths.len() && (end == start || bytes + paths[end].len() as u64 <= limit) {
            bytes += paths[end].len() as u64;
            end += 1;
        }
        found.extend(gpu_part(ctx, mirror, &paths[start..end])?);
        start = end;
    }
    Ok(found)
}

/// One dispatch over paths whose bytes fit one binding.
fn gpu_part(
    ctx: &GpuContext,
    mirror: &NamespaceMirror,
    paths: &[&[u8]],
) -> ComputeResult<Vec<u32>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let kernel = ctx.kernel(
        NAME,
        SOURCE,
        &["dirents", "names", "index", "dir_entry"],
        &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite],
    )?;
    let total: usize = paths.iter().map(|p| p.len()).sum();
    if total as u64 > ctx.max_binding {
        return Err(ComputeError::TooLarge(format!(
            "{total} bytes of paths in one batch"
        )));
    }
    let mut packed = Vec::with_capacity(total);
    let mut spans = Vec::with_capacity(paths.len() * 2);
    for p in paths {
        spans.push(packed.len() as u32);
        spans.push(p.len() as u32);
        packed.extend_from_slice(p);
    }
    let count = u32::try_from(paths.len())
        .map_err(|_| ComputeError::TooLarge(format!("{} paths", paths.len())))?;
    let params = [
        count,
        mirror.dirent_count,
        mirror.index_slots,
        mirror.dir_entry_count,
    ];
    let uniform = ctx.uniform(bytemuck::cast_slice(&params));
    let paths_buf = ctx.upload("paths", &packed);
    let spans_buf = ctx.upload("spans", bytemuck::cast_slice(&spans));
    let found = ctx.zeroed("found", paths.len() as u64 * 4);
    let g0 = arrays_group(
        ctx,
        &kernel,
        &[
            &mirror.dirents,
            &mirror.names,
            &mirror.index,
            &mirror.dir_entry,
        ],
    )?;
    let g1 = ctx.own_group(&kernel, &[&uniform, &paths_buf, &spans_buf, &found]);
    let mut enc = ctx.encoder();
    ctx.dispatch(&mut enc, &kernel, [&g0, &g1], paths.len() as u64)?;
    let bytes = ctx.finish_and_read(enc, &found, paths.len() as u64 * 4)?;
    Ok(bytemuck::cast_slice(&bytes).to_vec())
}
