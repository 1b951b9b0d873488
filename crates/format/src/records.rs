//! The flat, fixed-size metadata records: inode (64 bytes), directory entry (32 bytes) and
//! record pointer (64 bytes). The same bytes live on disk, in memory and (later) on the GPU.

use bytemuck::{Pod, Zeroable};

/// One inode. Index in the inode table = inode number. A slot with `mode == 0` is free.
///
/// ```text
/// off size field
///   0    4 mode        S_IFMT type bits | permission bits (0 = free slot)
///   4    4 uid
///   8    4 gid
///  12    4 nlink
///  16    8 size        bytes (symlink: target length)
///  24    8 atime_ns    nanoseconds since the Unix epoch (signed)
///  32    8 mtime_ns
///  40    8 ctime_ns
///  48    4 rdev        device number of char/block devices (Linux new_encode_dev)
///  52    4 generation  bumped each time the slot is reused
///  56    4 flags       properties inherited by new inodes (v2, see props.rs); 0 in v1
///  60    4 reserved    0
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct InodeRecord {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub rdev: u32,
    pub generation: u32,
    pub flags: u32,
    /// Blocks fallocate reserved for this file that its writes have not used yet (v4;
    /// zero before): kept back from everything else, counted as used by statfs.
    pub prealloc_blocks: u32,
}
const _: () = assert!(std::mem::size_of::<InodeRecord>() == 64);

impl InodeRecord {
    /// True when this slot holds a live inode.
    pub fn is_live(&self) -> bool {
        self.mode != 0
    }
    /// The file kind encoded in `mode`, if it is a valid one.
    pub fn kind(&self) -> Option<FileKind> {
        FileKind::from_mode(self.mode)
    }

    /// The inode's own compression property (`None`: the filesystem default); an error
    /// for bits that are not a known value.
    pub fn compression(&self) -> Result<Option<crate::Compression>, crate::PropertyError> {
        crate::Compression::decode(self.flags)
    }

    /// The same inode with its compression property set (`None`: follow the default).
    pub fn with_compression(self, c: Option<crate::Compression>) -> InodeRecord {
        let bits = c.map_or(0, crate::Compression::encode);
        InodeRecord {
            flags: (self.flags & !crate::props::COMPRESSION_BITS) | bits,
            ..self
        }
    }
}

/// One directory entry. Its name lives in the name arena at `name_offset..+name_len`.
///
/// ```text
/// off size field
///   0    4 parent      inode number of the directory holding the entry
///   4    4 ino         inode the entry names (0 = free slot)
///   8    4 name_hash   gpufs_format::name_hash(parent, name)
///  12    1 name_len    1..=255
///  13    1 kind        FileKind as u8
///  14    2 flags       0 in v1
///  16    8 name_offset byte offset in the name arena
///  24    8 cookie      readdir position inside the parent, unique and increasing
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DirentRecord {
    pub parent: u32,
    pub ino: u32,
    pub name_hash: u32,
    pub name_len: u8,
    pub kind: u8,
    pub flags: u16,
    pub name_offset: u64,
    pub cookie: u64,
}
const _: () = assert!(std::mem::size_of::<DirentRecord>() == 32);

impl DirentRecord {
    pub fn is_live(&self) -> bool {
        self.ino != 0
    }
}

/// Where one record (up to `record_size` bytes of a file) is stored, and what a reader
/// needs to verify and decode it.
///
/// ```text
/// off size field
///   0    8 block        first device block of the stored bytes (contiguous)
///   8    4 logical_len  bytes of file data the record holds (from its start)
///  12    4 phys_len     bytes stored on disk (== logical_len unless compressed)
///  16    8 birth_gen    commit generation that wrote it (snapshots, dead lists)
///  24    4 checksum     CRC32C of the stored bytes (phys_len of them)
///  28    4 flags        RecordPtr::FLAG_* bits
///  32   32 hash         BLAKE3 of the logical bytes when FLAG_HASH_VALID (dedup key);
///                       with FLAG_COPY, bytes 24..32 hold the second copy's block
///                       (LE u64) and the hash is its first 24 bytes
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RecordPtr {
    pub block: u64,
    pub logical_len: u32,
    pub phys_len: u32,
    pub birth_gen: u64,
    pub checksum: u32,
    pub flags: u32,
    pub hash: [u8; 32],
}
const _: () = assert!(std::mem::size_of::<RecordPtr>() == 64);

