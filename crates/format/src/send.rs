//! Replication streams (`gpufs send` / `gpufs receive`), stream version 1: a header,
//! then frames, each a 16-byte frame header and a payload, the last an `End` frame that
//! counts and hashes everything before it. The stream is its own format, versioned apart
//! from images: a receiver of another build refuses a version it does not know.
//!
//! A stream carries one snapshot, whole (full) or as the changes from a base snapshot
//! (incremental), as operations on inode numbers: the receiver's namespace has the same
//! inode numbers, generations, entries (with their readdir cookies), attributes, xattrs
//! and bytes as the sender's snapshot. Data travels as the logical bytes of each record
//! (the receiver compresses with its own settings). A fingerprint of the namespace (see
//! the receiver) names the snapshot and its base, so that an incremental stream is
//! applied only onto exactly the namespace it was made from.

use bytemuck::{Pod, Zeroable};

use crate::journal::{put_bytes, Reader, SYMLINK_MAX, XATTR_NAME_MAX, XATTR_VALUE_MAX};
use crate::snapshot::SNAPSHOT_NAME_MAX;
use crate::{checksum, FormatError, InodeRecord, NAME_MAX};

/// First bytes of every stream.
pub const STREAM_MAGIC: [u8; 8] = *b"GPUFSSND";
/// Stream version written by this build (and the only one it reads).
pub const STREAM_VERSION: u32 = 1;
/// Most bytes one `Write` frame carries (the largest record size).
pub const MAX_WRITE_BYTES: usize = crate::MAX_RECORD_SIZE as usize;
/// Largest payload of any frame.
pub const MAX_PAYLOAD: usize = MAX_WRITE_BYTES + 64;

/// The stream header.
///
/// ```text
/// off size field
///   0    8 magic              "GPUFSSND"
///   8    4 version            STREAM_VERSION
///  12    4 flags              bit 0: incremental (a base is named)
///  16    4 record_size        the sender's record size (informational)
///  20    4 name_len           1..=255
///  24    4 base_name_len      0 (full) or 1..=255
///  28    4 reserved           0
///  32   16 source_uuid        the sending filesystem's uuid
///  48    8 created_ns         creation time of the snapshot sent
///  56    8 base_created_ns    creation time of the base (0 when full)
///  64   32 fingerprint        namespace fingerprint of the snapshot sent
///  96   32 base_fingerprint   namespace fingerprint of the base (0 when full)
/// 128    8 inodes             live inodes in the snapshot sent
/// 136    8 data_bytes         bytes of data the `Write` frames carry
/// 144  256 name               name_len bytes, the rest zero
/// 400  256 base_name          base_name_len bytes, the rest zero
/// 656    4 crc32c             of bytes 0..656
/// 660    4 reserved2          0
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct StreamHeader {
    pub magic: [u8; 8],
    pub version: u32,
    pub flags: u32,
    pub record_size: u32,
    pub name_len: u32,
    pub base_name_len: u32,
    pub reserved: u32,
    pub source_uuid: [u8; 16],
    pub created_ns: u64,
    pub base_created_ns: u64,
    pub fingerprint: [u8; 32],
    pub base_fingerprint: [u8; 32],
    pub inodes: u64,
    pub data_bytes: u64,
    pub name: [u8; 256],
    pub base_name: [u8; 256],
    pub crc32c: u32,
    pub reserved2: u32,
}
const _: () = assert!(std::mem::size_of::<StreamHeader>() == 664);

/// Bytes of a stream header.
pub const STREAM_HEADER_LEN: usize = std::mem::size_of::<StreamHeader>();

/// What a stream's base is: the snapshot it was made from, named and fingerprinted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamBase {
    pub name: Vec<u8>,
    pub created_ns: u64,
    pub fingerprint: [u8; 32],
}

impl StreamHeader {
    pub const FLAG_INCREMENTAL: u32 = 1;

