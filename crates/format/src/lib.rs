//! gpufs on-disk format, version 8 (reads versions 1 to 8).
//!
//! Every record here is `#[repr(C)]`, plain-old-data (`bytemuck::Pod`), little-endian, and
//! size-asserted at compile time. The byte-by-byte description lives in `docs/FORMAT.md`;
//! keep the two in step. This crate does no I/O: it lays records out, encodes and decodes
//! them, and checks their checksums. Every decoder validates sizes before any arithmetic
//! and returns [`FormatError`] instead of panicking on hostile bytes.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod checkpoint;
pub mod error;
pub mod journal;
pub mod keyslot;
pub mod pages;
pub mod props;
pub mod records;
pub mod segments;
pub mod send;
pub mod signature;
pub mod snapshot;
pub mod superblock;

pub use checkpoint::{CheckpointHeader, CheckpointRoot, ExtentEntry, CKPT_MAGIC};
pub use error::FormatError;
pub use journal::{JournalBlockHeader, JournalOp, JOURNAL_MAGIC};
pub use props::{Compression, PropertyError};
pub use records::{DirentRecord, FileKind, InodeRecord, RecordPtr};
pub use superblock::{Superblock, SUPERBLOCK_MAGIC};

/// Size of one block, the unit of allocation and of every metadata write.
pub const BLOCK_SIZE: usize = 4096;
/// On-disk format version written by this build. Images of an older version this build
/// reads ([`OLDEST_READABLE_VERSION`]..) are upgraded by their first write; any other
/// version is refused with a clear message.
pub const FORMAT_VERSION: u32 = 8;
/// Oldest format version this build opens. Version 2 only gives meaning to bytes that
/// version 1 kept zero (record-pointer flags, inode property bits, the superblock's
/// default compression), so a version 1 image is a valid version 2 image. Version 3 lets
/// several pointers share one record (the journal's `ExtentShare` op): a version 1 or 2
/// image has no shared record and is a valid version 3 image, but an older build would
/// free a shared record with its first reference, so it must refuse version 3. Version 4
/// gives meaning to superblock bytes 176..248, zero before (the in-use marker: zero is
/// "nobody holds it"), so an older image is a valid version 4 image; an older build
/// would ignore another host's marker, so it must refuse version 4. Version 5 stores a
/// checkpoint as pages under a page table (a root of version 5 or later points at a
/// page table, an older root at the blob itself); the root says which, so an older image
/// is a valid version 5 image, and an older build would read a page table as a blob.
/// Version 6 may encrypt an image (superblock flag `FLAG_ENCRYPTED`, key slots at
/// `key_area`, superblock bytes 248..252, zero before): an older image is a valid
/// unencrypted version 6 image; an older build would read ciphertext as metadata, so it
/// must refuse version 6. Version 7 writes the checkpoint blob in segments by inode
/// range (`segments`), so that a checkpoint rewrites only the segments that changed; a
/// blob says by its magic which form it has, so an older image is a valid version 7
/// image, and an older build would refuse a segmented blob's magic as damage. Version 8
/// puts the page table in pages of its own under a page index (`pages`), which a root
/// of version 8 or later points at: the root says which, so an older image is a valid
/// version 8 image; an older build must refuse version 8, as it cannot read the table.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// True for the format versions this build opens.
pub fn is_readable_version(version: u32) -> bool {
    (OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version)
}
/// Longest name a directory entry may hold, in bytes (POSIX `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Inode number of the root directory (FUSE's `FUSE_ROOT_ID`).
pub const ROOT_INO: u32 = 1;
/// Smallest and largest record size `mkfs` accepts.
pub const MIN_RECORD_SIZE: u32 = 4096;
pub const MAX_RECORD_SIZE: u32 = 1 << 20;

/// CRC32C (Castagnoli) of `bytes`: the checksum of every metadata block and data record.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Hash of a directory entry's key, `(parent inode, name)`: FNV-1a 64 folded to 32 bits.
/// It is stored in every dirent, so that the CPU index and GPU kernels probe the same
/// table with the same function.
pub fn name_hash(parent: u32, name: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parent.to_le_bytes().iter().chain(name.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 32)) as u32
}

/// Reads a little-endian `u32` at `off`, or `None` when out of bounds.
pub(crate) fn get_u32(bytes: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    let s = bytes.get(off..end)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads a little-endian `u64` at `off`, or `None` when out of bounds.
pub(crate) fn get_u64(bytes: &[u8], off: usize) -> Option<u64> {
    let end = off.checked_add(8)?;
    let s = bytes.get(off..end)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}
