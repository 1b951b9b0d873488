//! LZ4 block compression and decompression of record batches (the LZ4 *block* format,
//! no frame), on the CPU with `lz4_flex` and on the GPU with kernels/lz4_compress.wgsl
//! and kernels/lz4_decompress.wgsl.
//!
//! Compression keeps a block only when it is strictly shorter than its record
//! ([`Compressed::shrunk`]); the caller stores the other records raw. The two backends
//! may produce different blocks (the GPU matches within 4 KiB segments of a record), but
//! every block of either one follows the LZ4 end rules and decodes with any conforming
//! decoder.
//!
//! Decompression checks every record against the length the caller expects. It accepts
//! exactly what `lz4_flex::block::decompress_into` (safe-decode) accepts into a buffer of
//! that length, and gives the same [`Lz4Error`] on both backends. A record that fails is
//! all zeros, of its expected length.

mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu_compress;
#[cfg(feature = "gpu")]
pub mod gpu_decompress;

use crate::records::RecordBatch;

pub use cpu::{
    compress_cpu, compress_cpu_one_thread, compress_one, decompress_cpu, decompress_cpu_into,
    decompress_cpu_one_thread, decompress_cpu_one_thread_into, decompress_one,
};
#[cfg(feature = "gpu")]
pub use gpu_compress::gpu as compress_gpu;
#[cfg(feature = "gpu")]
pub use gpu_decompress::gpu as decompress_gpu;

/// Kernel name of the GPU compressor.
pub const COMPRESS: &str = "lz4_compress";
/// Kernel name of the GPU decompressor.
pub const DECOMPRESS: &str = "lz4_decompress";

/// Blocks of a compressed batch: record `i` of `blocks` is the LZ4 block of input record
/// `i` when `shrunk[i]`, else empty (the block would not have been shorter than the
/// record, or the record is empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compressed {
    pub blocks: RecordBatch,
    pub shrunk: Vec<bool>,
}

/// Why one record did not decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Lz4Error {
    /// Not a valid LZ4 block: truncated, an offset of 0 or before the start of the
    /// output, a literal run past the end of the input, or an empty block.
    #[error("not a valid LZ4 block")]
    Malformed,
    /// The block decodes to more than the expected length.
    #[error("the block decodes to more than {expected} bytes")]
    TooLong { expected: u32 },
    /// The block decodes to fewer bytes than expected.
    #[error("the block decodes to {got} bytes, {expected} expected")]
    TooShort { expected: u32, got: u32 },
}

/// Decompressed records: record `i` of `data` has the expected length `sizes[i]`; it holds
/// the record when `status[i]` is `Ok`, else zeros.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decompressed {
    pub data: RecordBatch,
    pub status: Vec<Result<(), Lz4Error>>,
}

/// Output batch of zeroed records of the expected sizes, refusing a size count that does
/// not match the block count or a size over the largest record.
pub(crate) fn output_layout(
    blocks: &RecordBatch,
    sizes: &[u32],
) -> crate::ComputeResult<RecordBatch> {
    if sizes.len() != blocks.len() {
        return Err(crate::ComputeError::BadInput(format!(
            "{} expected sizes for {} blocks",
            sizes.len(),
            blocks.len()
        )));
    }
    let total: usize = sizes.iter().map(|&s| s as usize).sum();
    let mut out = RecordBatch::with_capacity(sizes.len(), total);
    for &s in sizes {
        out.push_zeroed(s as usize)?;
    }
    Ok(out)
}