    /// A header for snapshot `name` (and its `base`, for an incremental stream). False
    /// for a name that is not a valid snapshot name.
    pub fn new(name: &[u8], base: Option<&StreamBase>) -> Option<StreamHeader> {
        let mut h = StreamHeader::zeroed();
        h.magic = STREAM_MAGIC;
        h.version = STREAM_VERSION;
        if !crate::snapshot::valid_snapshot_name(name) {
            return None;
        }
        h.name[..name.len()].copy_from_slice(name);
        h.name_len = name.len() as u32;
        if let Some(b) = base {
            if !crate::snapshot::valid_snapshot_name(&b.name) {
                return None;
            }
            h.flags |= Self::FLAG_INCREMENTAL;
            h.base_name[..b.name.len()].copy_from_slice(&b.name);
            h.base_name_len = b.name.len() as u32;
            h.base_created_ns = b.created_ns;
            h.base_fingerprint = b.fingerprint;
        }
        Some(h)
    }

    /// The snapshot's name.
    pub fn name(&self) -> &[u8] {
        self.name.get(..self.name_len as usize).unwrap_or(&[])
    }

    /// The base, for an incremental stream.
    pub fn base(&self) -> Option<StreamBase> {
        if self.flags & Self::FLAG_INCREMENTAL == 0 {
            return None;
        }
        Some(StreamBase {
            name: self
                .base_name
                .get(..self.base_name_len as usize)
                .unwrap_or(&[])
                .to_vec(),
            created_ns: self.base_created_ns,
            fingerprint: self.base_fingerprint,
        })
    }

    /// The header's bytes with its checksum set.
    pub fn encode(&self) -> Vec<u8> {
        let mut h = *self;
        h.crc32c = 0;
        h.crc32c = checksum(&bytemuck::bytes_of(&h)[..656]);
        bytemuck::bytes_of(&h).to_vec()
    }

    /// Decodes and checks a header: magic, version, checksum, names, flags.
    pub fn decode(bytes: &[u8]) -> Result<StreamHeader, FormatError> {
        let raw = bytes
            .get(..STREAM_HEADER_LEN)
            .ok_or_else(|| corrupt("stream shorter than its header"))?;
        let h: StreamHeader = bytemuck::pod_read_unaligned(raw);
        if h.magic != STREAM_MAGIC {
            return Err(FormatError::BadMagic {
                what: "send stream",
            });
        }
        if h.version != STREAM_VERSION {
            return Err(FormatError::UnsupportedStream {
                found: h.version,
                supported: STREAM_VERSION,
            });
        }
        let computed = checksum(&raw[..656]);
        if computed != h.crc32c {
            return Err(FormatError::Checksum {
                what: "send stream header",
                stored: h.crc32c,
                computed,
            });
        }
        if h.flags & !Self::FLAG_INCREMENTAL != 0 {
            return Err(corrupt(format!("unknown flags {:#x}", h.flags)));
        }
        let name_ok = (h.name_len as usize) <= SNAPSHOT_NAME_MAX
            && crate::snapshot::valid_snapshot_name(h.name());
        let base_ok = match h.base() {
            Some(b) => crate::snapshot::valid_snapshot_name(&b.name),
            None => h.base_name_len == 0,
        };
        if !name_ok || !base_ok {
            return Err(corrupt("bad snapshot name"));
        }
        Ok(h)
    }
}

/// One frame's header: what follows and its checksum.
///
/// ```text
/// off size field
///   0    4 tag       the operation (below)
///   4    4 len       payload bytes (at most MAX_PAYLOAD)
///   8    4 crc32c    of bytes 0..8 of this header followed by the payload
///  12    4 reserved  0
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct FrameHeader {
    pub tag: u32,
    pub len: u32,
    pub crc32c: u32,
    pub reserved: u32,
}
const _: () = assert!(std::mem::size_of::<FrameHeader>() == 16);

/// Bytes of a frame header.
pub const FRAME_HEADER_LEN: usize = 16;

const TAG_INODE: u32 = 1;
const TAG_FREE: u32 = 2;
const TAG_ENTRY: u32 = 3;
const TAG_UNLINK: u32 = 4;
const TAG_SYMLINK: u32 = 5;
const TAG_XATTR: u32 = 6;
const TAG_XATTR_DEL: u32 = 7;
const TAG_WRITE: u32 = 8;
const TAG_ZERO: u32 = 9;
const TAG_END: u32 = 15;

