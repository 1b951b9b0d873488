//! The wgpu backend: device, chunked arrays, dispatch grids, buffer pool.

mod arrays;
mod context;
mod grid;
mod pool;
pub(crate) mod rounds;

pub use arrays::{arrays_group, ChunkedArray, SLOTS};
pub use context::{GpuContext, GpuOptions, Kernel, Slot, WORKGROUP};
pub use pool::BufferPool;
