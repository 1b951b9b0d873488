//! Checkpoints: the whole metadata state as flat arrays, written copy-on-write to free
//! blocks and made current by a superblock that points at its root block.

use bytemuck::{Pod, Zeroable};

use crate::journal::{Reader, SYMLINK_MAX, XATTR_NAME_MAX, XATTR_VALUE_MAX};
use crate::records::{DirentRecord, InodeRecord, RecordPtr};
use crate::snapshot::{valid_snapshot_name, SnapshotRecord};
use crate::{checksum, FormatError, BLOCK_SIZE};

pub const CKPT_MAGIC: [u8; 8] = *b"GPUFSCKP";
/// Magic of a blob of versions 1 to 4 (a 64-byte header, no snapshot sections).
pub const BLOB_MAGIC: [u8; 8] = *b"GPUFSBLB";
/// Magic of a version 5 blob (a 96-byte header; the snapshot table and the union of the
/// snapshots' bitmaps follow the sections of a version 4 blob).
pub const BLOB_MAGIC_V5: [u8; 8] = *b"GPUFSBL5";

/// The checkpoint root block: where the checkpoint blob lies.
///
/// ```text
/// off size field
///   0    8 magic          "GPUFSCKP"
///   8    4 version        FORMAT_VERSION
///  12    4 extent_count   runs of blocks holding the blob (<= MAX_EXTENTS)
///  16    8 generation     superblock generation that wrote it
///  24    8 blob_len       bytes in the blob
///  32    4 blob_checksum  CRC32C of the blob
///  36    4 checksum       CRC32C of the root block with this field zero
///  40  16n extents        n x (start block u64, block count u64)
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct CheckpointRoot {
    pub magic: [u8; 8],
    pub version: u32,
    pub extent_count: u32,
    pub generation: u64,
    pub blob_len: u64,
    pub blob_checksum: u32,
    pub checksum: u32,
}
const _: () = assert!(std::mem::size_of::<CheckpointRoot>() == 40);

impl CheckpointRoot {
    pub const MAX_EXTENTS: usize = (BLOCK_SIZE - 40) / 16;

    /// Encodes the root block with its extent list.
    pub fn encode(&self, extents: &[(u64, u64)]) -> Result<Vec<u8>, FormatError> {
        if extents.len() > Self::MAX_EXTENTS {
            return Err(FormatError::corrupted(
                "checkpoint root",
                format!("{} extents (max {})", extents.len(), Self::MAX_EXTENTS),
            ));
        }
        let mut root = *self;
        root.extent_count = extents.len() as u32;
        root.checksum = 0;
        let mut block = vec![0u8; BLOCK_SIZE];
        block[..40].copy_from_slice(bytemuck::bytes_of(&root));
        for (i, (start, len)) in extents.iter().enumerate() {
            let off = 40 + i * 16;
            block[off..off + 8].copy_from_slice(&start.to_le_bytes());
            block[off + 8..off + 16].copy_from_slice(&len.to_le_bytes());
        }
        let crc = checksum(&block);
        block[36..40].copy_from_slice(&crc.to_le_bytes());
        Ok(block)
    }

    /// Decodes and validates a root block; returns it and its extent list.
    pub fn decode(block: &[u8]) -> Result<(Self, Vec<(u64, u64)>), FormatError> {
        if block.len() != BLOCK_SIZE {
            return Err(FormatError::corrupted("checkpoint root", "wrong length"));
        }
        if block[..8] != CKPT_MAGIC {
            return Err(FormatError::BadMagic {
                what: "checkpoint root",
            });
        }
        let root: CheckpointRoot = bytemuck::pod_read_unaligned(&block[..40]);
        let mut copy = block.to_vec();
        copy[36..40].fill(0);
        let computed = checksum(&copy);
        if computed != root.checksum {
            return Err(FormatError::Checksum {
                what: "checkpoint root",
                stored: root.checksum,
                computed,
            });
        }
        if !crate::is_readable_version(root.version) {
            return Err(FormatError::UnsupportedVersion {
                found: root.version,
                supported: crate::FORMAT_VERSION,
            });
        }
        let n = root.extent_count as usize;
        if n > Self::MAX_EXTENTS {
            return Err(FormatError::corrupted(
                "checkpoint root",
                "too many extents",
            ));
        }
        let mut r = Reader {
            bytes: block,
            pos: 40,
        };
        let mut extents = Vec::with_capacity(n);
        let mut total: u64 = 0;
        for _ in 0..n {
            let start = r.u64()?;
            let len = r.u64()?;
            total = total
                .checked_add(len)
                .ok_or_else(|| FormatError::corrupted("checkpoint root", "extent overflow"))?;
            extents.push((start, len));
        }
        if total
            .checked_mul(BLOCK_SIZE as u64)
            .is_none_or(|b| b < root.blob_len)
        {
            return Err(FormatError::corrupted(
                "checkpoint root",
                "extents smaller than the blob",
            ));
        }
        Ok((root, extents))
    }
}

