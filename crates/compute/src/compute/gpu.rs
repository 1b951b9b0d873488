//! The GPU side of [`Compute`]: the device, opened as the [`Choice`] says, and the mirror
//! of the namespace on it, kept current by the ranges the core reports changed.

use parking_lot::Mutex;

use super::{Compute, Policy};
use crate::choice::Choice;
use crate::error::ComputeResult;
use crate::gpu::{GpuContext, GpuOptions};
use crate::mirror::NamespaceMirror;
use crate::view::{DirtyRanges, NamespaceDirty, NamespaceView};

/// The device and its copy of the namespace.
pub(crate) struct GpuSide {
    ctx: GpuContext,
    mirror: Mutex<MirrorState>,
}

#[derive(Default)]
struct MirrorState {
    mirror: Option<NamespaceMirror>,
    /// Changes not yet written to the mirror.
    pending: NamespaceDirty,
}

impl std::fmt::Debug for GpuSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.ctx.fmt(f)
    }
}

fn merge(into: &mut DirtyRanges, from: &DirtyRanges) {
    for &(s, e) in from.ranges() {
        into.mark(s, e);
    }
}

impl GpuSide {
    /// The device `choice` asks for (none for `Cpu`, or for `Auto` without a hardware
    /// adapter) and the policy to run by: with `Auto` on a hardware adapter the cached
    /// calibration of that adapter, measured now when there is none yet.
    pub(crate) fn open(choice: Choice) -> ComputeResult<(Option<GpuSide>, Policy)> {
        let ctx = match choice {
            Choice::Cpu => None,
            Choice::Gpu => Some(GpuContext::open(&GpuOptions {
                allow_software: true,
                ..Default::default()
            })?),
            Choice::Auto => match GpuContext::open(&GpuOptions::default()) {
                Ok(ctx) => Some(ctx),
                Err(e) => {
                    tracing::info!("compute: {e}; using the CPU");
                    None
                }
            },
        };
        let policy = match (&ctx, choice) {
            (Some(ctx), Choice::Auto) => crate::calibrate::policy_for(ctx).unwrap_or_else(|e| {
                tracing::info!("compute: calibration failed ({e}); using the CPU");
                Policy::default()
            }),
            _ => Policy::default(),
        };
        let side = ctx.map(|ctx| GpuSide {
            ctx,
            mirror: Mutex::new(MirrorState::default()),
        });
        Ok((side, policy))
    }

    pub(crate) fn ctx(&self) -> &GpuContext {
        &self.ctx
    }

    /// Records namespace changes; the mirror catches up before the next call.
    pub(crate) fn note_changes(&self, dirty: &NamespaceDirty) {
        if dirty.is_empty() {
            return;
        }
        let mut st = self.mirror.lock();
        let p = &mut st.pending;
        merge(&mut p.dirents, &dirty.dirents);
        merge(&mut p.names, &dirty.names);
        merge(&mut p.inodes, &dirty.inodes);
        merge(&mut p.index, &dirty.index);
        merge(&mut p.allocated, &dirty.allocated);
        merge(&mut p.dir_entry, &dirty.dir_entry);
    }

    /// Runs `f` with a mirror current with `view` (uploaded on first use).
    pub(crate) fn with_mirror<T>(
        &self,
        view: &NamespaceView<'_>,
        f: impl FnOnce(&GpuContext, &NamespaceMirror) -> ComputeResult<T>,
    ) -> ComputeResult<T> {
        let mut st = self.mirror.lock();
        let MirrorState { mirror, pending } = &mut *st;
        let m = match mirror {
            Some(m) => {
                m.update(&self.ctx, view, pending)?;
                m
            }
            None => {
                let m = mirror.insert(NamespaceMirror::upload(&self.ctx, view)?);
                pending.clear();
                m
            }
        };
        f(&self.ctx, m)
    }
}

impl Compute {
    /// The GPU kernels run on, if any.
    pub fn gpu(&self) -> Option<&GpuContext> {
        self.gpu.as_ref().map(GpuSide::ctx)
    }
}
