//! The stages a data record passes through, as a table in the manner of OpenZFS's zio
//! pipeline: a write runs an ordered list of stages, each of which may transform the
//! bytes to be stored and fill in fields of the record pointer, and sets the pointer
//! flag that says so; a read undoes, last applied first, each transforming stage whose
//! flag the pointer carries.
//!
//! The design's full order is zero detection, hash, dedup, compression, encryption,
//! checksum, allocation, write. This build implements every one of them (dedup is the
//! volume's decision on the hash, before placing). The stages up to the checksum transform bytes only
//! and run on any thread, batches of records at once ([`super::pipeline::prepare`]);
//! allocation and write place the result on the device. A new stage is a variant here,
//! ranked by its place in that order, with its flags, its `run` and its `undo`; the
//! file system layer above does not change.

use std::borrow::Cow;
use std::sync::Arc;

use gpufs_compute::kernels::blake3::{self, Blake3Mode};
use gpufs_compute::Backend;
use gpufs_format::{checksum, Compression, RecordPtr, BLOCK_SIZE};

use super::codec::{self, Verdict};
use super::pipeline::{BlockSink, RecordError};
use crate::crypt::{Domain, SealKeys};
use crate::error::FsResult;
use crate::units::BlockNo;

/// One step of the write pipeline. Variants are declared in pipeline order, so the
/// derived ordering is the order a pipeline must list them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// A record of zeros is not stored: it becomes a hole.
    Zero,
    /// With dedup on, BLAKE3 of the logical bytes into the pointer's `hash`: the key
    /// the volume looks the record up by before storing it.
    Hash,
    /// LZ4 or zstd, as the file's compression property says, kept only when it saves
    /// an eighth and a block; skipped when a sample says the bytes are incompressible.
    Compress,
    /// On an encrypted volume, the bytes sealed (`crate::crypt::seal`: AES-256-XTS, the
    /// tweak from a keyed BLAKE3 tag of the plaintext) and the tag into the pointer's
    /// `hash`, which is then also the dedup key.
    Encrypt,
    /// CRC32C of the bytes as stored, into the pointer's `checksum`.
    Checksum,
    /// Contiguous blocks of the data area for the stored bytes; with `copies 2`, a
    /// second run as far from the first as free space allows.
    Allocate,
    /// The stored bytes, zero-padded to whole blocks, to the allocated blocks (each
    /// copy).
    Write,
}

/// Every stage this build implements, in pipeline order.
pub const ALL_STAGES: &[Stage] = &[
    Stage::Zero,
    Stage::Hash,
    Stage::Compress,
    Stage::Encrypt,
    Stage::Checksum,
    Stage::Allocate,
    Stage::Write,
];

/// The write pipeline of format version 2.
pub const WRITE: &[Stage] = ALL_STAGES;

/// Pointer flags this build can undo: those of the stages it implements.
pub const fn known_flags() -> u32 {
    let mut flags = 0;
    let mut i = 0;
    while i < ALL_STAGES.len() {
        flags |= ALL_STAGES[i].flags();
        i += 1;
    }
    flags
}

// The format's list of flags a reader accepts is exactly what the stages can undo.
const _: () = assert!(known_flags() == RecordPtr::KNOWN_FLAGS);

impl Stage {
    /// The record-pointer flags the stage may set when it transforms the bytes (one of
    /// them at a time); 0 for a stage that leaves them as they are.
    pub const fn flags(self) -> u32 {
        match self {
            Stage::Compress => RecordPtr::FLAG_LZ4 | RecordPtr::FLAG_ZSTD,
            Stage::Encrypt => RecordPtr::FLAG_ENCRYPTED,
            Stage::Allocate => RecordPtr::FLAG_COPY,
            Stage::Hash => RecordPtr::FLAG_HASH_VALID,
            Stage::Zero | Stage::Checksum | Stage::Write => 0,
        }
    }

    /// May the stage change how many bytes are stored (`phys_len != logical_len`)?
    pub const fn changes_length(self) -> bool {
        matches!(self, Stage::Compress)
    }

