//! The GPU side of BLAKE3.
//!
//! Every chunk of every record of a part gets a slot (a record of n chunks owns n
//! consecutive slots; an empty record is one empty chunk).
//!
//! 1. `blake3_chunks`, one invocation per slot: the chunk's chaining value, from the key
//!    words (the IV unkeyed), counter = chunk index in its record. A one-chunk record is
//!    finished here with ROOT.
//! 2. `blake3`, once per tree level (up to 10 for 1 MiB records), one invocation per slot:
//!    node j of the next level is the parent of nodes 2j and 2j+1 of this one, an odd last
//!    node carried up unchanged, which is exactly BLAKE3's left-complete tree; the merge
//!    of a record's last two nodes is flagged ROOT and is its hash. Levels ping-pong
//!    between two scratch buffers.

use std::ops::Range;

use super::{Blake3Mode, NAME};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::rounds::{dispatch_in_rounds, Unit, Work};
use crate::gpu::{GpuContext, Kernel, Slot};
use crate::records::{self, GpuPart, RecordBatch};

const CHUNKS_KERNEL: &str = "blake3_chunks";
const COMPRESS_SOURCE: &str = include_str!("../../../kernels/blake3_compress.wgsl");
const CHUNKS_SOURCE: &str = include_str!("../../../kernels/blake3_chunks.wgsl");
const LEVEL_SOURCE: &str = include_str!("../../../kernels/blake3.wgsl");

/// Bytes of one BLAKE3 chunk.
const CHUNK_BYTES: u32 = 1024;
/// The KEYED_HASH domain flag.
const KEYED_HASH: u32 = 16;
/// BLAKE3's IV: the key words of unkeyed hashing.
const IV: [u32; 8] = [
    0x6A09_E667,
    0xBB67_AE85,
    0x3C6E_F372,
    0xA54F_F53A,
    0x510E_527F,
    0x9B05_688C,
    0x1F83_D9AB,
    0x5BE0_CD19,
];

