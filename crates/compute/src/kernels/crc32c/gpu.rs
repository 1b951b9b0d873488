//! The GPU side of CRC32C.
//!
//! The CRC register after a message is linear over GF(2): feeding `n` zero bytes
//! multiplies it by `x^(8n) mod P`, and the state after `A ‖ B` is
//! `state(A) * x^(8 |B|) ^ raw(B)` (raw: from state 0). So a record splits into pieces
//! computed apart and folded back with constant multipliers:
//!
//! 1. `crc32c_blocks`, one workgroup of 256 invocations per [`BLOCK_BYTES`] block of a
//!    record: each invocation runs the table CRC over its [`SLICE_BYTES`] slice (bytes
//!    past the record read as zero; the record's first slice starts from `!0`, the
//!    others from 0), then the workgroup folds the 256 slice states pairwise in 8 levels.
//! 2. `crc32c`, one invocation per record: folds its block states left to right, which
//!    gives the state after the record padded with `pad` zero bytes to whole blocks,
//!    multiplies by `x^(-8 pad)` (x is invertible mod P) to drop the padding, and applies
//!    the xorout.
//!
//! The multipliers are computed here and prepended to the WGSL as constants.

use std::ops::Range;
use std::sync::OnceLock;

use super::{BLOCK_BYTES, NAME, SLICE_BYTES};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::rounds::{dispatch_in_rounds, Unit, Work};
use crate::gpu::{GpuContext, Slot};
use crate::records::{self, GpuPart, RecordBatch};

const BLOCKS_KERNEL: &str = "crc32c_blocks";
const BLOCKS_SOURCE: &str = include_str!("../../../kernels/crc32c_blocks.wgsl");
const FOLD_SOURCE: &str = include_str!("../../../kernels/crc32c.wgsl");
const COMMON_SOURCE: &str = include_str!("../../../kernels/crc32c_common.wgsl");

/// The reflected polynomial.
const POLY: u32 = 0x82F6_3B78;
/// The polynomial 1 in the reflected representation (bit 31 is x^0).
const ONE: u32 = 1 << 31;

/// `a * b mod P`, reflected.
fn gf_mul(a: u32, mut b: u32) -> u32 {
    let mut p = 0;
    for i in 0..32 {
        if (a >> (31 - i)) & 1 != 0 {
            p ^= b;
        }
        b = times_x(b);
    }
    p
}

/// `b * x mod P`, reflected.
fn times_x(b: u32) -> u32 {
    (b >> 1) ^ if b & 1 != 0 { POLY } else { 0 }
}

/// `b / x mod P`, reflected: the inverse of [`times_x`] (P's top bit, bit 31 of POLY,
/// tells whether the low bit was set).
fn div_x(b: u32) -> u32 {
    if b & ONE != 0 {
        ((b ^ POLY) << 1) | 1
    } else {
        b << 1
    }
}

/// `base^n mod P` by squaring.
fn gf_pow(base: u32, mut n: u64) -> u32 {
    let mut p = ONE;
    let mut sq = base;
    while n != 0 {
        if n & 1 != 0 {
            p = gf_mul(p, sq);
        }
        sq = gf_mul(sq, sq);
        n >>= 1;
    }
    p
}

/// `x^(8 bytes) mod P`: the multiplier that appends `bytes` zero bytes.
fn shift_bytes(bytes: u64) -> u32 {
    gf_pow(times_x(ONE), 8 * bytes)
}

/// `x^(-8 bytes) mod P`: the multiplier that drops `bytes` trailing zero bytes.
fn unshift_bytes(bytes: u64) -> u32 {
    gf_pow(div_x(ONE), 8 * bytes)
}

