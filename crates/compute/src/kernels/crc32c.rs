//! CRC32C of every record of a batch: the Castagnoli CRC (reflected polynomial
//! 0x82F63B78, init and xorout `!0`), exactly what `crc32c::crc32c(record)` returns; an
//! empty record gives 0. CPU twin of kernels/crc32c_blocks.wgsl and kernels/crc32c.wgsl.
//!
//! The GPU algorithm is described in `crc32c/gpu.rs`.

use rayon::prelude::*;

use crate::records::RecordBatch;

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub use gpu::{gpu, read, run, upload, upload_in_parts, CrcOutput, CrcPart};

pub const NAME: &str = "crc32c";

/// Bytes one invocation of the GPU kernel checksums.
pub const SLICE_BYTES: u32 = 256;
/// Bytes one workgroup of the GPU kernel checksums (256 slices).
pub const BLOCK_BYTES: u32 = SLICE_BYTES * 256;

/// CPU twin on every core.
pub fn cpu(batch: &RecordBatch) -> Vec<u32> {
    (0..batch.len())
        .into_par_iter()
        .map(|i| crc32c::crc32c(batch.get(i)))
        .collect()
}

/// CPU twin on one thread.
pub fn cpu_one_thread(batch: &RecordBatch) -> Vec<u32> {
    batch.iter().map(crc32c::crc32c).collect()
}
