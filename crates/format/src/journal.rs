//! The journal: a ring of 4096-byte blocks holding logical redo records of metadata
//! changes. A transaction is a byte stream of [`JournalOp`]s split over one or more
//! blocks; its last block carries [`JournalBlockHeader::FLAG_COMMIT`]. Replay applies only
//! whole transactions whose every block has the expected sequence number and checksum.

use bytemuck::{Pod, Zeroable};

use crate::records::{InodeRecord, RecordPtr};
use crate::{checksum, get_u32, get_u64, FormatError, BLOCK_SIZE, NAME_MAX};

pub const JOURNAL_MAGIC: u32 = u32::from_le_bytes(*b"GJNL");

/// Header at the start of every journal block.
///
/// ```text
/// off size field
///   0    4 magic          "GJNL"
///   4    4 checksum       CRC32C of the whole block with this field zero
///   8    8 seq            block sequence number, +1 per block, never reused
///  16    8 checkpoint_gen superblock generation this journal follows
///  24    4 payload_len    bytes of transaction stream in this block (<= 4064)
///  28    4 flags          FLAG_COMMIT on a transaction's last block
///  32 4064 payload
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct JournalBlockHeader {
    pub magic: u32,
    pub checksum: u32,
    pub seq: u64,
    pub checkpoint_gen: u64,
    pub payload_len: u32,
    pub flags: u32,
}
const _: () = assert!(std::mem::size_of::<JournalBlockHeader>() == 32);

/// Payload bytes one journal block can carry.
pub const JOURNAL_PAYLOAD: usize = BLOCK_SIZE - 32;

impl JournalBlockHeader {
    pub const FLAG_COMMIT: u32 = 1;

    /// Builds one journal block around `payload`.
    pub fn encode_block(seq: u64, checkpoint_gen: u64, payload: &[u8], commit: bool) -> Vec<u8> {
        debug_assert!(payload.len() <= JOURNAL_PAYLOAD);
        let hdr = JournalBlockHeader {
            magic: JOURNAL_MAGIC,
            checksum: 0,
            seq,
            checkpoint_gen,
            payload_len: payload.len() as u32,
            flags: if commit { Self::FLAG_COMMIT } else { 0 },
        };
        let mut block = vec![0u8; BLOCK_SIZE];
        block[..32].copy_from_slice(bytemuck::bytes_of(&hdr));
        block[32..32 + payload.len()].copy_from_slice(payload);
        let crc = checksum(&block);
        block[4..8].copy_from_slice(&crc.to_le_bytes());
        block
    }

    /// Validates a block and returns its header and payload, or why it is not a valid
    /// journal block (the end of the journal, on replay).
    pub fn decode_block(block: &[u8]) -> Result<(Self, &[u8]), FormatError> {
        if block.len() != BLOCK_SIZE {
            return Err(FormatError::corrupted("journal block", "wrong length"));
        }
        let hdr: JournalBlockHeader = bytemuck::pod_read_unaligned(&block[..32]);
        if hdr.magic != JOURNAL_MAGIC {
            return Err(FormatError::BadMagic {
                what: "journal block",
            });
        }
        let mut copy = block.to_vec();
        copy[4..8].fill(0);
        let computed = checksum(&copy);
        if computed != hdr.checksum {
            return Err(FormatError::Checksum {
                what: "journal block",
                stored: hdr.checksum,
                computed,
            });
        }
        let len = hdr.payload_len as usize;
        if len > JOURNAL_PAYLOAD {
            return Err(FormatError::corrupted("journal block", "payload too long"));
        }
        Ok((hdr, &block[32..32 + len]))
    }
}

