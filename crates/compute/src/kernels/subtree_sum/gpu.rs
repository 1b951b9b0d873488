//! The GPU side of subtree sums.
//!
//! One WGSL source, four pipelines (`PHASE` constant prepended):
//! 0. per entry: `claim[ino] = max(claim[ino], !key)`, key = id for a directory entry and
//!    `id | 1 << 31` otherwise, so the lowest key wins and directory entries win over the
//!    rest;
//! 1. per inode: bounded walk to the root giving the depth, histogram of depths (read
//!    back: it sizes the level passes);
//! 2. per inode: every reachable directory adds itself to its own totals and is bucketed
//!    by depth into `order`; every counted non-directory adds itself into its parent's;
//! 3. for depth = max..1, per directory of that depth: add its (now complete) totals into
//!    its parent's.
//!
//! 64-bit sums are two u32 words; an atomic add on the low word carries into the high
//! word when it overflowed, which keeps the total exact modulo 2^64 under any
//! interleaving.

use super::{DirTotals, MAX_DEPTH, NAME};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{arrays_group, GpuContext, Slot};
use crate::mirror::NamespaceMirror;

const SOURCE: &str = include_str!("../../../kernels/subtree_sum.wgsl");

/// Words of one inode's accumulators on the GPU: bytes lo/hi, allocated lo/hi, files,
/// dirs (counts never reach 2^32: each inode counts once).
const ACC_WORDS: u64 = 6;
/// The four pipelines, by phase.
const PIPELINES: [&str; 4] = [
    "subtree_sum_claim",
    "subtree_sum_depth",
    "subtree_sum_leaves",
    "subtree_sum_level",
];
/// Group 1 of every phase: params, claim, depth, hist, order, acc.
const OWN: [Slot; 6] = [
    Slot::Uniform,
    Slot::ReadWrite,
    Slot::ReadWrite,
    Slot::ReadWrite,
    Slot::ReadWrite,
    Slot::ReadWrite,
];

/// The kernel source of one phase.
fn source(phase: u32) -> String {
    format!("const PHASE: u32 = {phase}u;\nconst MAX_DEPTH: u32 = {MAX_DEPTH}u;\n{SOURCE}")
}

/// Scratch storage buffers, handed back to the pool when dropped (errors included).
struct Scratch<'a> {
    ctx: &'a GpuContext,
    bufs: Vec<wgpu::Buffer>,
}

impl Scratch<'_> {
    /// A buffer of at least `bytes` (contents undefined), or [`ComputeError::TooLarge`]
    /// when it would not fit one binding.
    fn take(&mut self, label: &str, bytes: u64) -> ComputeResult<usize> {
        let ctx = self.ctx;
        if bytes > ctx.max_binding {
            return Err(ComputeError::TooLarge(format!(
                "{NAME}: {label} needs {} MiB, one binding holds {} MiB",
                bytes >> 20,
                ctx.max_binding >> 20
            )));
        }
        // The pool rounds up to a power of two, which may not fit a binding.
        let pooled = bytes.max(4096).next_power_of_two() <= ctx.max_binding;
        self.bufs.push(if pooled {
            ctx.pool.take(&ctx.device, bytes)
        } else {
            ctx.zeroed(label, bytes)
        });
        Ok(self.bufs.len() - 1)
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        for b in self.bufs.drain(..) {
            // Only pool-sized buffers go back: others would never be taken again.
            if b.size().is_power_of_two() && b.size() >= 4096 {
                self.ctx.pool.give(b);
            }
        }
    }
}

/// Phase parameters (see `Params` in the WGSL).
fn params(mirror: &NamespaceMirror, allocs: u32, start: u32, count: u32) -> [u32; 8] {
    [
        mirror.dirent_count,
        mirror.inode_count,
        allocs,
        start,
        count,
        0,
        0,
        0,
    ]
}

/// The GPU kernel over the mirror: the same totals as [`super::cpu`]. Two submissions:
/// the depth histogram is read back in between to size the level passes.
pub fn gpu(ctx: &GpuContext, mirror: &NamespaceMirror) -> ComputeResult<Vec<DirTotals>> {
    let n = u64::from(mirror.inode_count);
    let m = u64::from(mirror.dirent_count);
    if n == 0 {
        return Ok(Vec::new());
    }
    if m >= u64::from(u32::MAX >> 1) {
        return Err(ComputeError::TooLarge(format!("{NAME}: {m} entries")));
    }
    let mut kernels = Vec::with_capacity(PIPELINES.len());
    for (phase, name) in PIPELINES.iter().enumerate() {
        kernels.push(ctx.kernel(
            name,
            &source(phase as u32),
            &["dirents", "inodes", "allocated"],
            &OWN,
        )?);
    }
    // Each pipeline gets groups made from its own layouts.
    let mut g0 = Vec::with_capacity(kernels.len());
    for k in &kernels {
        g0.push(arrays_group(
            ctx,
            k,
            &[&mirror.dirents, &mirror.inodes, &mirror.allocated],
        )?);
    }
    let mut s = Scratch {
        ctx,
        bufs: Vec::new(),
    };
    let b = Buffers {
        claim: s.take("claim", n * 4)?,
        depth: s.take("depth", n * 4)?,
        hist: s.take("hist", HIST_BYTES)?,
        order: s.take("order", n * 4)?,
        acc: s.take("acc", n * ACC_WORDS * 4)?,
    };
    let run = Run {
        ctx,
        mirror,
        kernels: &kernels,
        g0: &g0,
        bufs: &s.bufs,
        b,
        allocs: u32::try_from(mirror.allocated.len_words() / 2).unwrap_or(u32::MAX),
    };
    let counts = run.depths()?;
    run.totals(&counts)
}

