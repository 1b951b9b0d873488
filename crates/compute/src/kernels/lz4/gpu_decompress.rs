//! GPU LZ4 block decompression (kernels/lz4_decompress.wgsl): one workgroup per record,
//! in three steps ([`upload`], [`run`], [`read`]) so the kernel can be timed alone.

use std::ops::Range;

use super::{output_layout, Decompressed, Lz4Error, DECOMPRESS};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{GpuContext, Slot};
use crate::records::{upload_part, GpuPart, RecordBatch, PART_BYTES};

const SOURCE: &str = include_str!("../../../kernels/lz4_decompress.wgsl");

/// Status codes the GPU decompressor writes per record (code, bytes decoded).
const STATUS_OK: u32 = 0;
const STATUS_MALFORMED: u32 = 1;
const STATUS_TOO_LONG: u32 = 2;
const STATUS_TOO_SHORT: u32 = 3;

/// The host status of a GPU status pair.
fn status_of(code: u32, got: u32, expected: u32) -> Result<(), Lz4Error> {
    match code {
        STATUS_OK => Ok(()),
        STATUS_TOO_LONG => Err(Lz4Error::TooLong { expected }),
        STATUS_TOO_SHORT => Err(Lz4Error::TooShort { expected, got }),
        STATUS_MALFORMED => Err(Lz4Error::Malformed),
        _ => Err(Lz4Error::Malformed),
    }
}

/// Output bytes a record may add per dispatch: larger records take several dispatches,
/// the decoder keeping its state on the device in between (software drivers cap the
/// loop iterations of one workgroup).
pub const ROUND_BYTES: u32 = 64 << 10;
/// Words of decoder state per record, as `STATE` in the kernel.
const STATE_WORDS: u64 = 12;

/// One part of the batch on the device: its blocks, and where each record's output goes
/// in the part's output buffer.
pub struct DecompressPart {
    pub input: GpuPart,
    /// `vec2<u32>(byte start in the output buffer, expected length)` per record.
    pub out_meta: wgpu::Buffer,
    /// Byte start of the part's first record in the output batch.
    pub out_base: u64,
    /// Bytes of the part's output buffer.
    pub out_bytes: u64,
    /// Largest expected size in the part.
    pub max_size: u32,
}

/// Blocks uploaded, with the host output batch (zeroed records of the expected sizes)
/// that [`read`] fills.
pub struct DecompressUpload {
    pub parts: Vec<DecompressPart>,
    pub layout: RecordBatch,
    pub sizes: Vec<u32>,
}

/// The device outputs of one part: decoded bytes and a `(code, bytes)` status per record.
pub struct DecompressOutput {
    pub out: wgpu::Buffer,
    pub status: wgpu::Buffer,
}

/// Device outputs of every part, in part order.
pub struct DecompressRun {
    pub parts: Vec<DecompressOutput>,
}

/// Ranges of records whose blocks and outputs both fit `max` bytes each.
fn part_ranges(blocks: &RecordBatch, layout: &RecordBatch, max: u64) -> Vec<Range<usize>> {
    let span = |b: &RecordBatch, first: usize, last: usize| {
        b.starts()[last] + u64::from(b.lens()[last]) - b.starts()[first]
    };
    let mut out = Vec::new();
    let mut first = 0;
    while first < blocks.len() {
        let mut end = first + 1;
        while end < blocks.len()
            && span(blocks, first, end) <= max
            && span(layout, first, end) <= max
        {
            end += 1;
        }
        out.push(first..end);
        first = end;
    }
    out
}

/// Step 1: uploads the blocks and the output layout. `sizes[i]` is the length block `i`
/// must decode to (at most the largest record size).
pub fn upload(
    ctx: &GpuContext,
    blocks: &RecordBatch,
    sizes: &[u32],
) -> ComputeResult<DecompressUpload> {
    let layout = output_layout(blocks, sizes)?;
    let max = ctx.max_binding.min(PART_BYTES);
    let mut parts = Vec::new();
    for range in part_ranges(blocks, &layout, max) {
        let out_base = layout.starts()[range.start];
        let last = range.end - 1;
        let out_bytes = layout.starts()[last] + u64::from(layout.lens()[last]) - out_base;
        if out_bytes > ctx.max_binding {
            return Err(ComputeError::TooLarge(format!(
                "{out_bytes} bytes of output in one binding"
            )));
        }
        let meta: Vec<[u32; 2]> = range
            .clone()
            .map(|i| [(layout.starts()[i] - out_base) as u32, layout.lens()[i]])
            .collect();
        let out_meta = ctx.upload("lz4 output meta", bytemuck::cast_slice(&meta));
        let max_size = range
            .clone()
            .filter_map(|i| layout.lens().get(i).copied())
            .max()
            .unwrap_or(0);
        let input = upload_part(ctx, blocks, range)?;
        parts.push(DecompressPart {
            input,
            out_meta,
            out_base,
            out_bytes,
            max_size,
        });
    }
    Ok(DecompressUpload {
        parts,
        layout,
        sizes: sizes.to_vec(),
    })
}