/// One operation of a stream, applied in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOp {
    /// Inode `ino` holds `rec` (created, or its attributes changed; a shorter size drops
    /// what lies past it).
    Inode { ino: u32, rec: InodeRecord },
    /// Inode `ino` is gone (with its records, xattrs and target).
    Free { ino: u32 },
    /// Entry `name` in `parent` names `ino` at readdir position `cookie`.
    Entry {
        parent: u32,
        ino: u32,
        kind: u8,
        cookie: u64,
        name: Vec<u8>,
    },
    /// Entry `name` in `parent` is gone.
    Unlink { parent: u32, name: Vec<u8> },
    /// Symlink `ino` points to `target`.
    Symlink { ino: u32, target: Vec<u8> },
    /// Extended attribute `name` of `ino` holds `value`.
    Xattr {
        ino: u32,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    /// Extended attribute `name` of `ino` is gone.
    XattrDel { ino: u32, name: Vec<u8> },
    /// Bytes `offset..offset + data.len()` of file `ino` hold `data`.
    Write {
        ino: u32,
        offset: u64,
        data: Vec<u8>,
    },
    /// Bytes `offset..offset + len` of file `ino` are zeros (a hole).
    Zero { ino: u32, offset: u64, len: u64 },
    /// The end: `frames` frames and `bytes` bytes came before this one (the header
    /// included), whose BLAKE3 is `hash`.
    End {
        frames: u64,
        bytes: u64,
        hash: [u8; 32],
    },
}