impl Blake3Mode {
    /// The starting chaining value and the flag every compression carries.
    fn key_words_and_flags(&self) -> ([u32; 8], u32) {
        match self {
            Blake3Mode::Hash => (IV, 0),
            Blake3Mode::Keyed(key) => {
                let mut words = [0u32; 8];
                for (w, b) in words.iter_mut().zip(key.chunks_exact(4)) {
                    *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
                (words, KEYED_HASH)
            }
        }
    }
}

/// Chunks of a record of `len` bytes (an empty record is one empty chunk).
fn chunk_count(len: u32) -> u32 {
    len.div_ceil(CHUNK_BYTES).max(1)
}

/// One uploaded part with its chunk slots.
pub struct Blake3Part {
    pub part: GpuPart,
    /// Per chunk slot: its record in the part.
    chunk_rec: wgpu::Buffer,
    /// Per record: its first chunk slot.
    first_chunk: wgpu::Buffer,
    chunks: u64,
    /// Tree levels above the chunks of the part's largest record.
    levels: u32,
}

/// The device buffers holding the hashes, 8 words per record, per part.
pub struct Blake3Output {
    parts: Vec<(Range<usize>, wgpu::Buffer)>,
    records: usize,
}

/// Step 1: uploads `batch` in parts as large as the device allows (at most
/// [`records::PART_BYTES`]).
pub fn upload(ctx: &GpuContext, batch: &RecordBatch) -> ComputeResult<Vec<Blake3Part>> {
    upload_in_parts(ctx, batch, ctx.max_binding.min(records::PART_BYTES))
}

/// Step 1 with parts of at most `part_bytes` packed bytes each.
pub fn upload_in_parts(
    ctx: &GpuContext,
    batch: &RecordBatch,
    part_bytes: u64,
) -> ComputeResult<Vec<Blake3Part>> {
    let mut out = Vec::new();
    for range in batch.parts(part_bytes.max(1)) {
        let part = records::upload_part(ctx, batch, range)?;
        let mut chunk_rec: Vec<u32> = Vec::new();
        let mut first_chunk: Vec<u32> = Vec::with_capacity(part.records());
        let mut most = 1u32;
        for (r, &[_, len]) in part.meta_host.iter().enumerate() {
            let first = u32::try_from(chunk_rec.len())
                .map_err(|_| ComputeError::TooLarge("chunks in one part".into()))?;
            first_chunk.push(first);
            let n = chunk_count(len);
            most = most.max(n);
            chunk_rec.extend(std::iter::repeat_n(r as u32, n as usize));
        }
        out.push(Blake3Part {
            chunk_rec: ctx.upload("blake3 chunk records", bytemuck::cast_slice(&chunk_rec)),
            first_chunk: ctx.upload("blake3 first chunk", bytemuck::cast_slice(&first_chunk)),
            chunks: chunk_rec.len() as u64,
            levels: most.next_power_of_two().trailing_zeros(),
            part,
        });
    }
    Ok(out)
}

/// Group 1 of both kernels: params, key, data, meta, chunk records, first chunks, and
/// the two buffers each writes (chaining values, hashes).
const OWN: [Slot; 8] = [
    Slot::Uniform,
    Slot::Uniform,
    Slot::Read,
    Slot::Read,
    Slot::Read,
    Slot::Read,
    Slot::ReadWrite,
    Slot::ReadWrite,
];

/// The chunk kernel and the tree-level kernel, each with the compression function.
struct Kernels {
    chunks: std::sync::Arc<Kernel>,
    level: std::sync::Arc<Kernel>,
    g0_chunks: wgpu::BindGroup,
    g0_level: wgpu::BindGroup,
}

impl Kernels {
    fn new(ctx: &GpuContext) -> ComputeResult<Kernels> {
        let with_compress = |body: &str| format!("{COMPRESS_SOURCE}\n{body}");
        let chunks = ctx.kernel(CHUNKS_KERNEL, &with_compress(CHUNKS_SOURCE), &[], &OWN)?;
        let level = ctx.kernel(NAME, &with_compress(LEVEL_SOURCE), &[], &OWN)?;
        Ok(Kernels {
            g0_chunks: ctx.no_arrays_group(&chunks),
            g0_level: ctx.no_arrays_group(&level),
            chunks,
            level,
        })
    }
}

/// Step 2: runs the chunk kernel and every tree level over every part and waits.
pub fn run(
    ctx: &GpuContext,
    parts: &[Blake3Part],
    mode: &Blake3Mode,
) -> ComputeResult<Blake3Output> {
    let kernels = Kernels::new(ctx)?;
    let (key_words, flags) = mode.key_words_and_flags();
    let key = ctx.uniform(bytemuck::cast_slice(&key_words));
    let mut outputs = Vec::with_capacity(parts.len());
    let mut records = 0;
    for p in parts {
        let out = ctx.zeroed("blake3", p.part.records() as u64 * 32);
        run_part(ctx, &kernels, p, &key, flags, &out)?;
        records = records.max(p.part.range.end);
        outputs.push((p.part.range.clone(), out));
    }
    ctx.wait()?;
    Ok(Blake3Output {
        parts: outputs,
        records,
    })
}

/// Submits the chunk pass and the tree levels of part `p`, hashes into `out`.
fn run_part(
    ctx: &GpuContext,
    k: &Kernels,
    p: &Blake3Part,
    key: &wgpu::Buffer,
    flags: u32,
    out: &wgpu::Buffer,
) -> ComputeResult<()> {
    let scratch = [
        ctx.zeroed("blake3 chaining values", p.chunks * 32),
        ctx.zeroed("blake3 chaining values", p.chunks * 32),
    ];
    let mut enc = ctx.encoder();
    let work = |level: u32| Work {
        total: p.chunks,
        unit: Unit::Items,
        extra: [level, flags],
        tail: &[],
    };
    let (data, meta) = (&p.part.data, &p.part.meta);
    let (recs, firsts) = (&p.chunk_rec, &p.first_chunk);
    dispatch_in_rounds(ctx, &mut enc, &k.chunks, &k.g0_chunks, work(0), |u| {
        let own = [u, key, data, meta, recs, firsts, &scratch[0], out];
        ctx.own_group(&k.chunks, &own)
    })?;
    for level in 0..p.levels {
        let src = &scratch[(level % 2) as usize];
        let dst = &scratch[((level + 1) % 2) as usize];
        dispatch_in_rounds(ctx, &mut enc, &k.level, &k.g0_level, work(level), |u| {
            let own = [u, key, meta, recs, firsts, src, dst, out];
            ctx.own_group(&k.level, &own)
        })?;
    }
    ctx.submit(enc)
}

/// Step 3: reads the hashes back, one per record of the batch.
pub fn read(ctx: &GpuContext, output: &Blake3Output) -> ComputeResult<Vec<[u8; 32]>> {
    let mut hashes = vec![[0u8; 32]; output.records];
    for (range, buf) in &output.parts {
        let bytes = ctx.finish_and_read(ctx.encoder(), buf, range.len() as u64 * 32)?;
        let Some(dst) = hashes.get_mut(range.clone()) else {
            return Err(ComputeError::Device(
                "blake3: part outside the batch".into(),
            ));
        };
        if bytes.len() != dst.len() * 32 {
            return Err(ComputeError::Device("blake3: short readback".into()));
        }
        for (h, src) in dst.iter_mut().zip(bytes.chunks_exact(32)) {
            h.copy_from_slice(src);
        }
    }
    Ok(hashes)
}

/// The GPU kernel: the same hashes as [`cpu`] (upload, run, read).
pub fn gpu(
    ctx: &GpuContext,
    batch: &RecordBatch,
    mode: &Blake3Mode,
) -> ComputeResult<Vec<[u8; 32]>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let parts = upload(ctx, batch)?;
    let output = run(ctx, &parts, mode)?;
    read(ctx, &output)
}
