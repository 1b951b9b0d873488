//! The kernels: each `kernels/NAME.wgsl` with its CPU twin in `NAME.rs`.

pub mod blake3;
pub mod crc32c;
pub mod dfa;
pub mod dir_sort;
pub mod glob;
pub mod lz4;
pub mod name_match;
pub mod name_scan;
pub mod path_build;
pub mod path_lookup;
pub mod path_match;
mod rounds;
pub mod subtree_sum;
pub mod xts;