    /// Does the stage place bytes on the device (and so run under the volume's lock)?
    pub const fn places(self) -> bool {
        matches!(self, Stage::Allocate | Stage::Write)
    }

    /// Runs a transforming stage on a record being prepared.
    pub(super) fn transform(self, io: &mut WriteIo<'_>) {
        debug_assert!(!self.places());
        match self {
            Stage::Zero => {
                if io.stored.iter().all(|b| *b == 0) {
                    io.hole = true;
                }
            }
            Stage::Compress => {
                let (bytes, verdict) = codec::compress(io.policy.compression, &io.stored);
                io.verdict = verdict;
                if let (Some(bytes), Verdict::Compressed(flag)) = (bytes, verdict) {
                    io.ptr.flags |= flag;
                    io.stored = Cow::Owned(bytes);
                }
            }
            Stage::Hash => {
                // The logical bytes: it runs before any stage that transforms them. On an
                // encrypted volume the seal's tag is the key instead: a plain hash would
                // let anyone who guesses a record confirm it.
                if io.policy.dedup
                    && io.policy.keys.is_none()
                    && io.ptr.flags & RecordPtr::FLAG_HASH_VALID == 0
                {
                    io.ptr.hash = blake3::hash_one(&io.stored, &Blake3Mode::Hash);
                    io.ptr.flags |= RecordPtr::FLAG_HASH_VALID;
                }
            }
            Stage::Encrypt => {
                if let Some(keys) = io.policy.keys.clone() {
                    let plain_len = io.stored.len() as u32;
                    let context = record_context(&io.ptr);
                    let mut bytes = std::mem::take(&mut io.stored).into_owned();
                    io.ptr.hash = keys.seal(Domain::Record, &context, &mut bytes);
                    io.ptr.phys_len = plain_len;
                    io.ptr.flags |= RecordPtr::FLAG_ENCRYPTED;
                    if io.policy.dedup {
                        io.ptr.flags |= RecordPtr::FLAG_HASH_VALID;
                    }
                    io.stored = Cow::Owned(bytes);
                }
            }
            Stage::Checksum => io.ptr.checksum = checksum(&io.stored),
            Stage::Allocate | Stage::Write => {}
        }
    }

    /// Runs a placing stage on a prepared record.
    pub(super) fn place(self, io: &mut WriteIo<'_>, sink: &mut impl BlockSink) -> FsResult<()> {
        debug_assert!(self.places());
        match self {
            Stage::Allocate => {
                let count = io.block_count();
                let block = sink.allocate(count)?;
                io.ptr.block = block.get();
                io.allocated.push((block, count));
                if io.policy.copies >= 2 {
                    let copy = sink.allocate_far(count, block)?;
                    io.ptr = io.ptr.with_copy_block(copy.get());
                    io.allocated.push((copy, count));
                }
                Ok(())
            }
            Stage::Write => {
                if io.allocated.is_empty() {
                    return Err(crate::error::FsError::corrupt(
                        "record pipeline writes before it allocates",
                    ));
                }
                for &(block, count) in &io.allocated {
                    write_padded(sink, block, count, &io.stored)?;
                }
                Ok(())
            }
            Stage::Zero | Stage::Hash | Stage::Compress | Stage::Encrypt | Stage::Checksum => {
                Ok(())
            }
        }
    }

    /// Undoes the stage's transformation of `stored` on a read (stages with flags only);
    /// `ptr` says which flag was set and how long the logical bytes are.
    pub(super) fn undo(
        self,
        ptr: &RecordPtr,
        stored: &mut Vec<u8>,
        keys: Option<&SealKeys>,
    ) -> Result<(), RecordError> {
        match self {
            Stage::Encrypt => {
                let keys = keys.ok_or(RecordError::NoKey)?;
                let kept = if ptr.flags & RecordPtr::FLAG_COPY != 0 {
                    24
                } else {
                    32
                };
                keys.open(
                    Domain::Record,
                    &record_context(ptr),
                    stored,
                    ptr.phys_len as usize,
                    &ptr.hash[..kept],
                )
                .map_err(|_| RecordError::Forged)
            }
            Stage::Compress => {
                let mut out = vec![0u8; ptr.logical_len as usize];
                codec::decompress(ptr.flags & self.flags(), stored, &mut out)
                    .map_err(RecordError::Decode)?;
                *stored = out;
                Ok(())
            }
            Stage::Zero | Stage::Hash | Stage::Checksum | Stage::Allocate | Stage::Write => Ok(()),
        }
    }
}

