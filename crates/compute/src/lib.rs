//! gpufs compute layer: one kernel set on two backends. Every kernel is a WGSL file
//! (`kernels/NAME.wgsl`, run through `wgpu` on Vulkan, Metal or DX12) with a CPU twin
//! (`src/kernels/NAME.rs`, rayon) that computes exactly the same function; property
//! tests hold them equal. [`Compute`] picks the backend per call.

#![deny(unsafe_code)]

pub mod calibrate;
pub mod choice;
pub mod compute;
mod compute_data;
mod compute_text;
pub mod dir_tree;
pub mod error;
pub mod gpu;
pub mod index;
pub mod kernels;
pub mod mirror;
pub mod ordered;
pub mod prefetch;
pub mod records;
pub mod rng;
pub mod stats;
pub mod synth;
pub mod synth_data;
pub mod view;

pub use choice::{Backend, Choice};
pub use compute::{Compute, LazyCompute, Policy};
pub use error::{ComputeError, ComputeResult};
