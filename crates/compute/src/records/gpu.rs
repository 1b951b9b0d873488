//! Record batches on the device: a batch larger than one storage binding is cut into
//! [`GpuPart`]s, each uploaded and dispatched on its own; the kernels never see the cut.

use std::ops::Range;

use super::RecordBatch;
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::GpuContext;

/// Records `range` of a batch, uploaded: `data` holds their packed bytes (starting with
/// record `range.start` at byte 0) and `meta` one `vec2<u32>` per record, its byte start
/// in `data` and its length.
pub struct GpuPart {
    pub range: Range<usize>,
    pub data: wgpu::Buffer,
    pub meta: wgpu::Buffer,
    /// Bytes of `data` that hold records (gaps included).
    pub data_bytes: u64,
    /// Byte start and length of each record, as in `meta`.
    pub meta_host: Vec<[u32; 2]>,
}

impl GpuPart {
    pub fn records(&self) -> usize {
        self.range.len()
    }
}

/// Parts no larger than this go in one upload: well under every binding limit, and small
/// enough that the next part's upload overlaps with this one's kernel.
pub const PART_BYTES: u64 = 256 << 20;

/// Uploads `batch` part by part, each at most [`PART_BYTES`] and the context's largest
/// binding.
pub fn upload_parts(ctx: &GpuContext, batch: &RecordBatch) -> ComputeResult<Vec<GpuPart>> {
    let max = ctx.max_binding.min(PART_BYTES);
    let mut out = Vec::new();
    for range in batch.parts(max) {
        out.push(upload_part(ctx, batch, range)?);
    }
    Ok(out)
}

/// Uploads records `range` of `batch`.
pub fn upload_part(
    ctx: &GpuContext,
    batch: &RecordBatch,
    range: Range<usize>,
) -> ComputeResult<GpuPart> {
    if range.is_empty() {
        return Err(ComputeError::TooLarge("an empty part".into()));
    }
    let base = batch.starts[range.start];
    let last = range.end - 1;
    let end = batch.starts[last] + u64::from(batch.lens[last]);
    let data_bytes = end - base;
    if data_bytes > ctx.max_binding {
        return Err(ComputeError::TooLarge(format!(
            "{data_bytes} bytes of records in one binding"
        )));
    }
    let meta_host: Vec<[u32; 2]> = range
        .clone()
        .map(|i| [(batch.starts[i] - base) as u32, batch.lens[i]])
        .collect();
    let data = ctx.upload("records", &batch.bytes[base as usize..end as usize]);
    let meta = ctx.upload("record meta", bytemuck::cast_slice(&meta_host));
    Ok(GpuPart {
        range,
        data,
        meta,
        data_bytes,
        meta_host,
    })
}
