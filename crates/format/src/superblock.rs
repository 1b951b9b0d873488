//! The superblock: two slots (blocks 0 and 1), written alternately. The valid slot with
//! the highest generation is the current state of the filesystem.

use bytemuck::{Pod, Zeroable};

use crate::{checksum, FormatError, BLOCK_SIZE, FORMAT_VERSION};

/// Magic bytes at offset 0 of each superblock slot.
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"GPUFS\0SB";

/// Superblock slot `i` (0 or 1) lives in this device block.
pub const SUPERBLOCK_SLOTS: [u64; 2] = [0, 1];

/// ```text
/// off size field
///   0    8 magic            "GPUFS\0SB"
///   8    4 version          FORMAT_VERSION
///  12    4 block_size       4096
///  16    4 record_size      bytes per file record (4 KiB ..= 1 MiB, power of two)
///  20    4 flags            FLAG_CLEAN: written by a clean unmount, no journal follows
///  24    8 total_blocks     device size in blocks
///  32    8 generation       commit generation; highest valid slot wins
///  40   16 uuid             filesystem identity
///  56    8 journal_start    first block of the journal ring
///  64    8 journal_blocks   blocks in the journal ring
///  72    8 journal_head     ring index (0..journal_blocks) where replay starts
///  80    8 journal_seq      sequence number expected in the block at journal_head
///  88    8 checkpoint_root  block holding the checkpoint root (0: none)
///  96    8 data_start       first block of the allocatable area
/// 104    8 used_blocks      allocatable blocks in use at this checkpoint (data + checkpoint)
/// 112    8 inode_count      live inodes at this checkpoint
/// 120    8 created_ns       mkfs time, ns since the epoch
/// 128    8 checkpoint_ns    time of this checkpoint
/// 136    4 compression      default compression of new records (v2; see props.rs);
///                           0 in a version 1 image: none
/// 140    4 reserved_a       zero
/// 144    8 checkpoint_root_copy  block of the checkpoint's second copy (v2; 0: none)
/// 152    8 journal_copy_start    first block of the journal ring's second copy, in the
///                                data area, `journal_blocks` long (v2; 0: none)
/// 160    8 far_slot         the third copy of this superblock: the image's last block,
///                                kept out of the data area's free space (v3; 0: none)
/// 168    8 scrub_cursor     block an interrupted scrub resumes from (v3; 0: none)
/// 176   72 in_use           who holds the image mounted read-write (v4; all zero: nobody,
///                           the state after a clean unmount), see [`InUse`]:
///                           176 16 host (machine id), 192 4 pid, 196 4 reserved (zero),
///                           200 8 since_ns, 208 40 mount_point (UTF-8, NUL-padded,
///                           cut at 40 bytes)
/// 248    4 key_area         first of the two blocks of key slots of an encrypted image
///                           (v6, with FLAG_ENCRYPTED; 0: not encrypted), see keyslot.rs
/// 252    4 checksum         CRC32C of bytes 0..252
/// ```
/// The rest of the 4096-byte slot is zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Superblock {
    pub magic: [u8; 8],
    pub version: u32,
    pub block_size: u32,
    pub record_size: u32,
    pub flags: u32,
    pub total_blocks: u64,
    pub generation: u64,
    pub uuid: [u8; 16],
    pub journal_start: u64,
    pub journal_blocks: u64,
    pub journal_head: u64,
    pub journal_seq: u64,
    pub checkpoint_root: u64,
    pub data_start: u64,
    pub used_blocks: u64,
    pub inode_count: u64,
    pub created_ns: i64,
    pub checkpoint_ns: i64,
    pub compression: u32,
    pub reserved_a: u32,
    pub checkpoint_root_copy: u64,
    pub journal_copy_start: u64,
    pub far_slot: u64,
    pub scrub_cursor: u64,
    pub in_use: InUse,
    pub key_area: u32,
    pub checksum: u32,
}
const _: () = assert!(std::mem::size_of::<Superblock>() == 256);

const CHECKSUM_OFFSET: usize = 252;

/// The in-use marker (v4): written by a read-write mount before anything else, zeroed
/// by its clean unmount. A mount that finds another host's marker refuses (the OS lock
/// on the image file only covers one machine); its own host's marker was left by a
/// mount that ended without unmounting, and is taken over.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct InUse {
    /// The holder's machine id (`/etc/machine-id`); all zero: nobody.
    pub host: [u8; 16],
    pub pid: u32,
    pub reserved: u32,
    /// When the mount began, ns since the epoch.
    pub since_ns: i64,
    /// Where it is mounted (UTF-8, NUL-padded, cut at 40 bytes).
    pub mount_point: [u8; 40],
}
const _: () = assert!(std::mem::size_of::<InUse>() == 72);

