//! The GPU side of AES-XTS in three steps: [`upload`] (records, sector table, AES
//! tables), [`run`] (tweak pass, then the block pass; waits), [`read`] (copies the
//! output back into a [`RecordBatch`]). Round keys are expanded here and passed in a
//! uniform with each pass.

use std::ops::Range;

use super::tables::{all_tables, decrypt_schedule, encrypt_schedule, DECRYPT_BASE, SCHEDULE_WORDS};
use super::{check, Direction, SectorLayout, XtsKey, SECTOR_BYTES};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::rounds::{dispatch_in_rounds, Unit, Work};
use crate::gpu::{GpuContext, Kernel, Slot};
use crate::records::{upload_parts, GpuPart, RecordBatch};

const COMMON: &str = include_str!("../../../kernels/aes_xts_common.wgsl");
const TWEAK: &str = include_str!("../../../kernels/aes_xts_tweak.wgsl");
const BLOCKS: &str = include_str!("../../../kernels/aes_xts.wgsl");

/// Round keys of the three ciphers the passes use.
struct Schedules {
    data_enc: [u32; SCHEDULE_WORDS],
    data_dec: [u32; SCHEDULE_WORDS],
    tweak_enc: [u32; SCHEDULE_WORDS],
}

/// One uploaded part with its sector table.
struct SectorPart {
    part: GpuPart,
    /// `vec4<u32>` per sector: byte start in `part.data`, length, sector number lo, hi.
    sectors: wgpu::Buffer,
    sector_count: u32,
}

/// A batch on the device, ready for [`run`] in either direction (several runs give the
/// same output: the input buffers are not written).
pub struct XtsUpload {
    parts: Vec<SectorPart>,
    tables: wgpu::Buffer,
    keys: Schedules,
    records: usize,
}

/// Output of one part on the device: `bytes` bytes laid out as the part's input.
struct OutPart {
    range: Range<usize>,
    meta_host: Vec<[u32; 2]>,
    out: wgpu::Buffer,
    bytes: u64,
}

/// The device buffers [`run`] wrote, for [`read`].
pub struct XtsOutput {
    parts: Vec<OutPart>,
    records: usize,
}

/// The sector table of one part.
fn sector_table(
    part: &GpuPart,
    first_sectors: &[u64],
    sector_bytes: usize,
) -> ComputeResult<Vec<[u32; 4]>> {
    let mut table = Vec::new();
    for (i, &[start, len]) in part.range.clone().zip(&part.meta_host) {
        let first = first_sectors
            .get(i)
            .copied()
            .ok_or_else(|| ComputeError::BadInput(format!("no first sector for record {i}")))?;
        let Some(layout) = SectorLayout::of(len as usize, sector_bytes) else {
            return Err(ComputeError::BadInput(format!(
                "record {i} has {len} bytes: AES-XTS needs at least 16 (or none)"
            )));
        };
        let mut offset = start;
        for j in 0..layout.sectors() {
            let n = first.wrapping_add(j as u64);
            let l = layout.len_of(j, sector_bytes) as u32;
            table.push([offset, l, n as u32, (n >> 32) as u32]);
            offset += l;
        }
    }
    Ok(table)
}

/// Step 1: uploads `batch` part by part with the sector tables, the AES tables, and
/// expands the keys. Data units of `sector_bytes`.
pub fn upload(
    ctx: &GpuContext,
    batch: &RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    sector_bytes: usize,
) -> ComputeResult<XtsUpload> {
    check(batch, first_sectors, sector_bytes)?;
    let mut parts = Vec::new();
    for part in upload_parts(ctx, batch)? {
        let table = sector_table(&part, first_sectors, sector_bytes)?;
        let sector_count = u32::try_from(table.len())
            .map_err(|_| ComputeError::TooLarge(format!("{} sectors in a part", table.len())))?;
        let sectors = ctx.upload("xts sectors", bytemuck::cast_slice(&table));
        parts.push(SectorPart {
            part,
            sectors,
            sector_count,
        });
    }
    let data_enc = encrypt_schedule(&key.data);
    let keys = Schedules {
        data_enc,
        data_dec: decrypt_schedule(&data_enc),
        tweak_enc: encrypt_schedule(&key.tweak),
    };
    let tables = ctx.upload("aes tables", bytemuck::cast_slice(&all_tables()));
    Ok(XtsUpload {
        parts,
        tables,
        keys,
        records: batch.len(),
    })
}

/// The two passes of one direction, their group 0, and the block pass's round keys and
/// table base.
struct Passes<'a> {
    tweak: std::sync::Arc<Kernel>,
    block: std::sync::Arc<Kernel>,
    g0_tweak: wgpu::BindGroup,
    g0_block: wgpu::BindGroup,
    rk: &'a [u32; SCHEDULE_WORDS],
    base: u32,
}

impl<'a> Passes<'a> {
    fn new(ctx: &GpuContext, keys: &'a Schedules, dir: Direction) -> ComputeResult<Passes<'a>> {
        let tweak = ctx.kernel(
            "aes_xts_tweak",
            &format!("{COMMON}\n{TWEAK}"),
            &[],
            &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite],
        )?;
        let decrypt = dir == Direction::Decrypt;
        let (name, rk, base) = if decrypt {
            ("aes_xts_dec", &keys.data_dec, DECRYPT_BASE)
        } else {
            ("aes_xts_enc", &keys.data_enc, 0)
        };
        let block = ctx.kernel(
            name,
            &format!("const DECRYPT: bool = {decrypt};\n{COMMON}\n{BLOCKS}"),
            &[],
            &[
                Slot::Uniform,
                Slot::Read,
                Slot::Read,
                Slot::Read,
                Slot::Read,
                Slot::ReadWrite,
            ],
        )?;
        Ok(Passes {
            g0_tweak: ctx.no_arrays_group(&tweak),
            g0_block: ctx.no_arrays_group(&block),
            tweak,
            block,
            rk,
            base,
        })
    }

