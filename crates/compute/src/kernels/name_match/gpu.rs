//! The GPU side of name matching: the query compiled to program words for
//! kernels/name_match.wgsl, one invocation per entry of the mirror, hits as a bit mask.

use super::{NameMatcher, Program, NAME};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{arrays_group, GpuContext, Kernel, Slot};
use crate::mirror::NamespaceMirror;

const SOURCE: &str = include_str!("../../../kernels/name_match.wgsl");

impl NameMatcher {
    /// Program words and kernel parameters.
    fn encode(&self, count: u32) -> ComputeResult<(Vec<u32>, [u32; 12])> {
        let mut p = [0u32; 12];
        p[0] = count;
        p[9] = self.kinds;
        let words = match &self.program {
            Program::Substring { needle, fold, .. } => {
                p[1] = 0;
                p[2] = u32::from(*fold);
                p[3] = needle.len() as u32;
                needle.iter().map(|&b| u32::from(b)).collect()
            }
            Program::Glob(g) => {
                p[1] = 1;
                p[2] = u32::from(g.fold);
                p[3] = g.tokens.len() as u32;
                p[4] = g.tokens.len() as u32;
                let mut w = g.tokens.clone();
                for c in &g.classes {
                    w.extend_from_slice(c);
                }
                w
            }
            Program::Dfa(t) => {
                p[1] = 2;
                p[4] = 0;
                p[5] = 256;
                p[6] = 256 + t.trans.len() as u32;
                p[7] = t.stride;
                p[8] = 0;
                let mut w = t.classes.to_vec();
                w.extend_from_slice(&t.trans);
                w.extend_from_slice(&t.flags);
                w
            }
            Program::CpuRegex(_) => {
                return Err(ComputeError::TooLarge(
                    "regex too large for a DFA runs on the CPU".into(),
                ))
            }
        };
        Ok((words, p))
    }

    /// The GPU kernel over the mirror: same ids as [`NameMatcher::cpu`].
    pub fn gpu(&self, ctx: &GpuContext, mirror: &NamespaceMirror) -> ComputeResult<Vec<u32>> {
        let count = mirror.dirent_count;
        let (prog, params) = self.encode(count)?;
        let kernel = ctx.kernel(
            NAME,
            SOURCE,
            &["dirents", "names"],
            &[Slot::Uniform, Slot::Read, Slot::ReadWrite],
        )?;
        let uniform = ctx.uniform(bytemuck::cast_slice(&params));
        let prog_buf = ctx.upload("program", bytemuck::cast_slice(&prog));
        entry_hits(ctx, mirror, &kernel, &[&uniform, &prog_buf], count)
    }
}

/// Runs a kernel of one invocation per entry of the mirror whose group 0 is the
/// dirents and names and whose group 1 is `own` then a hit mask (bit `id & 31` of word
/// `id >> 5`): the ids of the entries it marked, ascending.
pub(crate) fn entry_hits(
    ctx: &GpuContext,
    mirror: &NamespaceMirror,
    kernel: &Kernel,
    own: &[&wgpu::Buffer],
    count: u32,
) -> ComputeResult<Vec<u32>> {
    let mask_words = u64::from(count).div_ceil(32).max(1);
    let hits = ctx.pool.take(&ctx.device, mask_words * 4);
    let g0 = arrays_group(ctx, kernel, &[&mirror.dirents, &mirror.names])?;
    let mut bound: Vec<&wgpu::Buffer> = own.to_vec();
    bound.push(&hits);
    let g1 = ctx.own_group(kernel, &bound);
    let mut enc = ctx.encoder();
    enc.clear_buffer(&hits, 0, Some(mask_words * 4));
    ctx.dispatch(&mut enc, kernel, [&g0, &g1], u64::from(count))?;
    let bytes = ctx.finish_and_read(enc, &hits, mask_words * 4);
    ctx.pool.give(hits);
    let bytes = bytes?;
    Ok(expand_mask(bytemuck::cast_slice(&bytes), count))
}

/// Ids of the set bits of `mask`, ascending, below `count`.
fn expand_mask(mask: &[u32], count: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for (w, &bits) in mask.iter().enumerate() {
        let mut b = bits;
        while b != 0 {
            let id = (w as u32) * 32 + b.trailing_zeros();
            if id < count {
                out.push(id);
            }
            b &= b - 1;
        }
    }
    out
}