/// Bytes of the depth histogram.
const HIST_BYTES: u64 = (MAX_DEPTH as u64 + 1) * 4;

/// Where each scratch array is in [`Scratch::bufs`].
struct Buffers {
    claim: usize,
    depth: usize,
    hist: usize,
    order: usize,
    acc: usize,
}

/// One run's pipelines, their group 0 and the scratch arrays.
struct Run<'a> {
    ctx: &'a GpuContext,
    mirror: &'a NamespaceMirror,
    kernels: &'a [std::sync::Arc<crate::gpu::Kernel>],
    g0: &'a [wgpu::BindGroup],
    bufs: &'a [wgpu::Buffer],
    b: Buffers,
    allocs: u32,
}

impl Run<'_> {
    /// Group 1 of `phase` with `uniform`.
    fn group(&self, phase: usize, uniform: &wgpu::Buffer) -> wgpu::BindGroup {
        let (b, k) = (self.bufs, &self.b);
        self.ctx.own_group(
            &self.kernels[phase],
            &[
                uniform,
                &b[k.claim],
                &b[k.depth],
                &b[k.hist],
                &b[k.order],
                &b[k.acc],
            ],
        )
    }

    fn uniform(&self, start: u32, count: u32) -> wgpu::Buffer {
        let p = params(self.mirror, self.allocs, start, count);
        self.ctx.uniform(bytemuck::cast_slice(&p))
    }

    /// Phases 0 and 1 (claims, depths) after clearing the accumulators: the number of
    /// directories at each depth.
    fn depths(&self) -> ComputeResult<Vec<u32>> {
        let (ctx, b) = (self.ctx, self.bufs);
        let n = u64::from(self.mirror.inode_count);
        let m = u64::from(self.mirror.dirent_count);
        let uniform = self.uniform(0, 0);
        let mut enc = ctx.encoder();
        enc.clear_buffer(&b[self.b.claim], 0, Some(n * 4));
        enc.clear_buffer(&b[self.b.hist], 0, Some(HIST_BYTES));
        enc.clear_buffer(&b[self.b.acc], 0, Some(n * ACC_WORDS * 4));
        let g1 = self.group(0, &uniform);
        ctx.dispatch(&mut enc, &self.kernels[0], [&self.g0[0], &g1], m)?;
        let g1 = self.group(1, &uniform);
        ctx.dispatch(&mut enc, &self.kernels[1], [&self.g0[1], &g1], n)?;
        Ok(words(&ctx.finish_and_read(
            enc,
            &b[self.b.hist],
            HIST_BYTES,
        )?))
    }

    /// Phases 2 and 3 (leaves, then one pass per depth, deepest first), given the
    /// directories at each depth: every inode's totals.
    fn totals(&self, counts: &[u32]) -> ComputeResult<Vec<DirTotals>> {
        let (ctx, b) = (self.ctx, self.bufs);
        let n = u64::from(self.mirror.inode_count);
        // Each depth's first slot in `order`, written over the histogram as its cursor.
        let mut starts = vec![0u32; counts.len()];
        let mut sum = 0u32;
        for (s, &c) in starts.iter_mut().zip(counts).skip(1) {
            *s = sum;
            sum = sum.wrapping_add(c);
        }
        ctx.queue
            .write_buffer(&b[self.b.hist], 0, bytemuck::cast_slice(&starts));
        let deepest = counts.iter().rposition(|&c| c != 0).unwrap_or(0);
        let mut enc = ctx.encoder();
        let g1 = self.group(2, &self.uniform(0, 0));
        ctx.dispatch(&mut enc, &self.kernels[2], [&self.g0[2], &g1], n)?;
        for d in (1..=deepest).rev() {
            let g1 = self.group(3, &self.uniform(starts[d], counts[d]));
            ctx.dispatch(
                &mut enc,
                &self.kernels[3],
                [&self.g0[3], &g1],
                u64::from(counts[d]),
            )?;
        }
        let acc_bytes = n * ACC_WORDS * 4;
        let acc = words(&ctx.finish_and_read(enc, &b[self.b.acc], acc_bytes)?);
        Ok(acc
            .chunks_exact(ACC_WORDS as usize)
            .map(|w| DirTotals {
                bytes: u64::from(w[0]) | u64::from(w[1]) << 32,
                allocated: u64::from(w[2]) | u64::from(w[3]) << 32,
                files: u64::from(w[4]),
                dirs: u64::from(w[5]),
            })
            .collect())
    }
}

/// Little-endian words of a readback (whatever its alignment).
fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}