impl InUse {
    /// Nobody holds the image.
    pub const NOBODY: InUse = InUse {
        host: [0; 16],
        pid: 0,
        reserved: 0,
        since_ns: 0,
        mount_point: [0; 40],
    };

    pub fn is_held(&self) -> bool {
        self.host != [0; 16]
    }

    /// The mount point as recorded (cut at 40 bytes).
    pub fn mount_point(&self) -> String {
        let end = self.mount_point.iter().position(|b| *b == 0).unwrap_or(40);
        String::from_utf8_lossy(&self.mount_point[..end]).into_owned()
    }

    /// `mount_point` cut to fit, at a character boundary.
    pub fn mount_point_bytes(mount_point: &str) -> [u8; 40] {
        let mut out = [0u8; 40];
        let mut end = mount_point.len().min(40);
        while !mount_point.is_char_boundary(end) {
            end -= 1;
        }
        out[..end].copy_from_slice(&mount_point.as_bytes()[..end]);
        out
    }
}

impl Superblock {
    /// The filesystem was checkpointed at unmount and no journal block of this
    /// generation exists; a mount may skip its recovery checkpoint.
    pub const FLAG_CLEAN: u32 = 1;
    /// New records are deduplicated unless a directory's `dedup` property says off (v3,
    /// `gpufs mkfs --dedup`).
    pub const FLAG_DEDUP: u32 = 1 << 1;
    /// Every record, checkpoint page and journal block is encrypted and authenticated
    /// under the volume key that the key slots at `key_area` wrap (v6, `gpufs mkfs
    /// --encrypt`).
    pub const FLAG_ENCRYPTED: u32 = 1 << 2;

    /// Is the image encrypted?
    pub fn is_encrypted(&self) -> bool {
        self.flags & Self::FLAG_ENCRYPTED != 0
    }

    /// Encodes into a full 4096-byte slot, checksum filled in.
    pub fn encode(&self) -> Vec<u8> {
        let mut sb = *self;
        sb.checksum = 0;
        let mut block = vec![0u8; BLOCK_SIZE];
        block[..256].copy_from_slice(bytemuck::bytes_of(&sb));
        let crc = checksum(&block[..CHECKSUM_OFFSET]);
        block[CHECKSUM_OFFSET..256].copy_from_slice(&crc.to_le_bytes());
        block
    }

    /// Decodes and validates one slot: magic, version, checksum and geometry.
    pub fn decode(block: &[u8]) -> Result<Self, FormatError> {
        if block.len() < 256 {
            return Err(FormatError::corrupted(
                "superblock",
                format!("slot is {} bytes, need 256", block.len()),
            ));
        }
        if block[..8] != SUPERBLOCK_MAGIC {
            return Err(FormatError::BadMagic { what: "superblock" });
        }
        let sb: Superblock = bytemuck::pod_read_unaligned(&block[..256]);
        let computed = checksum(&block[..CHECKSUM_OFFSET]);
        if computed != sb.checksum {
            return Err(FormatError::Checksum {
                what: "superblock",
                stored: sb.checksum,
                computed,
            });
        }
        if !crate::is_readable_version(sb.version) {
            return Err(FormatError::UnsupportedVersion {
                found: sb.version,
                supported: FORMAT_VERSION,
            });
        }
        sb.validate_geometry()?;
        Ok(sb)
    }

    fn validate_geometry(&self) -> Result<(), FormatError> {
        let bad = |d: String| Err(FormatError::corrupted("superblock", d));
        if self.block_size as usize != BLOCK_SIZE {
            return bad(format!(
                "block size {} (expected {BLOCK_SIZE})",
                self.block_size
            ));
        }
        if !self.record_size.is_power_of_two()
            || self.record_size < crate::MIN_RECORD_SIZE
            || self.record_size > crate::MAX_RECORD_SIZE
        {
            return bad(format!("record size {}", self.record_size));
        }
        let journal_end = self.journal_start.checked_add(self.journal_blocks);
        if self.journal_start < 2
            || self.journal_blocks < 2
            || journal_end.is_none_or(|e| e > self.data_start)
        {
            return bad("journal region out of range".into());
        }
        if self.data_start >= self.total_blocks {
            return bad("data area starts past the end of the device".into());
        }
        if self.journal_head >= self.journal_blocks {
            return bad("journal head outside the journal".into());
        }
        if self.checkpoint_root != 0
            && (self.checkpoint_root < self.data_start || self.checkpoint_root >= self.total_blocks)
        {
            return bad("checkpoint root outside the data area".into());
        }
        if self.used_blocks > self.total_blocks - self.data_start {
            return bad("more blocks used than exist".into());
        }
        let in_area = |b: u64, n: u64| {
            b >= self.data_start && b.checked_add(n).is_some_and(|e| e <= self.total_blocks)
        };
        if self.checkpoint_root_copy != 0 && !in_area(self.checkpoint_root_copy, 1) {
            return bad("checkpoint copy root outside the data area".into());
        }
        if self.journal_copy_start != 0 && !in_area(self.journal_copy_start, self.journal_blocks) {
            return bad("journal copy outside the data area".into());
        }
        if self.far_slot != 0 && self.far_slot + 1 != self.total_blocks {
            return bad("far superblock slot is not the last block".into());
        }
        let key_area = u64::from(self.key_area);
        if self.is_encrypted() != (key_area != 0) {
            return bad("encryption flag and key area disagree".into());
        }
        if key_area != 0
            && (key_area < 2 || key_area + crate::keyslot::KEY_AREA_BLOCKS > self.journal_start)
        {
            return bad("key area overlaps the superblocks or the journal".into());
        }
        if crate::Compression::decode(self.compression).is_err() {
            return bad(format!("default compression {:#x}", self.compression));
        }
        Ok(())
    }