/// One logical metadata change. Replaying these in order onto the checkpointed state
/// rebuilds the state at the last commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalOp {
    /// Inode slot `ino` now holds `rec` (created or changed).
    InodePut { ino: u32, rec: InodeRecord },
    /// Inode slot `ino` is freed, with its records, xattrs and symlink target.
    InodeFree { ino: u32 },
    /// Entry `name` in `parent` now names `ino`.
    DirentPut {
        parent: u32,
        ino: u32,
        kind: u8,
        cookie: u64,
        name: Vec<u8>,
    },
    /// Entry `name` in `parent` is removed.
    DirentDel { parent: u32, name: Vec<u8> },
    /// Record `index` of `ino` now lives at `ptr` (the old one, if any, is freed).
    ExtentPut {
        ino: u32,
        index: u64,
        ptr: RecordPtr,
    },
    /// Records `from..to` of `ino` are dropped (truncate, hole punch).
    ExtentDrop { ino: u32, from: u64, to: u64 },
    /// Record `index` of `ino` now shares the record `ptr` with the pointers that
    /// already refer to it (a clone or a deduplicated write; version 3): nothing is
    /// allocated, the record gains a reference, and the one it replaces is released.
    ExtentShare {
        ino: u32,
        index: u64,
        ptr: RecordPtr,
    },
    /// Extended attribute `name` of `ino` is set to `value`.
    XattrPut {
        ino: u32,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    /// Extended attribute `name` of `ino` is removed.
    XattrDel { ino: u32, name: Vec<u8> },
    /// Symlink `ino` points to `target`.
    SymlinkPut { ino: u32, target: Vec<u8> },
}

/// Largest extended-attribute value (Linux `XATTR_SIZE_MAX`).
pub const XATTR_VALUE_MAX: usize = 65536;
/// Longest extended-attribute name (Linux `XATTR_NAME_MAX`).
pub const XATTR_NAME_MAX: usize = 255;
/// Longest symlink target (Linux `PATH_MAX` - 1).
pub const SYMLINK_MAX: usize = 4095;

const TAG_INODE_PUT: u8 = 1;
const TAG_INODE_FREE: u8 = 2;
const TAG_DIRENT_PUT: u8 = 3;
const TAG_DIRENT_DEL: u8 = 4;
const TAG_EXTENT_PUT: u8 = 5;
const TAG_EXTENT_DROP: u8 = 6;
const TAG_XATTR_PUT: u8 = 7;
const TAG_XATTR_DEL: u8 = 8;
const TAG_SYMLINK_PUT: u8 = 9;
const TAG_EXTENT_SHARE: u8 = 10;

