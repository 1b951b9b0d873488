//! The kernels: each `kernels/NAME.wgsl` with its CPU twin in `NAME.rs`.

pub mod dfa;
pub mod dir_sort;
pub mod glob;
pub mod lz4;
pub mod name_match;
pub mod path_build;
pub mod path_lookup;
pub mod subtree_sum;