/// Step 2: decodes every uploaded part and waits until the device is done.
pub fn run(ctx: &GpuContext, up: &DecompressUpload) -> ComputeResult<DecompressRun> {
    let kernel = ctx.kernel(
        DECOMPRESS,
        SOURCE,
        &[],
        &[
            Slot::Uniform,
            Slot::Read,
            Slot::Read,
            Slot::Read,
            Slot::ReadWrite,
            Slot::ReadWrite,
            Slot::ReadWrite,
        ],
    )?;
    let g0 = ctx.no_arrays_group(&kernel);
    // Workgroups one dispatch may have.
    let per = u64::from(ctx.max_groups_per_dim).pow(2);
    let mut parts = Vec::with_capacity(up.parts.len());
    for p in &up.parts {
        let count = p.input.records() as u64;
        let out = ctx.zeroed("lz4 output", p.out_bytes);
        let status = ctx.zeroed("lz4 status", count * 8);
        let state = ctx.zeroed("lz4 decoder state", count * STATE_WORDS * 4);
        let rounds = p.max_size.div_ceil(ROUND_BYTES) + 1;
        let mut groups = Vec::new();
        let mut first = 0u64;
        while first < count {
            let n = per.min(count - first);
            let params = ctx.uniform(bytemuck::cast_slice(&[
                n as u32,
                ROUND_BYTES,
                first as u32,
                0,
            ]));
            let g1 = ctx.own_group(
                &kernel,
                &[
                    &params,
                    &p.input.data,
                    &p.input.meta,
                    &p.out_meta,
                    &out,
                    &status,
                    &state,
                ],
            );
            groups.push((g1, n));
            first += n;
        }
        let mut enc = ctx.encoder();
        for _ in 0..rounds {
            for (g1, n) in &groups {
                ctx.dispatch_groups(&mut enc, &kernel, [&g0, g1], *n)?;
            }
        }
        ctx.submit(enc)?;
        parts.push(DecompressOutput { out, status });
    }
    ctx.wait()?;
    Ok(DecompressRun { parts })
}

/// Step 3: copies the decoded records and their statuses back.
pub fn read(
    ctx: &GpuContext,
    up: DecompressUpload,
    run: &DecompressRun,
) -> ComputeResult<Decompressed> {
    let mut data = up.layout;
    let mut status = Vec::with_capacity(data.len());
    for (p, o) in up.parts.iter().zip(&run.parts) {
        let bytes = ctx.finish_and_read(ctx.encoder(), &o.out, p.out_bytes)?;
        let codes = ctx.finish_and_read(ctx.encoder(), &o.status, p.input.records() as u64 * 8)?;
        let codes: &[[u32; 2]] = bytemuck::cast_slice(&codes);
        for (i, c) in p.input.range.clone().zip(codes) {
            let start = data.starts().get(i).map_or(0, |&s| s - p.out_base) as usize;
            let rec = data.get_mut(i);
            let src = bytes
                .get(start..start + rec.len())
                .ok_or_else(|| ComputeError::Device("short lz4 readback".into()))?;
            rec.copy_from_slice(src);
            let expected = up.sizes.get(i).copied().unwrap_or(0);
            status.push(status_of(c[0], c[1], expected));
        }
    }
    if status.len() != data.len() {
        return Err(ComputeError::Device("lz4 status missing".into()));
    }
    Ok(Decompressed { data, status })
}

/// Decompresses on the GPU: [`upload`], [`run`] and [`read`] in a row. Same result as
/// [`super::decompress_cpu`].
pub fn gpu(ctx: &GpuContext, blocks: &RecordBatch, sizes: &[u32]) -> ComputeResult<Decompressed> {
    let up = upload(ctx, blocks, sizes)?;
    let run = run(ctx, &up)?;
    read(ctx, up, &run)
}