/// One record pointer of one file, as stored in a checkpoint.
///
/// ```text
/// off size field
///   0    4 ino
///   4    4 reserved  0
///   8    8 index     record number within the file (offset / record_size)
///  16   64 ptr       RecordPtr
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ExtentEntry {
    pub ino: u32,
    pub reserved: u32,
    pub index: u64,
    pub ptr: RecordPtr,
}
const _: () = assert!(std::mem::size_of::<ExtentEntry>() == 80);

/// Header of the checkpoint blob; the sections follow in this order, unpadded.
///
/// ```text
/// off size field
///   0    8 magic          "GPUFSBL5" ("GPUFSBLB": versions 1 to 4, 64 bytes, ends at 64)
///   8    8 inode_slots    InodeRecord x n   (slot 0 unused, 1 = root)
///  16    8 dirent_count   DirentRecord x n  (live entries only, by (parent, cookie))
///  24    8 name_bytes     name arena
///  32    8 extent_count   ExtentEntry x n
///  40    8 xattr_bytes    n x (ino u32, name_len u32, name, value_len u32, value)
///  48    8 symlink_bytes  n x (ino u32, len u32, target)
///  56    8 bitmap_bytes   allocation bitmap of the data area, bit i = block data_start+i
///  64    8 snapshot_count SnapshotRecord x n (v5), oldest first
///  72    8 union_bytes    (v5) the union of the snapshots' bitmaps (0 bytes: none)
///  80    8 next_snapshot  (v5) the id the next snapshot gets
///  88    8 reserved       0
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct CheckpointHeader {
    pub magic: [u8; 8],
    pub inode_slots: u64,
    pub dirent_count: u64,
    pub name_bytes: u64,
    pub extent_count: u64,
    pub xattr_bytes: u64,
    pub symlink_bytes: u64,
    pub bitmap_bytes: u64,
    pub snapshot_count: u64,
    pub union_bytes: u64,
    pub next_snapshot: u64,
    pub reserved: u64,
}
const _: () = assert!(std::mem::size_of::<CheckpointHeader>() == 96);
/// Bytes of a version 1 to 4 header: the fields up to `bitmap_bytes`.
const OLD_HEADER_BYTES: usize = 64;

/// The decoded content of a checkpoint blob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointImage {
    pub inodes: Vec<InodeRecord>,
    pub dirents: Vec<DirentRecord>,
    pub names: Vec<u8>,
    pub extents: Vec<ExtentEntry>,
    /// (ino, name, value)
    pub xattrs: Vec<(u32, Vec<u8>, Vec<u8>)>,
    /// (ino, target)
    pub symlinks: Vec<(u32, Vec<u8>)>,
    pub bitmap: Vec<u8>,
    /// (v5) Snapshots, oldest first.
    pub snapshots: Vec<SnapshotRecord>,
    /// (v5) The union of the snapshots' bitmaps; empty when there is no snapshot.
    pub snapshot_union: Vec<u8>,
    /// (v5) The id the next snapshot gets.
    pub next_snapshot: u64,
}

