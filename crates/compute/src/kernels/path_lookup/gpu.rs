//! The GPU side of path lookup: kernels/path_lookup.wgsl over the mirror's dirents, names,
//! index slots and `dir_entry`, one invocation per path.

use super::NAME;
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{arrays_group, GpuContext, Slot};
use crate::mirror::NamespaceMirror;

const SOURCE: &str = include_str!("../../../kernels/path_lookup.wgsl");

/// The GPU kernel: same inodes as [`super::cpu`]. A batch whose path bytes exceed one binding
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
