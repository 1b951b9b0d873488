//! The kernels: each `kernels/NAME.wgsl` with its CPU twin in `NAME.rs`, whose GPU side
//! (uploads, dispatches, read-back; built with the `gpu` feature) is `NAME/gpu.rs`. The
//! helpers `dfa`, `glob` and `name_scan` compile and run the name queries on the CPU.
//! `zstd` is CPU only: its entropy coder has no data-parallel form worth a GPU kernel.

pub mod blake3;
pub mod crc32c;
mod dfa;
pub mod dir_sort;
mod glob;
pub mod lz4;
pub mod name_match;
mod name_scan;
pub mod path_build;
pub mod path_lookup;
pub mod path_match;
pub mod subtree_sum;
pub mod xts;
pub mod zstd;

use gpufs_format::DirentRecord;
use rayon::prelude::*;

/// Ids of the entries `keep` accepts, ascending: the entries split in chunks over every
/// core. The entry-by-entry pass every CPU twin over the dirent table makes.
pub(crate) fn matching_ids(
    dirents: &[DirentRecord],
    keep: impl Fn(&DirentRecord) -> bool + Sync,
) -> Vec<u32> {
    const CHUNK: usize = 16_384;
    dirents
        .par_chunks(CHUNK)
        .enumerate()
        .flat_map_iter(|(c, chunk)| {
            let base = (c * CHUNK) as u32;
            let keep = &keep;
            chunk
                .iter()
                .enumerate()
                .filter(move |(_, d)| keep(d))
                .map(move |(i, _)| base + i as u32)
        })
        .collect()
}