/// The constants both WGSL sources expect, as WGSL declarations: the polynomial, the
/// slice and block sizes, and the fold multipliers.
fn constants() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut s = format!(
            "const POLY: u32 = {POLY:#010x}u;\nconst SLICE_BYTES: u32 = {SLICE_BYTES}u;\n\
             const BLOCK_BYTES: u32 = {BLOCK_BYTES}u;\n"
        );
        for k in 0..8 {
            s += &format!(
                "const TREE_{k}: u32 = {:#010x}u;\n",
                shift_bytes(u64::from(SLICE_BYTES) << k)
            );
        }
        s += &format!(
            "const SHIFT_BLOCK: u32 = {:#010x}u;\n",
            shift_bytes(u64::from(BLOCK_BYTES))
        );
        for k in 0..16 {
            s += &format!(
                "const UNSHIFT_{k}: u32 = {:#010x}u;\n",
                unshift_bytes(1 << k)
            );
        }
        s
    })
}

fn blocks_source() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| format!("{}{COMMON_SOURCE}{BLOCKS_SOURCE}", constants()))
}

fn fold_source() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| format!("{}{COMMON_SOURCE}{FOLD_SOURCE}", constants()))
}

/// One uploaded part with its block table.
pub struct CrcPart {
    pub part: GpuPart,
    /// Per workgroup of `crc32c_blocks`: `vec2<u32>(record in part, block in record)`.
    blocks: wgpu::Buffer,
    /// Per record: the index of its first block state.
    first_block: wgpu::Buffer,
    block_count: u64,
}

/// The device buffers holding the CRCs, one `u32` per record, per part.
pub struct CrcOutput {
    parts: Vec<(Range<usize>, wgpu::Buffer)>,
    records: usize,
}

/// Step 1: uploads `batch` in parts as large as the device allows (at most
/// [`records::PART_BYTES`]).
pub fn upload(ctx: &GpuContext, batch: &RecordBatch) -> ComputeResult<Vec<CrcPart>> {
    upload_in_parts(ctx, batch, ctx.max_binding.min(records::PART_BYTES))
}

/// Step 1 with parts of at most `part_bytes` packed bytes each.
pub fn upload_in_parts(
    ctx: &GpuContext,
    batch: &RecordBatch,
    part_bytes: u64,
) -> ComputeResult<Vec<CrcPart>> {
    let mut out = Vec::new();
    for range in batch.parts(part_bytes.max(1)) {
        let part = records::upload_part(ctx, batch, range)?;
        let mut blocks: Vec<[u32; 2]> = Vec::new();
        let mut first_block: Vec<u32> = Vec::with_capacity(part.records());
        for (r, &[_, len]) in part.meta_host.iter().enumerate() {
            let first = u32::try_from(blocks.len())
                .map_err(|_| ComputeError::TooLarge("blocks in one part".into()))?;
            first_block.push(first);
            for b in 0..len.div_ceil(BLOCK_BYTES) {
                blocks.push([r as u32, b]);
            }
        }
        out.push(CrcPart {
            blocks: ctx.upload("crc32c blocks", bytemuck::cast_slice(&blocks)),
            first_block: ctx.upload("crc32c first block", bytemuck::cast_slice(&first_block)),
            block_count: blocks.len() as u64,
            part,
        });
    }
    Ok(out)
}

/// Group 1 of both kernels: params, three inputs, the output.
const OWN: [Slot; 5] = [
    Slot::Uniform,
    Slot::Read,
    Slot::Read,
    Slot::Read,
    Slot::ReadWrite,
];

