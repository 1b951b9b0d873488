//! BLAKE3-256 of every record of a batch, plain (`blake3::hash`) or keyed
//! (`blake3::keyed_hash`, for encrypted filesystems). CPU twin of
//! kernels/blake3_chunks.wgsl and kernels/blake3.wgsl (both built on
//! kernels/blake3_compress.wgsl).
//!
//! The GPU algorithm is described in `blake3/gpu.rs`.

use rayon::prelude::*;

use crate::records::RecordBatch;

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub use gpu::{gpu, read, run, upload, upload_in_parts, Blake3Output, Blake3Part};

pub const NAME: &str = "blake3";

/// Which BLAKE3 function to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blake3Mode {
    /// `blake3::hash`.
    Hash,
    /// `blake3::keyed_hash` with this key.
    Keyed([u8; 32]),
}

impl Blake3Mode {
    fn hash(&self, record: &[u8]) -> [u8; 32] {
        match self {
            Blake3Mode::Hash => *blake3::hash(record).as_bytes(),
            Blake3Mode::Keyed(key) => *blake3::keyed_hash(key, record).as_bytes(),
        }
    }
}

/// BLAKE3 of one record on this thread (the write path hashes records as it prepares
/// them, already on every core).
pub fn hash_one(record: &[u8], mode: &Blake3Mode) -> [u8; 32] {
    mode.hash(record)
}

/// CPU twin on every core.
pub fn cpu(batch: &RecordBatch, mode: &Blake3Mode) -> Vec<[u8; 32]> {
    (0..batch.len())
        .into_par_iter()
        .map(|i| mode.hash(batch.get(i)))
        .collect()
}

/// CPU twin on one thread.
pub fn cpu_one_thread(batch: &RecordBatch, mode: &Blake3Mode) -> Vec<[u8; 32]> {
    batch.iter().map(|r| mode.hash(r)).collect()
}
