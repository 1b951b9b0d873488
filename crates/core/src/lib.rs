//! gpufs core: POSIX semantics over a copy-on-write, journaled image.
//!
//! Layers, bottom up: [`device`] (image file, fault-injecting test device), `alloc`
//! (free-space bitmap), `namespace` (flat inode/dirent/name arrays with a hash index),
//! `records` (byte ranges as record spans; the one write and read path of data
//! records), `journal` and `volume` (commit, checkpoint, recovery; the namespace's only
//! mutator), [`fs`] (the POSIX API the FUSE adapter and tests call), [`fsck`].
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod alloc;
pub mod crypt;
pub mod device;
mod error;
pub mod fs;
pub mod fsck;
mod fsck_snapshots;
mod journal;
mod namespace;
mod records;
#[cfg(test)]
mod test_bytes;
pub mod time;
mod units;
mod volume;

pub use error::{FsError, FsResult};
pub use fs::{Attr, Caller, Filesystem, SetAttr};
pub use records::{RecordCounters, Totals};
pub use volume::{
    mkfs, refuse_if_held_elsewhere, AtimeMode, DedupCounters, MkfsOptions, NewKey, OpenOptions,
    SnapshotInfo, VolumeCounters,
};