impl RecordPtr {
    /// The stored bytes are one LZ4 block (v2).
    pub const FLAG_LZ4: u32 = 1 << 0;
    /// The stored bytes are AES-256-XTS ciphertext (v6, an encrypted image): `hash`
    /// holds the record's authentication tag (a keyed BLAKE3 of the stored plaintext,
    /// its first 24 bytes with [`RecordPtr::FLAG_COPY`]), whose first 8 bytes are the
    /// XTS tweak of its first 4 KiB; a plaintext shorter than 16 bytes is stored as 16.
    pub const FLAG_ENCRYPTED: u32 = 1 << 1;
    /// `hash` holds the BLAKE3 of the logical bytes (v3, written where dedup is on;
    /// its first 24 bytes with [`RecordPtr::FLAG_COPY`]).
    pub const FLAG_HASH_VALID: u32 = 1 << 2;
    /// The stored bytes are one zstd frame (v2).
    pub const FLAG_ZSTD: u32 = 1 << 3;
    /// A second copy of the stored bytes lives at [`RecordPtr::copy_block`] (v2,
    /// `copies 2`).
    pub const FLAG_COPY: u32 = 1 << 4;
    /// Flags this build's reader understands; anything else is refused as corrupted.
    pub const KNOWN_FLAGS: u32 = Self::FLAG_LZ4
        | Self::FLAG_ENCRYPTED
        | Self::FLAG_HASH_VALID
        | Self::FLAG_ZSTD
        | Self::FLAG_COPY;

    /// Bytes stored in the first block on: `phys_len`, or at least 16 when encrypted (the
    /// shortest XTS data unit).
    pub fn stored_len(&self) -> u32 {
        if self.flags & Self::FLAG_ENCRYPTED != 0 {
            self.phys_len.max(16)
        } else {
            self.phys_len
        }
    }

    /// Number of device blocks the stored bytes occupy (in each copy).
    pub fn block_count(&self) -> u64 {
        u64::from(self.phys_len).div_ceil(crate::BLOCK_SIZE as u64)
    }

    /// First block of the second copy, when the record has one.
    pub fn copy_block(&self) -> Option<u64> {
        if self.flags & Self::FLAG_COPY == 0 {
            return None;
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.hash[24..32]);
        Some(u64::from_le_bytes(b))
    }

    /// The key a dedup table files this record under (the first 16 bytes of its BLAKE3),
    /// when it carries a hash.
    pub fn dedup_key(&self) -> Option<[u8; 16]> {
        if self.flags & Self::FLAG_HASH_VALID == 0 {
            return None;
        }
        let mut k = [0u8; 16];
        k.copy_from_slice(&self.hash[..16]);
        Some(k)
    }

    /// Does this record hold bytes whose BLAKE3 is `hash`? Compares all of the hash it
    /// keeps (24 bytes of it with a second copy).
    pub fn hash_matches(&self, hash: &[u8; 32]) -> bool {
        let kept = if self.flags & Self::FLAG_COPY != 0 {
            24
        } else {
            32
        };
        self.flags & Self::FLAG_HASH_VALID != 0 && self.hash[..kept] == hash[..kept]
    }

    /// The same pointer with a second copy at `block`.
    pub fn with_copy_block(self, block: u64) -> RecordPtr {
        let mut p = self;
        p.flags |= Self::FLAG_COPY;
        p.hash[24..32].copy_from_slice(&block.to_le_bytes());
        p
    }