/// What a record's tag binds besides its stored plaintext: its logical length and how
/// it was compressed (so that a pointer's flags cannot be changed unnoticed).
fn record_context(ptr: &RecordPtr) -> [u8; 8] {
    let mut c = [0u8; 8];
    c[..4].copy_from_slice(&ptr.logical_len.to_le_bytes());
    let codec = ptr.flags & Stage::Compress.flags();
    c[4..].copy_from_slice(&codec.to_le_bytes());
    c
}

/// How a file's records are to be written: its `compression`, `copies` and `dedup`
/// properties, and the volume's keys when it is encrypted.
#[derive(Clone, Debug)]
pub struct WritePolicy {
    pub compression: Compression,
    /// 1 or 2.
    pub copies: u8,
    /// Hash each record (BLAKE3 of its logical bytes) so that the volume can store
    /// equal records once.
    pub dedup: bool,
    /// Seal every record under these keys (an encrypted volume).
    pub keys: Option<Arc<SealKeys>>,
}

impl PartialEq for WritePolicy {
    fn eq(&self, other: &Self) -> bool {
        let same_keys = match (&self.keys, &other.keys) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        self.compression == other.compression
            && self.copies == other.copies
            && self.dedup == other.dedup
            && same_keys
    }
}

impl WritePolicy {
    /// Records stored as they are, once.
    #[cfg(test)]
    pub const RAW: WritePolicy = WritePolicy {
        compression: Compression::None,
        copies: 1,
        dedup: false,
        keys: None,
    };
}

/// Is `stages` a write pipeline: stages in pipeline order, none twice, ending with the
/// checksum of the final bytes, the allocation and the write?
pub fn is_valid_pipeline(stages: &[Stage]) -> bool {
    let ordered = stages.windows(2).all(|w| w[0] < w[1]);
    let ends = stages.ends_with(&[Stage::Checksum, Stage::Allocate, Stage::Write]);
    ordered && ends
}

/// A record on its way through the write pipeline.
pub struct WriteIo<'a> {
    /// The bytes to store: the logical bytes until a stage transforms them.
    pub(super) stored: Cow<'a, [u8]>,
    /// The pointer being built.
    pub(super) ptr: RecordPtr,
    /// How the record is to be compressed and how many copies are stored.
    pub(super) policy: WritePolicy,
    /// What the compression stage decided.
    pub(super) verdict: Verdict,
    /// The zero stage found nothing to store.
    pub(super) hole: bool,
    /// Where the compressing and checksumming kernels ran for this record (the GPU
    /// when a batch went there).
    pub(super) backend: Backend,
    /// The runs the allocation stage took (one per copy), to give back when a later
    /// stage fails.
    pub(super) allocated: Vec<(BlockNo, u64)>,
}

impl<'a> WriteIo<'a> {
    pub(super) fn new(data: &'a [u8], policy: WritePolicy) -> Self {
        WriteIo {
            stored: Cow::Borrowed(data),
            ptr: RecordPtr {
                block: 0,
                logical_len: data.len() as u32,
                phys_len: data.len() as u32,
                birth_gen: 0,
                checksum: 0,
                flags: 0,
                hash: [0; 32],
            },
            policy,
            verdict: Verdict::Off,
            hole: false,
            backend: Backend::Cpu,
            allocated: Vec::new(),
        }
    }

    /// The logical bytes a prepared record holds.
    pub fn logical_len(&self) -> u32 {
        self.ptr.logical_len
    }

    /// Bytes the record will take on the device (0 for a hole).
    pub fn stored_len(&self) -> usize {
        if self.hole {
            0
        } else {
            self.stored.len()
        }
    }