impl CheckpointImage {
    /// Serializes into one blob.
    pub fn encode(&self) -> Vec<u8> {
        let mut xattr = Vec::new();
        for (ino, name, value) in &self.xattrs {
            xattr.extend_from_slice(&ino.to_le_bytes());
            xattr.extend_from_slice(&(name.len() as u32).to_le_bytes());
            xattr.extend_from_slice(name);
            xattr.extend_from_slice(&(value.len() as u32).to_le_bytes());
            xattr.extend_from_slice(value);
        }
        let mut links = Vec::new();
        for (ino, target) in &self.symlinks {
            links.extend_from_slice(&ino.to_le_bytes());
            links.extend_from_slice(&(target.len() as u32).to_le_bytes());
            links.extend_from_slice(target);
        }
        let hdr = CheckpointHeader {
            magic: BLOB_MAGIC_V5,
            inode_slots: self.inodes.len() as u64,
            dirent_count: self.dirents.len() as u64,
            name_bytes: self.names.len() as u64,
            extent_count: self.extents.len() as u64,
            xattr_bytes: xattr.len() as u64,
            symlink_bytes: links.len() as u64,
            bitmap_bytes: self.bitmap.len() as u64,
            snapshot_count: self.snapshots.len() as u64,
            union_bytes: self.snapshot_union.len() as u64,
            next_snapshot: self.next_snapshot,
            reserved: 0,
        };
        let mut out = Vec::with_capacity(
            96 + self.snapshots.len() * 320
                + self.snapshot_union.len()
                + self.inodes.len() * 64
                + self.dirents.len() * 32
                + self.names.len()
                + self.extents.len() * 80
                + xattr.len()
                + links.len()
                + self.bitmap.len(),
        );
        out.extend_from_slice(bytemuck::bytes_of(&hdr));
        out.extend_from_slice(bytemuck::cast_slice(&self.inodes));
        out.extend_from_slice(bytemuck::cast_slice(&self.dirents));
        out.extend_from_slice(&self.names);
        out.extend_from_slice(bytemuck::cast_slice(&self.extents));
        out.extend_from_slice(&xattr);
        out.extend_from_slice(&links);
        out.extend_from_slice(&self.bitmap);
        out.extend_from_slice(bytemuck::cast_slice(&self.snapshots));
        out.extend_from_slice(&self.snapshot_union);
        out
    }

