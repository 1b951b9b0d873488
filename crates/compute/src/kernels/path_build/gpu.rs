//! The GPU side of path building: kernels/path_build.wgsl over the mirror's dirents,
//! names and `dir_entry`; pass 0 gives every path's length, pass 1 writes the bytes,
//! in batches whose output fits one binding.

use super::{PathList, NAME};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{arrays_group, GpuContext, Kernel, Slot};
use crate::mirror::NamespaceMirror;

const SOURCE: &str = include_str!("../../../kernels/path_build.wgsl");

/// The GPU kernel: same paths as [`super::cpu`]. Lengths first, then the bytes, in
/// batches that fit one binding.
pub fn gpu(ctx: &GpuContext, mirror: &NamespaceMirror, ids: &[u32]) -> ComputeResult<PathList> {
    let mut list = PathList {
        bytes: Vec::new(),
        offsets: vec![0],
    };
    if ids.is_empty() {
        return Ok(list);
    }
    let pass = Passes::new(ctx, mirror)?;
    let lens = pass.lengths(ids)?;
    // Output of one batch: half a binding (at least 64 KiB).
    let budget = (ctx.max_binding / 2).max(1 << 16) as usize;
    let mut start = 0;
    while start < ids.len() {
        let mut end = start;
        let mut bytes = 0usize;
        while end < ids.len() && (end == start || bytes + lens[end] as usize <= budget) {
            bytes += lens[end] as usize;
            end += 1;
        }
        // Exactly `bytes` bytes: the batch's paths end to end.
        let got = pass.bytes(&ids[start..end], &lens[start..end], bytes)?;
        list.bytes.extend_from_slice(&got);
        for &len in &lens[start..end] {
            let last = list.offsets.last().copied().unwrap_or(0);
            list.offsets.push(last + len as usize);
        }
        start = end;
    }
    Ok(list)
}

/// The kernel and its group 0 (the mirror's arrays), for both passes.
struct Passes<'a> {
    ctx: &'a GpuContext,
    mirror: &'a NamespaceMirror,
    kernel: std::sync::Arc<Kernel>,
    arrays: wgpu::BindGroup,
}

impl<'a> Passes<'a> {
    fn new(ctx: &'a GpuContext, mirror: &'a NamespaceMirror) -> ComputeResult<Passes<'a>> {
        let kernel = ctx.kernel(
            NAME,
            SOURCE,
            &["dirents", "names", "dir_entry"],
            &[
                Slot::Uniform,
                Slot::Read,
                Slot::ReadWrite,
                Slot::Read,
                Slot::ReadWrite,
            ],
        )?;
        let arrays = arrays_group(
            ctx,
            &kernel,
            &[&mirror.dirents, &mirror.names, &mirror.dir_entry],
        )?;
        Ok(Passes {
            ctx,
            mirror,
            kernel,
            arrays,
        })
    }

    /// The uniform of one pass over `count` ids.
    fn params(&self, count: usize, pass: u32) -> ComputeResult<wgpu::Buffer> {
        let count = u32::try_from(count)
            .map_err(|_| ComputeError::TooLarge(format!("{count} paths in one call")))?;
        let p = [
            count,
            pass,
            self.mirror.dirent_count,
            self.mirror.dir_entry_count,
        ];
        Ok(self.ctx.uniform(bytemuck::cast_slice(&p)))
    }

    /// Pass 0: the length of every path (0 for a broken chain).
    fn lengths(&self, ids: &[u32]) -> ComputeResult<Vec<u32>> {
        let ctx = self.ctx;
        let ids_buf = ctx.upload("ids", bytemuck::cast_slice(ids));
        let lens_buf = ctx.zeroed("lens", ids.len() as u64 * 4);
        let unused_in = ctx.zeroed("unused", 16);
        let unused_out = ctx.zeroed("unused", 16);
        let u0 = self.params(ids.len(), 0)?;
        let g1 = ctx.own_group(
            &self.kernel,
            &[&u0, &ids_buf, &lens_buf, &unused_in, &unused_out],
        );
        let mut enc = ctx.encoder();
        ctx.dispatch(
            &mut enc,
            &self.kernel,
            [&self.arrays, &g1],
            ids.len() as u64,
        )?;
        let lens_bytes = ctx.finish_and_read(enc, &lens_buf, ids.len() as u64 * 4)?;
        Ok(bytemuck::cast_slice(&lens_bytes).to_vec())
    }

    /// Pass 1 over one batch: the paths of `ids` (of `lens` bytes, `bytes` in all) end
    /// to end.
    fn bytes(&self, ids: &[u32], lens: &[u32], bytes: usize) -> ComputeResult<Vec<u8>> {
        let ctx = self.ctx;
        let offsets: Vec<u32> = lens
            .iter()
            .scan(0u32, |at, &len| {
                let here = *at;
                *at += len;
                Some(here)
            })
            .collect();
        let batch_ids = ctx.upload("ids", bytemuck::cast_slice(ids));
        let batch_lens = ctx.upload("lens", bytemuck::cast_slice(lens));
        let offs = ctx.upload("offsets", bytemuck::cast_slice(&offsets));
        let out_bytes = bytes.next_multiple_of(4).max(4) as u64;
        let out = ctx.pool.take(&ctx.device, out_bytes);
        let u1 = self.params(ids.len(), 1)?;
        let g1 = ctx.own_group(&self.kernel, &[&u1, &batch_ids, &batch_lens, &offs, &out]);
        let mut enc = ctx.encoder();
        enc.clear_buffer(&out, 0, Some(out_bytes));
        ctx.dispatch(
            &mut enc,
            &self.kernel,
            [&self.arrays, &g1],
            ids.len() as u64,
        )?;
        let got = ctx.finish_and_read(enc, &out, bytes as u64);
        self.ctx.pool.give(out);
        got
    }
}
