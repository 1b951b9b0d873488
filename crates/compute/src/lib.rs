//! gpufs compute layer: one kernel set on two backends. Every kernel is a WGSL file
//! (`kernels/NAME.wgsl`, run through `wgpu` on Vulkan, Metal or DX12) with a CPU twin
//! (`src/kernels/NAME.rs`, rayon) that computes exactly the same function; property
//! tests hold them equal. [`Compute`] picks the backend per call.
//!
//! What a kernel reads is borrowed from its owner ([`view`]: the namespace arrays, the
//! name owners, directory listings, the ranges changed since the mirror's last update;
//! [`index`]: how the dirent index's slots are laid out and probed; [`dir_tree`]: every
//! directory's path, derived from the arrays). The core keeps the namespace itself.
//!
//! Features: `gpu` (default) builds the wgpu backend ([`gpu`], [`mirror`],
//! [`calibrate`] and each kernel's `NAME/gpu.rs`); without it the CPU twins run
//! everything. `synth` (implied by `gpu`) builds the seeded synthetic inputs.

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "gpu")]
pub mod calibrate;
pub mod choice;
mod compute;
pub mod dir_tree;
mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod index;
pub mod kernels;
#[cfg(feature = "gpu")]
pub mod mirror;
mod ordered;
mod prefetch;
pub mod records;
mod stats;
#[cfg(feature = "synth")]
pub mod synth;
pub mod view;

pub use choice::{Backend, Choice};
pub use compute::{Compute, LazyCompute, Policy};
pub use error::{ComputeError, ComputeResult};
pub use stats::{KernelTotals, Stats};