    /// Parses a blob, validating every length before use. Semantic checks (entries
    /// pointing at live inodes, names inside the arena, ...) belong to the loader and fsck.
    pub fn decode(blob: &[u8]) -> Result<Self, FormatError> {
        let bad = |d: &str| FormatError::corrupted("checkpoint", d.to_string());
        let header_bytes = match blob.get(..8) {
            Some(m) if m == crate::segments::SEGMENT_MAGIC => {
                return crate::segments::decode_segmented(blob)
            }
            Some(m) if m == BLOB_MAGIC_V5 => 96,
            Some(m) if m == BLOB_MAGIC => OLD_HEADER_BYTES,
            Some(_) => {
                return Err(FormatError::BadMagic {
                    what: "checkpoint blob",
                })
            }
            None => return Err(bad("blob shorter than its header")),
        };
        if blob.len() < header_bytes {
            return Err(bad("blob shorter than its header"));
        }
        let mut header = [0u8; 96];
        header[..header_bytes].copy_from_slice(&blob[..header_bytes]);
        let hdr: CheckpointHeader = bytemuck::pod_read_unaligned(&header);
        if hdr.reserved != 0 {
            return Err(bad("reserved header field is not zero"));
        }
        let mut r = Reader {
            bytes: blob,
            pos: header_bytes,
        };
        let sized = |count: u64, each: u64| -> Result<usize, FormatError> {
            count
                .checked_mul(each)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n <= blob.len())
                .ok_or_else(|| bad("section length out of range"))
        };
        let inodes = bytemuck::pod_collect_to_vec(r.take(sized(hdr.inode_slots, 64)?)?);
        let dirents = bytemuck::pod_collect_to_vec(r.take(sized(hdr.dirent_count, 32)?)?);
        let names = r.take(sized(hdr.name_bytes, 1)?)?.to_vec();
        let extents = bytemuck::pod_collect_to_vec(r.take(sized(hdr.extent_count, 80)?)?);
        let xattr_bytes = r.take(sized(hdr.xattr_bytes, 1)?)?;
        let link_bytes = r.take(sized(hdr.symlink_bytes, 1)?)?;
        let bitmap = r.take(sized(hdr.bitmap_bytes, 1)?)?.to_vec();
        let snapshots: Vec<SnapshotRecord> =
            bytemuck::pod_collect_to_vec(r.take(sized(hdr.snapshot_count, 320)?)?);
        let snapshot_union = r.take(sized(hdr.union_bytes, 1)?)?.to_vec();
        for s in &snapshots {
            let name_ok = s.name_len as usize <= crate::snapshot::SNAPSHOT_NAME_MAX
                && valid_snapshot_name(s.name())
                && s.name[s.name_len as usize..].iter().all(|b| *b == 0);
            if !name_ok || s.reserved != 0 || s.id == 0 || s.id >= hdr.next_snapshot {
                return Err(bad("invalid snapshot record"));
            }
        }
        if !snapshot_union.is_empty() && snapshot_union.len() != bitmap.len() {
            return Err(bad("snapshot union and bitmap differ in length"));
        }
        if r.pos != blob.len() {
            return Err(bad("trailing bytes after the last section"));
        }
        let mut xattrs = Vec::new();
        let mut xr = Reader {
            bytes: xattr_bytes,
            pos: 0,
        };
        while xr.pos < xattr_bytes.len() {
            let ino = xr.u32()?;
            let name = xr.bytes(XATTR_NAME_MAX)?;
            let value = xr.bytes(XATTR_VALUE_MAX)?;
            xattrs.push((ino, name, value));
        }
        let mut symlinks = Vec::new();
        let mut lr = Reader {
            bytes: link_bytes,
            pos: 0,
        };
        while lr.pos < link_bytes.len() {
            let ino = lr.u32()?;
            let target = lr.bytes(SYMLINK_MAX)?;
            symlinks.push((ino, target));
        }
        Ok(CheckpointImage {
            inodes,
            dirents,
            names,
            extents,
            xattrs,
            symlinks,
            bitmap,
            snapshots,
            snapshot_union,
            next_snapshot: hdr.next_snapshot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> CheckpointImage {
        CheckpointImage {
            inodes: vec![
                InodeRecord::default(),
                InodeRecord {
                    mode: 0o40755,
                    nlink: 2,
                    ..Default::default()
                },
            ],
            dirents: vec![DirentRecord {
                parent: 1,
                ino: 1,
                name_len: 3,
                kind: 1,
                ..Default::default()
            }],
            names: b"abc".to_vec(),
            extents: vec![ExtentEntry {
                ino: 1,
                index: 0,
                ..Default::default()
            }],
            xattrs: vec![(1, b"user.a".to_vec(), b"v".to_vec())],
            symlinks: vec![(2, b"/x/y".to_vec())],
            bitmap: vec![0xff, 0x01],
            snapshots: vec![snapshot(1, b"first"), snapshot(4, b"second")],
            snapshot_union: vec![0x0f, 0x00],
            next_snapshot: 5,
        }
    }

    fn snapshot(id: u64, name: &[u8]) -> SnapshotRecord {
        let mut s = SnapshotRecord::zeroed();
        s.id = id;
        s.generation = id * 10;
        assert!(s.set_name(name));
        s
    }

    #[test]
    fn a_version_4_blob_decodes_without_snapshots() {
        let img = CheckpointImage {
            snapshots: Vec::new(),
            snapshot_union: Vec::new(),
            next_snapshot: 0,
            ..sample()
        };
        let v5 = img.encode();
        // The same sections behind the 64-byte header of version 4.
        let mut v4 = BLOB_MAGIC.to_vec();
        v4.extend_from_slice(&v5[8..64]);
        v4.extend_from_slice(&v5[96..]);
        assert_eq!(CheckpointImage::decode(&v4).unwrap(), img);
    }

    #[test]
    fn bad_snapshot_records_are_refused() {
        for bad in [
            CheckpointImage {
                next_snapshot: 4,
                ..sample()
            },
            CheckpointImage {
                snapshot_union: vec![1, 2, 3],
                ..sample()
            },
        ] {
            assert!(CheckpointImage::decode(&bad.encode()).is_err());
        }
        let mut named = sample();
        named.snapshots[0].name[0] = b'/';
        assert!(CheckpointImage::decode(&named.encode()).is_err());
    }

    #[test]
    fn blob_round_trip() {
        let img = sample();
        assert_eq!(CheckpointImage::decode(&img.encode()).unwrap(), img);
    }

    #[test]
    fn root_round_trip_and_flip_detection() {
        let root = CheckpointRoot {
            magic: CKPT_MAGIC,
            version: crate::FORMAT_VERSION,
            extent_count: 0,
            generation: 9,
            blob_len: 5000,
            blob_checksum: 1,
            checksum: 0,
        };
        let block = root.encode(&[(100, 1), (200, 1)]).unwrap();
        let (back, ext) = CheckpointRoot::decode(&block).unwrap();
        assert_eq!(back.generation, 9);
        assert_eq!(ext, vec![(100, 1), (200, 1)]);
        let mut b = block.clone();
        b[50] ^= 4;
        assert!(CheckpointRoot::decode(&b).is_err());
        // Extents too small for the blob are refused.
        let small = root.encode(&[(100, 1)]).unwrap();
        assert!(CheckpointRoot::decode(&small).is_err());
    }

    proptest! {
        #[test]
        fn blob_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut b = bytes;
            if b.len() >= 8 { b[..8].copy_from_slice(&BLOB_MAGIC_V5); }
            if let Ok(img) = CheckpointImage::decode(&b) {
                prop_assert_eq!(img.encode(), b);
            }
        }

        #[test]
        fn blob_truncation_is_an_error(cut in 0usize..200) {
            let enc = sample().encode();
            let cut = cut.min(enc.len() - 1);
            prop_assert!(CheckpointImage::decode(&enc[..cut]).is_err());
        }
    }
}