    /// What the compression stage decided.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The BLAKE3 of the record's logical bytes, when the hash stage took it (dedup on)
    /// and the record is to be stored.
    pub fn hash(&self) -> Option<[u8; 32]> {
        (!self.hole && self.ptr.flags & RecordPtr::FLAG_HASH_VALID != 0).then_some(self.ptr.hash)
    }

    /// How the record is to be written.
    pub fn policy(&self) -> &WritePolicy {
        &self.policy
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Blocks the stored bytes take (at least one).
    fn block_count(&self) -> u64 {
        (self.stored.len() as u64)
            .div_ceil(BLOCK_SIZE as u64)
            .max(1)
    }
}

/// A prepared record kept apart from the logical bytes it was prepared from (the
/// write-back cache prepares records off the volume lock and places them later): what
/// the transforming stages produced, with the stored bytes only when a stage changed
/// them.
#[derive(Debug)]
pub struct PreparedRecord {
    /// The transformed bytes; `None` when the stored bytes are the logical bytes.
    transformed: Option<Vec<u8>>,
    ptr: RecordPtr,
    policy: WritePolicy,
    verdict: Verdict,
    hole: bool,
    backend: Backend,
}

impl PreparedRecord {
    /// The policy the record was prepared under.
    pub fn policy(&self) -> &WritePolicy {
        &self.policy
    }

    /// Bytes of memory the transformed bytes hold.
    pub fn heap_bytes(&self) -> usize {
        self.transformed.as_ref().map_or(0, Vec::len)
    }

    /// The record again, joined to the logical bytes it was prepared from.
    pub fn attach(self, data: &[u8]) -> WriteIo<'_> {
        debug_assert_eq!(self.ptr.logical_len as usize, data.len());
        WriteIo {
            stored: match self.transformed {
                Some(v) => Cow::Owned(v),
                None => Cow::Borrowed(data),
            },
            ptr: self.ptr,
            policy: self.policy,
            verdict: self.verdict,
            hole: self.hole,
            backend: self.backend,
            allocated: Vec::new(),
        }
    }
}

impl WriteIo<'_> {
    /// The prepared record without its borrow of the logical bytes (before placing).
    pub fn detach(self) -> PreparedRecord {
        debug_assert!(self.allocated.is_empty(), "a placed record is not detached");
        PreparedRecord {
            transformed: match self.stored {
                Cow::Owned(v) => Some(v),
                Cow::Borrowed(_) => None,
            },
            ptr: self.ptr,
            policy: self.policy,
            verdict: self.verdict,
            hole: self.hole,
            backend: self.backend,
        }
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
        assert!(is_valid_pipeline(WRITE));
        assert!(is_valid_pipeline(&[
            Stage::Checksum,
            Stage::Allocate,
            Stage::Write
        ]));
        assert!(!is_valid_pipeline(&[
            Stage::Allocate,
            Stage::Checksum,
            Stage::Write
        ]));
        assert!(!is_valid_pipeline(&[Stage::Checksum, Stage::Write]));
        assert!(!is_valid_pipeline(&[Stage::Allocate, Stage::Write]));
        assert!(!is_valid_pipeline(&[
            Stage::Compress,
            Stage::Zero,
            Stage::Checksum,
            Stage::Allocate,
            Stage::Write
        ]));
        assert!(!is_valid_pipeline(&[
            Stage::Zero,
            Stage::Checksum,
            Stage::Compress,
            Stage::Allocate,
            Stage::Write
        ]));
    }

    #[test]
    fn only_compression_changes_length_and_hash_compression_copies_are_flagged() {
        assert_eq!(
            known_flags(),
            RecordPtr::FLAG_LZ4
                | RecordPtr::FLAG_ENCRYPTED
                | RecordPtr::FLAG_HASH_VALID
                | RecordPtr::FLAG_ZSTD
                | RecordPtr::FLAG_COPY
        );
        for s in ALL_STAGES {
            assert_eq!(s.changes_length(), *s == Stage::Compress);
            assert_eq!(
                s.flags() != 0,
                matches!(
                    s,
                    Stage::Hash | Stage::Compress | Stage::Encrypt | Stage::Allocate
                )
            );
            assert_eq!(s.places(), matches!(s, Stage::Allocate | Stage::Write));
        }
    }
}
