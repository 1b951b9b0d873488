//! Dispatches larger than one grid: the data kernels record their work in rounds, each a
//! dispatch of at most the context's full 2-D grid with its own uniform
//! `[base, end, extra0, extra1]` (then the work's `tail` words, for a kernel that needs
//! more, such as AES round keys), so the WGSL offsets its index by `base` and skips
//! indices `>= end`.

use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{GpuContext, Kernel, WORKGROUP};

/// What one index of a round counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// One invocation (workgroups of [`WORKGROUP`]); the WGSL uses `linear_index`.
    Items,
    /// One workgroup; the WGSL uses `group_index`.
    Groups,
}

/// The indices a kernel runs over and the words of its uniform after `[base, end]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Work<'a> {
    pub total: u64,
    pub unit: Unit,
    pub extra: [u32; 2],
    pub tail: &'a [u32],
}

/// Records `kernel` over `work` in as many rounds as needed. `bind` makes group 1 around
/// each round's uniform.
pub(crate) fn dispatch_in_rounds(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    kernel: &Kernel,
    group0: &wgpu::BindGroup,
    work: Work<'_>,
    bind: impl Fn(&wgpu::Buffer) -> wgpu::BindGroup,
) -> ComputeResult<()> {
    let Work {
        total,
        unit,
        extra,
        tail,
    } = work;
    let end = u32::try_from(total)
        .map_err(|_| ComputeError::TooLarge(format!("{total} items in one part")))?;
    let per_dim = u64::from(ctx.max_groups_per_dim);
    let groups = per_dim * per_dim;
    let per_round = match unit {
        Unit::Items => groups * u64::from(WORKGROUP),
        Unit::Groups => groups,
    };
    let mut base = 0u64;
    while base < total {
        let n = per_round.min(total - base);
        let mut params = vec![
            base as u32,
            (base + n).min(u64::from(end)) as u32,
            extra[0],
            extra[1],
        ];
        params.extend_from_slice(tail);
        let uniform = ctx.uniform(bytemuck::cast_slice(&params));
        let group1 = bind(&uniform);
        match unit {
            Unit::Items => ctx.dispatch(encoder, kernel, [group0, &group1], n)?,
            Unit::Groups => ctx.dispatch_groups(encoder, kernel, [group0, &group1], n)?,
        }
        base += n;
    }
    Ok(())
}
