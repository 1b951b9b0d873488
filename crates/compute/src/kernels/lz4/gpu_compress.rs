//! GPU LZ4 block compression (kernels/lz4_compress.wgsl): one invocation per 4 KiB
//! segment of a record, in three steps ([`upload`], [`run`], [`read`]) so the kernel can
//! be timed alone.

use super::{Compressed, COMPRESS};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{GpuContext, Slot, WORKGROUP};
use crate::records::{upload_parts, GpuPart, RecordBatch};

const SOURCE: &str = include_str!("../../../kernels/lz4_compress.wgsl");

/// Bytes of a segment, as `SEG` in the kernel.
pub const SEGMENT_BYTES: u32 = 4096;

/// One uploaded part with its segment table.
pub struct CompressPart {
    pub input: GpuPart,
    /// `vec2<u32>(record in the part, segment number in the record)` per segment.
    pub segs: wgpu::Buffer,
    /// First segment of each record of the part.
    pub rec_seg: wgpu::Buffer,
    pub segments: u32,
}

/// The batch on the device, part by part.
pub struct CompressUpload {
    pub parts: Vec<CompressPart>,
    pub records: usize,
}

/// Device outputs of one part: the block length of each record (0: not shrunk) and the
/// blocks, each at its record's byte start.
pub struct CompressOutput {
    pub block_lens: wgpu::Buffer,
    pub out: wgpu::Buffer,
}

/// Device outputs of every part, in part order.
pub struct CompressRun {
    pub parts: Vec<CompressOutput>,
}

/// Step 1: uploads the records and their segment tables.
pub fn upload(ctx: &GpuContext, batch: &RecordBatch) -> ComputeResult<CompressUpload> {
    let mut parts = Vec::new();
    for input in upload_parts(ctx, batch)? {
        let mut segs: Vec<[u32; 2]> = Vec::new();
        let mut rec_seg: Vec<u32> = Vec::with_capacity(input.records());
        for (r, m) in input.meta_host.iter().enumerate() {
            rec_seg.push(segs.len() as u32);
            for k in 0..m[1].div_ceil(SEGMENT_BYTES) {
                segs.push([r as u32, k]);
            }
        }
        let segments = u32::try_from(segs.len())
            .map_err(|_| ComputeError::TooLarge(format!("{} segments", segs.len())))?;
        parts.push(CompressPart {
            segs: ctx.upload("lz4 segments", bytemuck::cast_slice(&segs)),
            rec_seg: ctx.upload("lz4 record segments", bytemuck::cast_slice(&rec_seg)),
            segments,
            input,
        });
    }
    Ok(CompressUpload {
        parts,
        records: batch.len(),
    })
}

/// Step 2: sizes, plans and writes the blocks of every part; waits until done.
pub fn run(ctx: &GpuContext, up: &CompressUpload) -> ComputeResult<CompressRun> {
    let kernel = ctx.kernel(
        COMPRESS,
        SOURCE,
        &[],
        &[
            Slot::Uniform,
            Slot::Read,
            Slot::Read,
            Slot::Read,
            Slot::Read,
            Slot::ReadWrite,
            Slot::ReadWrite,
            Slot::ReadWrite,
        ],
    )?;
    let g0 = ctx.no_arrays_group(&kernel);
    // Invocations one dispatch may have.
    let per = (u64::from(ctx.max_groups_per_dim).pow(2) * u64::from(WORKGROUP))
        .min(u64::from(u32::MAX)) as u32;
    let mut parts = Vec::with_capacity(up.parts.len());
    for p in &up.parts {
        let records = p.input.records() as u32;
        let info = ctx.zeroed("lz4 segment info", u64::from(p.segments) * 32);
        let block_lens = ctx.zeroed("lz4 block lengths", u64::from(records) * 4);
        let out = ctx.zeroed("lz4 blocks", p.input.data_bytes);
        let mut enc = ctx.encoder();
        // Each phase in its own passes, so each sees the previous one's writes.
        let phases = [(0u32, p.segments), (1, records), (2, p.segments)];
        for (phase, count) in phases {
            let mut first = 0u32;
            while first < count {
                let n = per.min(count - first);
                let params = ctx.uniform(bytemuck::cast_slice(&[n, phase, first, 0]));
                let g1 = ctx.own_group(
                    &kernel,
                    &[
                        &params,
                        &p.input.data,
                        &p.input.meta,
                        &p.segs,
                        &p.rec_seg,
                        &info,
                        &block_lens,
                        &out,
                    ],
                );
                ctx.dispatch(&mut enc, &kernel, [&g0, &g1], u64::from(n))?;
                first += n;
            }
        }
        ctx.submit(enc)?;
        parts.push(CompressOutput { block_lens, out });
    }
    ctx.wait()?;
    Ok(CompressRun { parts })
}

/// Step 3: copies the blocks back.
pub fn read(ctx: &GpuContext, up: &CompressUpload, run: &CompressRun) -> ComputeResult<Compressed> {
    let mut lens: Vec<u32> = Vec::with_capacity(up.records);
    let mut packed: Vec<(Vec<u8>, usize)> = Vec::with_capacity(up.parts.len());
    for (p, o) in up.parts.iter().zip(&run.parts) {
        let got =
            ctx.finish_and_read(ctx.encoder(), &o.block_lens, p.input.records() as u64 * 4)?;
        let got: &[u32] = bytemuck::cast_slice(&got);
        lens.extend_from_slice(got);
        let bytes = ctx.finish_and_read(ctx.encoder(), &o.out, p.input.data_bytes)?;
        packed.push((bytes, p.input.records()));
    }
    let total: usize = lens.iter().map(|&l| l as usize).sum();
    let mut blocks = RecordBatch::with_capacity(up.records, total);
    let mut shrunk = Vec::with_capacity(up.records);
    let mut next = 0usize;
    for (p, (bytes, records)) in up.parts.iter().zip(&packed) {
        let part_lens = lens
            .get(next..next + records)
            .ok_or_else(|| ComputeError::Device("lz4 block lengths missing".into()))?;
        for (m, &len) in p.input.meta_host.iter().zip(part_lens) {
            let start = m[0] as usize;
            let block = if len > 0 && len < m[1] {
                bytes.get(start..start + len as usize)
            } else {
                None
            };
            blocks.push(block.unwrap_or(&[]))?;
            shrunk.push(block.is_some());
        }
        next += records;
    }
    if shrunk.len() != up.records {
        return Err(ComputeError::Device("lz4 block lengths missing".into()));
    }
    Ok(Compressed { blocks, shrunk })
}

/// Compresses on the GPU: [`upload`], [`run`] and [`read`] in a row.
pub fn gpu(ctx: &GpuContext, batch: &RecordBatch) -> ComputeResult<Compressed> {
    let up = upload(ctx, batch)?;
    let run = run(ctx, &up)?;
    read(ctx, &up, &run)
}