    /// Records both passes over part `sp` into `enc`, output to `out`; returns the
    /// tweak buffer they use (to give back once they ran).
    fn record(
        &self,
        ctx: &GpuContext,
        up: &XtsUpload,
        sp: &SectorPart,
        out: &wgpu::Buffer,
        enc: &mut wgpu::CommandEncoder,
    ) -> ComputeResult<wgpu::Buffer> {
        let count = u64::from(sp.sector_count);
        let tweaks = ctx.pool.take(&ctx.device, count * 16);
        // The tweak pass: an invocation per sector.
        let work = Work {
            total: count,
            unit: Unit::Items,
            extra: [0, 0],
            tail: &up.keys.tweak_enc,
        };
        dispatch_in_rounds(ctx, enc, &self.tweak, &self.g0_tweak, work, |u| {
            ctx.own_group(&self.tweak, &[u, &up.tables, &sp.sectors, &tweaks])
        })?;
        // The block pass: a workgroup per sector.
        let work = Work {
            total: count,
            unit: Unit::Groups,
            extra: [self.base, 0],
            tail: self.rk,
        };
        dispatch_in_rounds(ctx, enc, &self.block, &self.g0_block, work, |u| {
            let own = [u, &up.tables, &sp.sectors, &tweaks, &sp.part.data, out];
            ctx.own_group(&self.block, &own)
        })?;
        Ok(tweaks)
    }
}

/// Step 2: records both passes for every part, submits and waits.
pub fn run(ctx: &GpuContext, up: &XtsUpload, dir: Direction) -> ComputeResult<XtsOutput> {
    let passes = Passes::new(ctx, &up.keys, dir)?;
    let mut enc = ctx.encoder();
    let mut outputs = Vec::with_capacity(up.parts.len());
    let mut scratch = Vec::with_capacity(up.parts.len());
    let mut recorded = Ok(());
    for sp in &up.parts {
        let out_bytes = sp.part.data_bytes.next_multiple_of(16).max(16);
        let out = ctx.pool.take(&ctx.device, out_bytes);
        if sp.sector_count > 0 && recorded.is_ok() {
            match passes.record(ctx, up, sp, &out, &mut enc) {
                Ok(tweaks) => scratch.push(tweaks),
                Err(e) => recorded = Err(e),
            }
        }
        outputs.push(OutPart {
            range: sp.part.range.clone(),
            meta_host: sp.part.meta_host.clone(),
            out,
            bytes: sp.part.data_bytes,
        });
    }
    let done = recorded.and_then(|()| ctx.submit(enc).and_then(|()| ctx.wait()));
    for b in scratch {
        ctx.pool.give(b);
    }
    if let Err(e) = done {
        for o in outputs {
            ctx.pool.give(o.out);
        }
        return Err(e);
    }
    Ok(XtsOutput {
        parts: outputs,
        records: up.records,
    })
}

/// Step 3: copies the outputs back, record by record, into a batch laid out as the input.
pub fn read(ctx: &GpuContext, output: XtsOutput) -> ComputeResult<RecordBatch> {
    let total: u64 = output.parts.iter().map(|p| p.bytes).sum();
    let mut batch = RecordBatch::with_capacity(output.records, total as usize);
    let mut result = Ok(());
    for p in output.parts {
        if result.is_ok() {
            result = read_part(ctx, &p, &mut batch);
        }
        ctx.pool.give(p.out);
    }
    result?;
    if batch.len() != output.records {
        return Err(ComputeError::Device(format!(
            "{} of {} records read back",
            batch.len(),
            output.records
        )));
    }
    Ok(batch)
}

fn read_part(ctx: &GpuContext, p: &OutPart, batch: &mut RecordBatch) -> ComputeResult<()> {
    if batch.len() != p.range.start {
        return Err(ComputeError::Device("parts out of order".into()));
    }
    let bytes = ctx.finish_and_read(ctx.encoder(), &p.out, p.bytes)?;
    for &[start, len] in &p.meta_host {
        let (s, l) = (start as usize, len as usize);
        let rec = bytes
            .get(s..s + l)
            .ok_or_else(|| ComputeError::Device(format!("record at {s}+{l} past the readback")))?;
        batch.push(rec)?;
    }
    Ok(())
}

/// The GPU kernel with data units of [`SECTOR_BYTES`]: same output as [`super::cpu`].
pub fn gpu(
    ctx: &GpuContext,
    batch: &RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
) -> ComputeResult<RecordBatch> {
    gpu_with_sector(ctx, batch, key, first_sectors, dir, SECTOR_BYTES)
}

/// [`gpu`] with data units of `sector_bytes`.
pub fn gpu_with_sector(
    ctx: &GpuContext,
    batch: &RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
    sector_bytes: usize,
) -> ComputeResult<RecordBatch> {
    let up = upload(ctx, batch, key, first_sectors, sector_bytes)?;
    let out = run(ctx, &up, dir)?;
    read(ctx, out)
}