    /// The block runs the record occupies: `(first block, blocks)` of each copy.
    pub fn runs(&self) -> impl Iterator<Item = (u64, u64)> {
        let n = self.block_count();
        std::iter::once((self.block, n)).chain(self.copy_block().map(|b| (b, n)))
    }

    /// Blocks the record occupies in all, every copy counted.
    pub fn total_blocks(&self) -> u64 {
        self.runs().map(|(_, n)| n).sum()
    }
}

/// File kinds as stored in a dirent's `kind` byte.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    Regular = 1,
    Directory = 2,
    Symlink = 3,
    Fifo = 4,
    Socket = 5,
    CharDevice = 6,
    BlockDevice = 7,
}

/// `S_IFMT` and the type bits, spelled out so the format does not depend on libc.
pub mod mode_bits {
    pub const S_IFMT: u32 = 0o170000;
    pub const S_IFSOCK: u32 = 0o140000;
    pub const S_IFLNK: u32 = 0o120000;
    pub const S_IFREG: u32 = 0o100000;
    pub const S_IFBLK: u32 = 0o060000;
    pub const S_IFDIR: u32 = 0o040000;
    pub const S_IFCHR: u32 = 0o020000;
    pub const S_IFIFO: u32 = 0o010000;
}

impl FileKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => FileKind::Regular,
            2 => FileKind::Directory,
            3 => FileKind::Symlink,
            4 => FileKind::Fifo,
            5 => FileKind::Socket,
            6 => FileKind::CharDevice,
            7 => FileKind::BlockDevice,
            _ => return None,
        })
    }

    pub fn from_mode(mode: u32) -> Option<Self> {
        use mode_bits::*;
        Some(match mode & S_IFMT {
            S_IFREG => FileKind::Regular,
            S_IFDIR => FileKind::Directory,
            S_IFLNK => FileKind::Symlink,
            S_IFIFO => FileKind::Fifo,
            S_IFSOCK => FileKind::Socket,
            S_IFCHR => FileKind::CharDevice,
            S_IFBLK => FileKind::BlockDevice,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of this kind.
    pub fn mode_bits(self) -> u32 {
        use mode_bits::*;
        match self {
            FileKind::Regular => S_IFREG,
            FileKind::Directory => S_IFDIR,
            FileKind::Symlink => S_IFLNK,
            FileKind::Fifo => S_IFIFO,
            FileKind::Socket => S_IFSOCK,
            FileKind::CharDevice => S_IFCHR,
            FileKind::BlockDevice => S_IFBLK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_mode_and_byte() {
        for v in 1..=7u8 {
            let k = FileKind::from_u8(v).unwrap();
            assert_eq!(FileKind::from_mode(k.mode_bits() | 0o644), Some(k));
            assert_eq!(k as u8, v);
        }
        assert_eq!(FileKind::from_u8(0), None);
        assert_eq!(FileKind::from_u8(8), None);
        assert_eq!(FileKind::from_mode(0), None);
    }

    #[test]
    fn a_second_copy_is_one_more_run() {
        let p = RecordPtr {
            block: 100,
            phys_len: 5000,
            ..Default::default()
        };
        assert_eq!(p.copy_block(), None);
        assert_eq!(p.runs().collect::<Vec<_>>(), vec![(100, 2)]);
        let c = p.with_copy_block(9000);
        assert_eq!(c.copy_block(), Some(9000));
        assert_eq!(c.runs().collect::<Vec<_>>(), vec![(100, 2), (9000, 2)]);
        assert_eq!(c.total_blocks(), 4);
        assert_eq!(c.hash[..24], [0; 24]);
    }

    #[test]
    fn record_ptr_block_count_rounds_up() {
        let mut p = RecordPtr::default();
        assert_eq!(p.block_count(), 0);
        p.phys_len = 1;
        assert_eq!(p.block_count(), 1);
        p.phys_len = 4096;
        assert_eq!(p.block_count(), 1);
        p.phys_len = 4097;
        assert_eq!(p.block_count(), 2);
    }
}