impl JournalOp {
    /// Appends the encoding of this op to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            JournalOp::InodePut { ino, rec } => {
                out.push(TAG_INODE_PUT);
                out.extend_from_slice(&ino.to_le_bytes());
                out.extend_from_slice(bytemuck::bytes_of(rec));
            }
            JournalOp::InodeFree { ino } => {
                out.push(TAG_INODE_FREE);
                out.extend_from_slice(&ino.to_le_bytes());
            }
            JournalOp::DirentPut {
                parent,
                ino,
                kind,
                cookie,
                name,
            } => {
                out.push(TAG_DIRENT_PUT);
                out.extend_from_slice(&parent.to_le_bytes());
                out.extend_from_slice(&ino.to_le_bytes());
                out.push(*kind);
                out.extend_from_slice(&cookie.to_le_bytes());
                put_bytes(out, name);
            }
            JournalOp::DirentDel { parent, name } => {
                out.push(TAG_DIRENT_DEL);
                out.extend_from_slice(&parent.to_le_bytes());
                put_bytes(out, name);
            }
            JournalOp::ExtentPut { ino, index, ptr } => {
                out.push(TAG_EXTENT_PUT);
                out.extend_from_slice(&ino.to_le_bytes());
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(bytemuck::bytes_of(ptr));
            }
            JournalOp::ExtentShare { ino, index, ptr } => {
                out.push(TAG_EXTENT_SHARE);
                out.extend_from_slice(&ino.to_le_bytes());
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(bytemuck::bytes_of(ptr));
            }
            JournalOp::ExtentDrop { ino, from, to } => {
                out.push(TAG_EXTENT_DROP);
                out.extend_from_slice(&ino.to_le_bytes());
                out.extend_from_slice(&from.to_le_bytes());
                out.extend_from_slice(&to.to_le_bytes());
            }
            JournalOp::XattrPut { ino, name, value } => {
                out.push(TAG_XATTR_PUT);
                out.extend_from_slice(&ino.to_le_bytes());
                put_bytes(out, name);
                put_bytes(out, value);
            }
            JournalOp::XattrDel { ino, name } => {
                out.push(TAG_XATTR_DEL);
                out.extend_from_slice(&ino.to_le_bytes());
                put_bytes(out, name);
            }
            JournalOp::SymlinkPut { ino, target } => {
                out.push(TAG_SYMLINK_PUT);
                out.extend_from_slice(&ino.to_le_bytes());
                put_bytes(out, target);
            }
        }
    }

    /// Decodes every op of one transaction stream.
    pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<JournalOp>, FormatError> {
        let mut ops = Vec::new();
        while !bytes.is_empty() {
            let (op, used) = Self::decode_one(bytes)?;
            ops.push(op);
            bytes = &bytes[used..];
        }
        Ok(ops)
    }

    /// Decodes one op from the front of `bytes`; returns it and the bytes it used.
    pub fn decode_one(bytes: &[u8]) -> Result<(JournalOp, usize), FormatError> {
        let mut r = Reader { bytes, pos: 0 };
        let tag = r.u8()?;
        let op = match tag {
            TAG_INODE_PUT => {
                let ino = r.u32()?;
                let raw = r.take(64)?;
                JournalOp::InodePut {
                    ino,
                    rec: bytemuck::pod_read_unaligned(raw),
                }
            }
            TAG_INODE_FREE => JournalOp::InodeFree { ino: r.u32()? },
            TAG_DIRENT_PUT => {
                let parent = r.u32()?;
                let ino = r.u32()?;
                let kind = r.u8()?;
                let cookie = r.u64()?;
                let name = r.bytes(NAME_MAX)?;
                if name.is_empty() {
                    return Err(corrupt("empty name"));
                }
                JournalOp::DirentPut {
                    parent,
                    ino,
                    kind,
                    cookie,
                    name,
                }
            }
            TAG_DIRENT_DEL => {
                let parent = r.u32()?;
                let name = r.bytes(NAME_MAX)?;
                JournalOp::DirentDel { parent, name }
            }
            TAG_EXTENT_PUT | TAG_EXTENT_SHARE => {
                let ino = r.u32()?;
                let index = r.u64()?;
                let ptr = bytemuck::pod_read_unaligned(r.take(64)?);
                if tag == TAG_EXTENT_PUT {
                    JournalOp::ExtentPut { ino, index, ptr }
                } else {
                    JournalOp::ExtentShare { ino, index, ptr }
                }
            }
            TAG_EXTENT_DROP => {
                let ino = r.u32()?;
                let from = r.u64()?;
                let to = r.u64()?;
                JournalOp::ExtentDrop { ino, from, to }
            }
            TAG_XATTR_PUT => {
                let ino = r.u32()?;
                let name = r.bytes(XATTR_NAME_MAX)?;
                let value = r.bytes(XATTR_VALUE_MAX)?;
                JournalOp::XattrPut { ino, name, value }
            }
            TAG_XATTR_DEL => {
                let ino = r.u32()?;
                let name = r.bytes(XATTR_NAME_MAX)?;
                JournalOp::XattrDel { ino, name }
            }
            TAG_SYMLINK_PUT => {
                let ino = r.u32()?;
                let target = r.bytes(SYMLINK_MAX)?;
                JournalOp::SymlinkPut { ino, target }
            }
            other => return Err(corrupt(format!("unknown op tag {other}"))),
        };
        Ok((op, r.pos))
    }
}

/// Appends `b` as a little-endian `u32` length and the bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn corrupt(detail: impl Into<String>) -> FormatError {
    FormatError::corrupted("journal record", detail)
}

