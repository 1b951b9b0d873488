//! [`Compute`]: the one object the rest of gpufs calls. It holds the GPU side (if any:
//! the device and the mirror of the namespace on it), the policy that picks a backend per
//! call, and the statistics of what ran where.

mod data;
#[cfg(feature = "gpu")]
mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "cpu_only.rs"]
mod gpu;
mod text;

use std::collections::HashMap;
use std::time::Instant;

use crate::choice::{Backend, Choice};
use crate::error::{ComputeError, ComputeResult};
use crate::kernels::dir_sort::{self, SortKey};
use crate::kernels::name_match::NameMatcher;
use crate::kernels::subtree_sum::{self, DirTotals};
use crate::kernels::{path_build, path_lookup};
use crate::stats::Stats;
use crate::view::{NamespaceDirty, NamespaceView};
use gpu::GpuSide;

/// Smallest batch (items) at which `auto` sends a kernel to the GPU, per kernel.
/// Filled by `calibrate`; a kernel without an entry stays on the CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub gpu_from: HashMap<String, u64>,
}

/// The compute layer as the filesystem uses it.
#[derive(Debug)]
pub struct Compute {
    choice: Choice,
    /// The device and its namespace mirror; always `None` without the `gpu` feature.
    gpu: Option<GpuSide>,
    policy: Policy,
    pub stats: Stats,
}

/// The GPU half of a kernel call: `$call`, with `$g` the [`GpuSide`]. Without the `gpu`
/// feature there is no GPU side (the type has no values): the call is neither made nor
/// compiled.
#[cfg(feature = "gpu")]
macro_rules! on_gpu {
    ($g:ident => $call:expr) => {
        $call
    };
}
#[cfg(not(feature = "gpu"))]
macro_rules! on_gpu {
    ($g:ident => $call:expr) => {
        match *$g {}
    };
}
use on_gpu;

impl Compute {
    /// CPU twins only.
    pub fn cpu_only() -> Compute {
        Compute {
            choice: Choice::Cpu,
            gpu: None,
            policy: Policy::default(),
            stats: Stats::default(),
        }
    }

    /// Opens the backend `choice` asks for. `Gpu` without an adapter is an error (and
    /// without the `gpu` feature always one); `Auto` without a hardware adapter logs one
    /// line and uses the CPU. With `auto` on a hardware adapter the policy is the cached
    /// calibration of that adapter, measured now when there is none yet.
    pub fn open(choice: Choice) -> ComputeResult<Compute> {
        let (gpu, policy) = GpuSide::open(choice)?;
        Ok(Compute {
            choice,
            gpu,
            policy,
            stats: Stats::default(),
        })
    }

