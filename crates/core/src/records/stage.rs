//! The stages a data record passes through, as a table in the manner of OpenZFS's zio
//! pipeline: a write runs an ordered list of stages, each of which may transform the
//! bytes to be stored and fill in fields of the record pointer, and sets the pointer
//! flag that says so; a read undoes, last applied first, each transforming stage whose
//! flag the pointer carries.
//!
//! The design's full order is zero detection, hash, dedup, compression, encryption,
//! checksum, allocation, write. This build implements the last three: format v1 stores
//! records as they are. A new stage is a variant here, ranked by its place in that
//! order, with its flag, its `run` and its `undo`; the file system layer above does not
//! change.

use std::borrow::Cow;

use gpufs_format::{checksum, RecordPtr, BLOCK_SIZE};

use super::pipeline::{BlockSink, RecordError};
use crate::error::FsResult;
use crate::units::BlockNo;

/// One step of the write pipeline. Variants are declared in pipeline order, so the
/// derived ordering is the order a pipeline must list them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// CRC32C of the bytes as stored, into the pointer's `checksum`.
    Checksum,
    /// Contiguous blocks of the data area for the stored bytes.
    Allocate,
    /// The stored bytes, zero-padded to whole blocks, to the allocated blocks.
    Write,
}

/// Every stage this build implements, in pipeline order.
pub const ALL_STAGES: &[Stage] = &[Stage::Checksum, Stage::Allocate, Stage::Write];

/// The write pipeline of format version 1: the bytes stored as they are.
pub const V1_WRITE: &[Stage] = &[Stage::Checksum, Stage::Allocate, Stage::Write];

/// Pointer flags this build can undo: those of the stages it implements.
pub const fn known_flags() -> u32 {
    let mut flags = 0;
    let mut i = 0;
    while i < ALL_STAGES.len() {
        flags |= ALL_STAGES[i].flag();
        i += 1;
    }
    flags
}

// The format's list of flags a reader accepts is exactly what the stages can undo.
const _: () = assert!(known_flags() == RecordPtr::KNOWN_FLAGS);

impl Stage {
    /// The record-pointer flag the stage sets when it transforms the bytes; 0 for a
    /// stage that leaves them as they are.
    pub const fn flag(self) -> u32 {
        match self {
            Stage::Checksum | Stage::Allocate | Stage::Write => 0,
        }
    }

    /// May the stage change how many bytes are stored (`phys_len != logical_len`)?
    pub const fn changes_length(self) -> bool {
        match self {
            Stage::Checksum | Stage::Allocate | Stage::Write => false,
        }
    }

    /// Runs the stage on a record being written.
    pub(super) fn run(self, io: &mut WriteIo<'_>, sink: &mut impl BlockSink) -> FsResult<()> {
        match self {
            Stage::Checksum => {
                io.ptr.checksum = checksum(&io.stored);
                Ok(())
            }
            Stage::Allocate => {
                let count = io.block_count();
                let block = sink.allocate(count)?;
                io.ptr.block = block.get();
                io.allocated = Some((block, count));
                Ok(())
            }
            Stage::Write => {
                let (block, count) = io.allocated.ok_or_else(|| {
                    crate::error::FsError::corrupt("record pipeline writes before it allocates")
                })?;
                write_padded(sink, block, count, &io.stored)
            }
        }
    }

    /// Undoes the stage's transformation of `bytes` on a read (stages with a flag only).
    pub(super) fn undo(self, _bytes: &mut Vec<u8>) -> Result<(), RecordError> {
        match self {
            Stage::Checksum | Stage::Allocate | Stage::Write => Ok(()),
        }
    }
}

/// Is `stages` a write pipeline: stages in pipeline order, none twice, ending with the
/// allocation and the write, the checksum taken of the final bytes?
pub fn is_valid_pipeline(stages: &[Stage]) -> bool {
    let ordered = stages.windows(2).all(|w| w[0] < w[1]);
    let ends = stages.ends_with(&[Stage::Allocate, Stage::Write]);
    let checksummed = stages.contains(&Stage::Checksum);
    ordered && ends && checksummed
}

/// A record on its way through the write pipeline.
pub(super) struct WriteIo<'a> {
    /// The bytes to store: the logical bytes until a stage transforms them.
    pub(super) stored: Cow<'a, [u8]>,
    /// The pointer being built.
    pub(super) ptr: RecordPtr,
    /// The blocks the allocation stage took, to give back when a later stage fails.
    pub(super) allocated: Option<(BlockNo, u64)>,
}

impl<'a> WriteIo<'a> {
    pub(super) fn new(data: &'a [u8], birth_gen: u64) -> Self {
        WriteIo {
            stored: Cow::Borrowed(data),
            ptr: RecordPtr {
                block: 0,
                logical_len: data.len() as u32,
                phys_len: data.len() as u32,
                birth_gen,
                checksum: 0,
                flags: 0,
                hash: [0; 32],
            },
            allocated: None,
        }
    }

    /// Blocks the stored bytes take (at least one).
    fn block_count(&self) -> u64 {
        (self.stored.len() as u64)
            .div_ceil(BLOCK_SIZE as u64)
            .max(1)
    }
}

/// Writes `bytes` to `count` blocks at `block`, zero-padded to the last block's end
/// (copied only when they do not end on a block boundary).
fn write_padded(
    sink: &mut impl BlockSink,
    block: BlockNo,
    count: u64,
    bytes: &[u8],
) -> FsResult<()> {
    let whole = count as usize * BLOCK_SIZE;
    debug_assert!(bytes.len() <= whole && whole - bytes.len() <= BLOCK_SIZE);
    if bytes.len() == whole {
        return sink.write_blocks(block, bytes);
    }
    let mut padded = Vec::with_capacity(whole);
    padded.extend_from_slice(bytes);
    padded.resize(whole, 0);
    sink.write_blocks(block, &padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_are_checked_for_order_and_ending() {
        assert!(is_valid_pipeline(V1_WRITE));
        assert!(is_valid_pipeline(ALL_STAGES));
        assert!(!is_valid_pipeline(&[
            Stage::Allocate,
            Stage::Checksum,
            Stage::Write
        ]));
        assert!(!is_valid_pipeline(&[Stage::Checksum, Stage::Write]));
        assert!(!is_valid_pipeline(&[Stage::Allocate, Stage::Write]));
        assert!(!is_valid_pipeline(&[
            Stage::Checksum,
            Stage::Checksum,
            Stage::Allocate,
            Stage::Write
        ]));
    }

    #[test]
    fn v1_stages_leave_bytes_and_length_alone() {
        assert_eq!(known_flags(), 0);
        for s in ALL_STAGES {
            assert_eq!(s.flag(), 0);
            assert!(!s.changes_length());
        }
    }
}