    /// Blocks available for data and checkpoints.
    pub fn allocatable_blocks(&self) -> u64 {
        self.total_blocks - self.data_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Superblock {
        Superblock {
            magic: SUPERBLOCK_MAGIC,
            version: FORMAT_VERSION,
            block_size: BLOCK_SIZE as u32,
            record_size: 65536,
            flags: 0,
            total_blocks: 1 << 20,
            generation: 7,
            uuid: [3; 16],
            journal_start: 2,
            journal_blocks: 1024,
            journal_head: 5,
            journal_seq: 99,
            checkpoint_root: 2000,
            data_start: 1026,
            used_blocks: 10,
            inode_count: 1,
            created_ns: 1,
            checkpoint_ns: 2,
            compression: 0,
            reserved_a: 0,
            checkpoint_root_copy: 3000,
            journal_copy_start: 4000,
            far_slot: 0,
            scrub_cursor: 0,
            in_use: InUse::NOBODY,
            key_area: 0,
            checksum: 0,
        }
    }

    #[test]
    fn round_trip() {
        let sb = sample();
        let bytes = sb.encode();
        let back = Superblock::decode(&bytes).unwrap();
        assert_eq!(back.generation, 7);
        assert_eq!(back.journal_seq, 99);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = sample().encode();
        for i in 0..256 {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(
                Superblock::decode(&b).is_err(),
                "flip at {i} went unnoticed"
            );
        }
    }

    #[test]
    fn other_version_is_refused_clearly() {
        let mut sb = sample();
        sb.version = FORMAT_VERSION + 1;
        let err = Superblock::decode(&sb.encode()).unwrap_err();
        assert!(matches!(
            err,
            FormatError::UnsupportedVersion { found, .. } if found == FORMAT_VERSION + 1
        ));
        sb.version = 0;
        assert!(Superblock::decode(&sb.encode()).is_err());
    }

    #[test]
    fn version_1_superblocks_still_decode() {
        let mut sb = sample();
        sb.version = 1;
        assert_eq!(Superblock::decode(&sb.encode()).unwrap().version, 1);
    }

    #[test]
    fn metadata_copies_outside_the_data_area_are_refused() {
        let mut sb = sample();
        sb.checkpoint_root_copy = 5;
        assert!(Superblock::decode(&sb.encode()).is_err());
        let mut sb = sample();
        sb.journal_copy_start = sb.total_blocks - 10;
        assert!(Superblock::decode(&sb.encode()).is_err());
    }

    #[test]
    fn an_unknown_default_compression_is_refused() {
        let mut sb = sample();
        sb.compression = 0x7f;
        assert!(Superblock::decode(&sb.encode()).is_err());
    }

    #[test]
    fn a_key_area_comes_with_the_encryption_flag_before_the_journal() {
        let mut sb = sample();
        sb.journal_start = 4;
        sb.data_start = 1028;
        assert!(Superblock::decode(&sb.encode()).is_ok());
        sb.key_area = 2;
        assert!(Superblock::decode(&sb.encode()).is_err());
        sb.flags |= Superblock::FLAG_ENCRYPTED;
        assert!(Superblock::decode(&sb.encode()).unwrap().is_encrypted());
        sb.key_area = 3;
        assert!(Superblock::decode(&sb.encode()).is_err());
        sb.key_area = 0;
        assert!(Superblock::decode(&sb.encode()).is_err());
    }

    #[test]
    fn zeroes_and_short_input_are_errors() {
        assert!(Superblock::decode(&[0u8; 4096]).is_err());
        assert!(Superblock::decode(&[0u8; 10]).is_err());
    }
}