    pub fn choice(&self) -> Choice {
        self.choice
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Where `kernel` over `items` runs.
    pub fn backend_for(&self, kernel: &str, items: u64) -> Backend {
        match (self.choice, &self.gpu) {
            (Choice::Gpu, Some(_)) => Backend::Gpu,
            (Choice::Auto, Some(_)) => match self.policy.gpu_from.get(kernel) {
                Some(&from) if items >= from => Backend::Gpu,
                _ => Backend::Cpu,
            },
            _ => Backend::Cpu,
        }
    }

    /// Records namespace changes; the mirror catches up before the next GPU call.
    pub fn note_changes(&self, dirty: &NamespaceDirty) {
        if let Some(g) = &self.gpu {
            g.note_changes(dirty);
        }
    }

    /// Runs the GPU version when the policy says so and it can, else (or when the GPU
    /// fails with `auto`) the CPU twin; records which ran and how long it took.
    pub(crate) fn run<T>(
        &self,
        kernel: &'static str,
        items: u64,
        gpu_capable: bool,
        gpu: impl FnOnce(&GpuSide) -> ComputeResult<T>,
        cpu: impl FnOnce() -> T,
    ) -> ComputeResult<T> {
        self.run_on(kernel, items, gpu_capable, gpu, cpu)
            .map(|(v, _)| v)
    }

    /// [`Compute::run`], telling which backend produced the result.
    pub(crate) fn run_on<T>(
        &self,
        kernel: &'static str,
        items: u64,
        gpu_capable: bool,
        gpu: impl FnOnce(&GpuSide) -> ComputeResult<T>,
        cpu: impl FnOnce() -> T,
    ) -> ComputeResult<(T, Backend)> {
        let start = Instant::now();
        let on_gpu = gpu_capable && self.backend_for(kernel, items) == Backend::Gpu;
        if let Some(g) = self.gpu.as_ref().filter(|_| on_gpu) {
            match gpu(g) {
                Ok(v) => {
                    self.stats
                        .record(kernel, Backend::Gpu, items, start.elapsed());
                    return Ok((v, Backend::Gpu));
                }
                Err(e) if self.choice == Choice::Gpu && !matches!(e, ComputeError::TooLarge(_)) => {
                    return Err(e)
                }
                Err(e) => tracing::info!("{kernel} on the CPU: {e}"),
            }
        }
        let start = Instant::now();
        let v = cpu();
        self.stats
            .record(kernel, Backend::Cpu, items, start.elapsed());
        Ok((v, Backend::Cpu))
    }

    /// Ids of the entries whose names match, ascending.
    pub fn name_match(&self, m: &NameMatcher, view: &NamespaceView<'_>) -> ComputeResult<Vec<u32>> {
        self.run(
            crate::kernels::name_match::NAME,
            view.dirents.len() as u64,
            m.gpu_capable(),
            |g| on_gpu!(g => g.with_mirror(view, |ctx, mirror| m.gpu(ctx, mirror))),
            || m.cpu(view),
        )
    }

    /// Ids of live entries of a kind in `kinds` whose full path matches: one DFA run
    /// over each name, from its directory's memoized state; on the CPU visiting through
    /// the namespace owner's directory listing only the directories whose entries can
    /// match (see [`crate::view::DirListing`]), on the GPU one invocation per entry.
    pub fn path_match(
        &self,
        m: &crate::kernels::path_match::PathMatcher,
        view: &NamespaceView<'_>,
        kinds: u32,
        listing: &dyn crate::view::DirListing,
    ) -> ComputeResult<Vec<u32>> {
        self.run(
            crate::kernels::path_match::NAME,
            view.dirents.len() as u64,
            true,
            |g| on_gpu!(g => g.with_mirror(view, |ctx, mirror| m.gpu(ctx, mirror, view, kinds))),
            || m.cpu_listed(view, kinds, listing),
        )
    }

    /// Paths of `ids`.
    pub fn path_build(
        &self,
        view: &NamespaceView<'_>,
        ids: &[u32],
    ) -> ComputeResult<path_build::PathList> {
        self.run(
            path_build::NAME,
            ids.len() as u64,
            true,
            |g| on_gpu!(g => g.with_mirror(view, |ctx, mirror| path_build::gpu(ctx, mirror, ids))),
            || path_build::cpu(view, ids),
        )
    }

    /// The paths of `ids` written out as `format` says, in pieces to write in order
    /// (entries without a path left out): what [`Compute::path_build`] builds, without
    /// a list in between on the CPU.
    pub fn path_join(
        &self,
        view: &NamespaceView<'_>,
        ids: &[u32],
        format: &path_build::PathFormat,
    ) -> ComputeResult<Vec<Vec<u8>>> {
        self.run(
            path_build::NAME,
            ids.len() as u64,
            true,
            |g| {
                on_gpu!(g => g.with_mirror(view, |ctx, mirror| {
                    path_build::gpu(ctx, mirror, ids).map(|l| path_build::join(&l, format))
                }))
            },
            || path_build::cpu_joined(view, ids, format),
        )
    }

    /// Inodes of `paths` (0: does not resolve).
    pub fn path_lookup(
        &self,
        view: &NamespaceView<'_>,
        paths: &[&[u8]],
    ) -> ComputeResult<Vec<u32>> {
        self.run(
            path_lookup::NAME,
            paths.len() as u64,
            true,
            |g| on_gpu!(g => g.with_mirror(view, |ctx, mirror| path_lookup::gpu(ctx, mirror, paths))),
            || path_lookup::cpu(view, paths),
        )
    }

    /// `ids` (one directory's entries) sorted stably by `key`.
    pub fn dir_sort(
        &self,
        view: &NamespaceView<'_>,
        ids: &[u32],
        key: SortKey,
        descending: bool,
    ) -> ComputeResult<Vec<u32>> {
        self.run(
            dir_sort::NAME,
            ids.len() as u64,
            true,
            |g| {
                on_gpu!(g => g.with_mirror(view, |ctx, mirror| {
                    dir_sort::gpu(ctx, mirror, ids, key, descending)
                }))
            },
            || dir_sort::cpu(view, ids, key, descending),
        )
    }

    /// Recursive totals of every directory, indexed by inode number.
    pub fn subtree_sum(&self, view: &NamespaceView<'_>) -> ComputeResult<Vec<DirTotals>> {
        self.run(
            subtree_sum::NAME,
            view.dirents.len() as u64,
            true,
            |g| on_gpu!(g => g.with_mirror(view, subtree_sum::gpu)),
            || subtree_sum::cpu(view),
        )
    }
}

/// A [`Compute`] opened on first use, so a process that never runs a kernel never loads
/// a GPU driver. Shared by everything in a mount that queries.
#[derive(Debug)]
pub struct LazyCompute {
    choice: Choice,
    cell: std::sync::OnceLock<Result<Compute, String>>,
}

impl LazyCompute {
    pub fn new(choice: Choice) -> LazyCompute {
        LazyCompute {
            choice,
            cell: std::sync::OnceLock::new(),
        }
    }

    /// The backend choice it opens with.
    pub fn choice(&self) -> Choice {
        self.choice
    }

    /// The compute layer, opening it on the first call.
    pub fn get(&self) -> Result<&Compute, String> {
        self.cell
            .get_or_init(|| Compute::open(self.choice).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}