impl SendOp {
    /// The frame of this op: header and payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        let tag = match self {
            SendOp::Inode { ino, rec } => {
                out.extend_from_slice(&ino.to_le_bytes());
                out.extend_from_slice(bytemuck::bytes_of(rec));
                TAG_INODE
            }
            SendOp::Free { ino } => {
                out.extend_from_slice(&ino.to_le_bytes());
                TAG_FREE
            }
            SendOp::Entry {
                parent,
                ino,
                kind,
                cookie,
                name,
            } => {
                out.extend_from_slice(&parent.to_le_bytes());
                out.extend_from_slice(&ino.to_le_bytes());
                out.push(*kind);
                out.extend_from_slice(&cookie.to_le_bytes());
                put_bytes(out, name);
                TAG_ENTRY
            }
            SendOp::Unlink { parent, name } => {
                out.extend_from_slice(&parent.to_le_bytes());
                put_bytes(out, name);
                TAG_UNLINK
            }
            SendOp::Symlink { ino, target } => {
                out.extend_from_slice(&ino.to_le_bytes());
                put_bytes(out, target);
                TAG_SYMLINK
            }
            SendOp::Xattr { ino, name, value } => {
                out.extend_from_slice(&ino.to_le_bytes());
                put_bytes(out, name);
                put_bytes(out, value);
                TAG_XATTR
            }
            SendOp::XattrDel { ino, name } => {
                out.extend_from_slice(&ino.to_le_bytes());
                put_bytes(out, name);
                TAG_XATTR_DEL
            }
            SendOp::Write { ino, offset, data } => {
                out.extend_from_slice(&ino.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                put_bytes(out, data);
                TAG_WRITE
            }
            SendOp::Zero { ino, offset, len } => {
                out.extend_from_slice(&ino.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                TAG_ZERO
            }
            SendOp::End {
                frames,
                bytes,
                hash,
            } => {
                out.extend_from_slice(&frames.to_le_bytes());
                out.extend_from_slice(&bytes.to_le_bytes());
                out.extend_from_slice(hash);
                TAG_END
            }
        };
        let len = (out.len() - start - FRAME_HEADER_LEN) as u32;
        debug_assert!(len as usize <= MAX_PAYLOAD);
        let mut head = FrameHeader {
            tag,
            len,
            crc32c: 0,
            reserved: 0,
        };
        head.crc32c = frame_crc(&head, &out[start + FRAME_HEADER_LEN..]);
        out[start..start + FRAME_HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&head));
    }

    /// Checks a frame header read from a stream; returns the payload length to read.
    pub fn check_header(raw: &[u8]) -> Result<FrameHeader, FormatError> {
        let raw = raw
            .get(..FRAME_HEADER_LEN)
            .ok_or_else(|| corrupt("truncated frame header"))?;
        let h: FrameHeader = bytemuck::pod_read_unaligned(raw);
        if h.len as usize > MAX_PAYLOAD || h.reserved != 0 {
            return Err(corrupt(format!(
                "frame of {} bytes (tag {}): not a frame header",
                h.len, h.tag
            )));
        }
        Ok(h)
    }

    /// Decodes the op of frame `head` from its `payload`, checking the checksum and
    /// every length and limit.
    pub fn decode(head: &FrameHeader, payload: &[u8]) -> Result<SendOp, FormatError> {
        if payload.len() != head.len as usize {
            return Err(corrupt("truncated frame"));
        }
        let computed = frame_crc(head, payload);
        if computed != head.crc32c {
            return Err(FormatError::Checksum {
                what: "send stream frame",
                stored: head.crc32c,
                computed,
            });
        }
        let mut r = Reader {
            bytes: payload,
            pos: 0,
        };
        let op = match head.tag {
            TAG_INODE => {
                let ino = r.u32()?;
                let rec = bytemuck::pod_read_unaligned(r.take(64)?);
                SendOp::Inode { ino, rec }
            }
            TAG_FREE => SendOp::Free { ino: r.u32()? },
            TAG_ENTRY => {
                let parent = r.u32()?;
                let ino = r.u32()?;
                let kind = r.u8()?;
                let cookie = r.u64()?;
                let name = entry_name(&mut r)?;
                SendOp::Entry {
                    parent,
                    ino,
                    kind,
                    cookie,
                    name,
                }
            }
            TAG_UNLINK => {
                let parent = r.u32()?;
                let name = entry_name(&mut r)?;
                SendOp::Unlink { parent, name }
            }
            TAG_SYMLINK => {
                let ino = r.u32()?;
                let target = r.bytes(SYMLINK_MAX)?;
                SendOp::Symlink { ino, target }
            }
            TAG_XATTR => {
                let ino = r.u32()?;
                let name = xattr_name(&mut r)?;
                let value = r.bytes(XATTR_VALUE_MAX)?;
                SendOp::Xattr { ino, name, value }
            }
            TAG_XATTR_DEL => {
                let ino = r.u32()?;
                let name = xattr_name(&mut r)?;
                SendOp::XattrDel { ino, name }
            }
            TAG_WRITE => {
                let ino = r.u32()?;
                let offset = r.u64()?;
                let data = r.bytes(MAX_WRITE_BYTES)?;
                if offset.checked_add(data.len() as u64).is_none() {
                    return Err(corrupt("write past the largest offset"));
                }
                SendOp::Write { ino, offset, data }
            }
            TAG_ZERO => {
                let ino = r.u32()?;
                let offset = r.u64()?;
                let len = r.u64()?;
                if offset.checked_add(len).is_none() {
                    return Err(corrupt("zero range past the largest offset"));
                }
                SendOp::Zero { ino, offset, len }
            }
            TAG_END => {
                let frames = r.u64()?;
                let bytes = r.u64()?;
                let mut hash = [0u8; 32];
                hash.copy_from_slice(r.take(32)?);
                SendOp::End {
                    frames,
                    bytes,
                    hash,
                }
            }
            other => return Err(corrupt(format!("unknown frame tag {other}"))),
        };
        if r.pos != payload.len() {
            return Err(corrupt("bytes left over in a frame"));
        }
        Ok(op)
    }
}

fn entry_name(r: &mut Reader<'_>) -> Result<Vec<u8>, FormatError> {
    let name = r.bytes(NAME_MAX)?;
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(corrupt("bad entry name"));
    }
    Ok(name)
}

fn xattr_name(r: &mut Reader<'_>) -> Result<Vec<u8>, FormatError> {
    let name = r.bytes(XATTR_NAME_MAX)?;
    if name.is_empty() || name.contains(&0) {
        return Err(corrupt("bad xattr name"));
    }
    Ok(name)
}

/// CRC32C of a frame: its tag and length, then its payload.
fn frame_crc(head: &FrameHeader, payload: &[u8]) -> u32 {
    let mut first = [0u8; 8];
    first[..4].copy_from_slice(&head.tag.to_le_bytes());
    first[4..].copy_from_slice(&head.len.to_le_bytes());
    crc32c::crc32c_append(checksum(&first), payload)
}

