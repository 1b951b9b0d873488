//! Numbers whose meaning matters where they cross a module boundary: inode numbers,
//! absolute device blocks, record indexes and byte offsets within a file. Each is a
//! newtype, so that a block number cannot be passed where an inode or a record index is
//! wanted. Inside a module, and in the namespace's and the journal's plain integers, the
//! raw values are used; these types sit at the volume's and the record pipeline's API.

use std::fmt;

use gpufs_format::BLOCK_SIZE;

use crate::error::{FsError, FsResult};

/// An inode number (a slot of the inode table; 1 is the root, 0 is never used).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ino(u32);

impl Ino {
    pub const ROOT: Ino = Ino(gpufs_format::ROOT_INO);

    pub const fn new(ino: u32) -> Ino {
        Ino(ino)
    }

    /// The number as the namespace and the journal store it.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// An inode number from the kernel (u64 in FUSE). Ours fit in u32; from 2^40 on the
    /// adapter numbers its read-only views (search results, snapshots), so a change
    /// asked there is refused as on a read-only filesystem; others name nothing.
    pub fn from_kernel(ino: u64) -> FsResult<Ino> {
        if ino >= 1 << 40 {
            return Err(FsError::ReadOnly);
        }
        u32::try_from(ino).map(Ino).map_err(|_| FsError::NotFound)
    }
}

impl From<Ino> for u64 {
    fn from(ino: Ino) -> u64 {
        u64::from(ino.0)
    }
}

impl fmt::Display for Ino {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An absolute device block (block 0 is the first superblock slot), as record pointers
/// and checkpoint roots store them. The allocator counts from the data area's start
/// instead; the volume converts between the two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockNo(u64);

impl BlockNo {
    pub const fn new(block: u64) -> BlockNo {
        BlockNo(block)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// Byte offset of the block on the device.
    pub const fn byte_offset(self) -> u64 {
        self.0 * BLOCK_SIZE as u64
    }
}

impl fmt::Display for BlockNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The index of a record within its file: record `i` covers file bytes `i*R .. (i+1)*R`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordIndex(u64);

impl RecordIndex {
    /// Past every record a file can have (the end of "from here on" ranges).
    pub const END: RecordIndex = RecordIndex(u64::MAX);

    pub const fn new(index: u64) -> RecordIndex {
        RecordIndex(index)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The record after this one.
    pub const fn next(self) -> RecordIndex {
        RecordIndex(self.0 + 1)
    }
}

impl fmt::Display for RecordIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A byte offset within a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileOffset(u64);

impl FileOffset {
    pub const fn new(offset: u64) -> FileOffset {
        FileOffset(offset)
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FileOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
