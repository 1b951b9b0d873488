//! The wgpu backend: device, chunked arrays, dispatch grids, buffer pool.

pub mod arrays;
pub mod context;
pub mod grid;
pub mod pool;

pub use arrays::{arrays_group, ChunkedArray};
pub use context::{GpuContext, GpuOptions, Kernel, Slot, WORKGROUP};
