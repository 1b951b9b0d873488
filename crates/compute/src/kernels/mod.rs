//! The kernels: each `kernels/NAME.wgsl` with its CPU twin in `NAME.rs`.

pub mod dfa;
pub mod glob;
pub mod name_match;