/// Bounds-checked little-endian reader over a byte slice.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        let v = get_u32(self.bytes, self.pos).ok_or_else(|| corrupt("truncated"))?;
        self.pos += 4;
        Ok(v)
    }
    pub(crate) fn u64(&mut self) -> Result<u64, FormatError> {
        let v = get_u64(self.bytes, self.pos).ok_or_else(|| corrupt("truncated"))?;
        self.pos += 8;
        Ok(v)
    }
    /// A u32 length then that many bytes, refusing lengths over `max`.
    pub(crate) fn bytes(&mut self, max: usize) -> Result<Vec<u8>, FormatError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(corrupt(format!("length {len} over limit {max}")));
        }
        Ok(self.take(len)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_op() -> impl Strategy<Value = JournalOp> {
        let name = proptest::collection::vec(1u8..=255, 1..=255);
        prop_oneof![
            (any::<u32>(), any::<[u8; 64]>()).prop_map(|(ino, raw)| JournalOp::InodePut {
                ino,
                rec: bytemuck::pod_read_unaligned(&raw)
            }),
            any::<u32>().prop_map(|ino| JournalOp::InodeFree { ino }),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u8>(),
                any::<u64>(),
                name.clone()
            )
                .prop_map(|(parent, ino, kind, cookie, name)| JournalOp::DirentPut {
                    parent,
                    ino,
                    kind,
                    cookie,
                    name
                }),
            (any::<u32>(), name.clone())
                .prop_map(|(parent, name)| JournalOp::DirentDel { parent, name }),
            (any::<u32>(), any::<u64>(), any::<[u8; 64]>()).prop_map(|(ino, index, raw)| {
                JournalOp::ExtentPut {
                    ino,
                    index,
                    ptr: bytemuck::pod_read_unaligned(&raw),
                }
            }),
            (any::<u32>(), any::<u64>(), any::<[u8; 64]>()).prop_map(|(ino, index, raw)| {
                JournalOp::ExtentShare {
                    ino,
                    index,
                    ptr: bytemuck::pod_read_unaligned(&raw),
                }
            }),
            (any::<u32>(), any::<u64>(), any::<u64>())
                .prop_map(|(ino, from, to)| JournalOp::ExtentDrop { ino, from, to }),
            (
                any::<u32>(),
                name.clone(),
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(ino, name, value)| JournalOp::XattrPut {
                    ino,
                    name,
                    value
                }),
            (any::<u32>(), name.clone()).prop_map(|(ino, name)| JournalOp::XattrDel { ino, name }),
            (any::<u32>(), name).prop_map(|(ino, target)| JournalOp::SymlinkPut { ino, target }),
        ]
    }

    proptest! {
        #[test]
        fn ops_round_trip(ops in proptest::collection::vec(arb_op(), 0..20)) {
            let mut buf = Vec::new();
            for op in &ops { op.encode(&mut buf); }
            prop_assert_eq!(JournalOp::decode_all(&buf).unwrap(), ops);
        }

        #[test]
        fn truncated_streams_never_panic(ops in proptest::collection::vec(arb_op(), 1..5), cut in any::<usize>()) {
            let mut buf = Vec::new();
            for op in &ops { op.encode(&mut buf); }
            let cut = cut % buf.len();
            let _ = JournalOp::decode_all(&buf[..cut]);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = JournalOp::decode_all(&bytes);
        }
    }

    #[test]
    fn block_round_trip_and_corruption() {
        let block = JournalBlockHeader::encode_block(42, 3, b"hello", true);
        let (h, p) = JournalBlockHeader::decode_block(&block).unwrap();
        assert_eq!((h.seq, h.checkpoint_gen, p), (42, 3, &b"hello"[..]));
        assert_eq!(h.flags, JournalBlockHeader::FLAG_COMMIT);
        let mut torn = block.clone();
        torn[2000] ^= 1;
        assert!(JournalBlockHeader::decode_block(&torn).is_err());
        assert!(JournalBlockHeader::decode_block(&vec![0u8; BLOCK_SIZE]).is_err());
    }
}