fn corrupt(detail: impl Into<String>) -> FormatError {
    FormatError::corrupted("send stream", detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_op() -> impl Strategy<Value = SendOp> {
        let name = proptest::collection::vec(1u8..=255, 1..20).prop_filter("entry name", |n| {
            !n.contains(&b'/') && n.as_slice() != b"." && n.as_slice() != b".."
        });
        prop_oneof![
            (any::<u32>(), any::<[u8; 64]>()).prop_map(|(ino, raw)| SendOp::Inode {
                ino,
                rec: bytemuck::pod_read_unaligned(&raw)
            }),
            any::<u32>().prop_map(|ino| SendOp::Free { ino }),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u8>(),
                any::<u64>(),
                name.clone()
            )
                .prop_map(|(parent, ino, kind, cookie, name)| SendOp::Entry {
                    parent,
                    ino,
                    kind,
                    cookie,
                    name
                }),
            (any::<u32>(), name.clone()).prop_map(|(parent, name)| SendOp::Unlink { parent, name }),
            (any::<u32>(), name.clone()).prop_map(|(ino, target)| SendOp::Symlink { ino, target }),
            (
                any::<u32>(),
                name.clone(),
                proptest::collection::vec(any::<u8>(), 0..100)
            )
                .prop_map(|(ino, name, value)| SendOp::Xattr { ino, name, value }),
            (any::<u32>(), name).prop_map(|(ino, name)| SendOp::XattrDel { ino, name }),
            (
                any::<u32>(),
                0u64..1 << 40,
                proptest::collection::vec(any::<u8>(), 0..5000)
            )
                .prop_map(|(ino, offset, data)| SendOp::Write { ino, offset, data }),
            (any::<u32>(), 0u64..1 << 40, 0u64..1 << 40)
                .prop_map(|(ino, offset, len)| SendOp::Zero { ino, offset, len }),
            (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(frames, bytes, hash)| {
                SendOp::End {
                    frames,
                    bytes,
                    hash,
                }
            }),
        ]
    }

    /// Decodes every frame of `bytes`.
    fn decode_frames(mut bytes: &[u8]) -> Result<Vec<SendOp>, FormatError> {
        let mut ops = Vec::new();
        while !bytes.is_empty() {
            let head = SendOp::check_header(bytes)?;
            let end = FRAME_HEADER_LEN + head.len as usize;
            let payload = bytes
                .get(FRAME_HEADER_LEN..end)
                .ok_or_else(|| corrupt("truncated frame"))?;
            ops.push(SendOp::decode(&head, payload)?);
            bytes = &bytes[end..];
        }
        Ok(ops)
    }

    proptest! {
        #[test]
        fn frames_round_trip(ops in proptest::collection::vec(arb_op(), 0..12)) {
            let mut buf = Vec::new();
            for op in &ops { op.encode(&mut buf); }
            prop_assert_eq!(decode_frames(&buf).unwrap(), ops);
        }

        #[test]
        fn any_flipped_bit_is_refused(op in arb_op(), at in any::<usize>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            op.encode(&mut buf);
            let at = at % buf.len();
            // The reserved word is checked as zero rather than checksummed.
            buf[at] ^= 1 << bit;
            prop_assert!(decode_frames(&buf).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let _ = decode_frames(&bytes);
            let _ = StreamHeader::decode(&bytes);
        }
    }

    #[test]
    fn header_round_trip_and_damage() {
        let base = StreamBase {
            name: b"monday".to_vec(),
            created_ns: 7,
            fingerprint: [9; 32],
        };
        let mut h = StreamHeader::new(b"tuesday", Some(&base)).unwrap();
        h.created_ns = 8;
        h.data_bytes = 1234;
        let bytes = h.encode();
        assert_eq!(bytes.len(), STREAM_HEADER_LEN);
        let back = StreamHeader::decode(&bytes).unwrap();
        assert_eq!(back.name(), b"tuesday");
        assert_eq!(back.base(), Some(base));
        assert_eq!(back.data_bytes, 1234);
        for at in [0, 8, 20, 100, 500, 656] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(StreamHeader::decode(&bad).is_err(), "byte {at}");
        }
        assert!(StreamHeader::decode(&bytes[..600]).is_err());
        assert!(StreamHeader::new(b"a/b", None).is_none());
        let full = StreamHeader::new(b"x", None).unwrap();
        assert_eq!(StreamHeader::decode(&full.encode()).unwrap().base(), None);
    }
}
