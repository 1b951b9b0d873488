//! gpufs core: POSIX semantics over a copy-on-write, journaled image.
//!
//! Layers, bottom up: [`device`] (image file, fault-injecting test device), [`alloc`]
//! (free-space bitmap), [`namespace`] (flat inode/dirent/name arrays with a hash index),
//! [`journal`] and [`volume`] (commit, checkpoint, recovery), [`fs`] (the POSIX API the
//! FUSE adapter and tests call), [`fsck`].
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod alloc;
pub mod device;
pub mod error;
pub mod fs;
pub mod fsck;
pub mod journal;
pub mod namespace;
pub mod time;
pub mod volume;

pub use error::{FsError, FsResult};
pub use fs::{Attr, Caller, Filesystem, SetAttr};
pub use volume::{mkfs, MkfsOptions, OpenOptions, Volume};