/// Step 2: runs both kernels over every part and waits for them.
pub fn run(ctx: &GpuContext, parts: &[CrcPart]) -> ComputeResult<CrcOutput> {
    let blocks_kernel = ctx.kernel(BLOCKS_KERNEL, blocks_source(), &[], &OWN)?;
    let fold_kernel = ctx.kernel(NAME, fold_source(), &[], &OWN)?;
    let g0_blocks = ctx.no_arrays_group(&blocks_kernel);
    let g0_fold = ctx.no_arrays_group(&fold_kernel);
    let mut outputs = Vec::with_capacity(parts.len());
    let mut records = 0;
    for p in parts {
        let n = p.part.records() as u64;
        let state = ctx.zeroed("crc32c block states", p.block_count * 4);
        let out = ctx.zeroed("crc32c", n * 4);
        let (data, meta) = (&p.part.data, &p.part.meta);
        let mut enc = ctx.encoder();
        let blocks = Work {
            total: p.block_count,
            unit: Unit::Groups,
            extra: [0, 0],
            tail: &[],
        };
        dispatch_in_rounds(ctx, &mut enc, &blocks_kernel, &g0_blocks, blocks, |u| {
            ctx.own_group(&blocks_kernel, &[u, data, meta, &p.blocks, &state])
        })?;
        let records_work = Work {
            total: n,
            unit: Unit::Items,
            extra: [0, 0],
            tail: &[],
        };
        dispatch_in_rounds(ctx, &mut enc, &fold_kernel, &g0_fold, records_work, |u| {
            ctx.own_group(&fold_kernel, &[u, meta, &p.first_block, &state, &out])
        })?;
        ctx.submit(enc)?;
        records = records.max(p.part.range.end);
        outputs.push((p.part.range.clone(), out));
    }
    ctx.wait()?;
    Ok(CrcOutput {
        parts: outputs,
        records,
    })
}

/// Step 3: reads the CRCs back, one per record of the batch.
pub fn read(ctx: &GpuContext, output: &CrcOutput) -> ComputeResult<Vec<u32>> {
    let mut crcs = vec![0u32; output.records];
    for (range, buf) in &output.parts {
        let bytes = ctx.finish_and_read(ctx.encoder(), buf, range.len() as u64 * 4)?;
        let got: &[u32] = bytemuck::try_cast_slice(&bytes)
            .map_err(|e| ComputeError::Device(format!("crc32c readback: {e}")))?;
        let Some(dst) = crcs.get_mut(range.clone()) else {
            return Err(ComputeError::Device(
                "crc32c: part outside the batch".into(),
            ));
        };
        if got.len() != dst.len() {
            return Err(ComputeError::Device("crc32c: short readback".into()));
        }
        dst.copy_from_slice(got);
    }
    Ok(crcs)
}

/// The GPU kernel: the same CRCs as [`cpu`] (upload, run, read).
pub fn gpu(ctx: &GpuContext, batch: &RecordBatch) -> ComputeResult<Vec<u32>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let parts = upload(ctx, batch)?;
    let output = run(ctx, &parts)?;
    read(ctx, &output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_by_x_undoes_multiplication() {
        for b in [ONE, 1, 0xdead_beef, POLY, u32::MAX] {
            assert_eq!(times_x(div_x(b)), b);
            assert_eq!(div_x(times_x(b)), b);
        }
        assert_eq!(gf_mul(shift_bytes(12_345), unshift_bytes(12_345)), ONE);
    }

    #[test]
    fn the_algebra_matches_the_crate() {
        // state(A ‖ B) = state(A) * x^(8|B|) ^ raw(B), with state = !crc.
        let a: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let b: Vec<u8> = (0..777u32).map(|i| (i * 13 + 1) as u8).collect();
        let whole = [a.clone(), b.clone()].concat();
        // crc32c_append takes and returns finished CRCs (the state inverted).
        let raw_b = !crc32c::crc32c_append(!0, &b);
        let state_a = !crc32c::crc32c(&a);
        let state = gf_mul(state_a, shift_bytes(b.len() as u64)) ^ raw_b;
        assert_eq!(!state, crc32c::crc32c(&whole));
        // Trailing zeros are dropped by the inverse multiplier.
        let padded = [a.clone(), vec![0; 300]].concat();
        let s = !crc32c::crc32c(&padded);
        assert_eq!(!gf_mul(s, unshift_bytes(300)), crc32c::crc32c(&a));
    }
}
