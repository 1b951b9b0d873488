//! Making a new filesystem.

use std::sync::Arc;

use gpufs_format::{
    Compression, FileKind, InodeRecord, Superblock, BLOCK_SIZE, FORMAT_VERSION, MAX_RECORD_SIZE,
    MIN_RECORD_SIZE, SUPERBLOCK_MAGIC,
};

use super::Volume;
use gpufs_format::keyslot::{KeyTable, KEY_AREA_BLOCKS};

use crate::alloc::Allocator;
use crate::crypt::area::write_key_table;
use crate::crypt::keys::make_slot;
use crate::crypt::{KdfParams, Passphrase, SealKeys, VolumeKey};
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::journal::{Journal, Replay};
use crate::namespace::Namespace;
use crate::time::now_ns;
use crate::units::Ino;

#[derive(Clone, Debug)]
pub struct MkfsOptions {
    /// Bytes per file record (power of two, 4 KiB ..= 1 MiB).
    pub record_size: u32,
    /// Journal ring size in blocks; `None` picks 1/64 of the device, 1..=256 MiB.
    pub journal_blocks: Option<u64>,
    /// Owner of the root directory.
    pub uid: u32,
    pub gid: u32,
    pub uuid: [u8; 16],
    /// How new records are compressed unless a directory's property says otherwise.
    pub compression: Compression,
    /// New records are deduplicated unless a directory's property says otherwise.
    pub dedup: bool,
    /// Encrypt everything, the volume key wrapped in a first key slot for this key.
    pub encrypt: Option<NewKey>,
}

/// The key a new key slot opens with, and how hard it is to derive.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub passphrase: Passphrase,
    pub kdf: KdfParams,
}

impl Default for MkfsOptions {
    fn default() -> Self {
        MkfsOptions {
            record_size: 64 * 1024,
            journal_blocks: None,
            uid: 0,
            gid: 0,
            uuid: [0; 16],
            compression: Compression::MKFS_DEFAULT,
            dedup: false,
            encrypt: None,
        }
    }
}

/// Smallest device mkfs accepts.
pub const MIN_DEVICE_BYTES: u64 = 4 << 20;

/// Writes a new, empty filesystem onto `dev`. The caller checks for existing
/// signatures first.
pub fn mkfs(dev: Arc<dyn Device>, opts: &MkfsOptions) -> FsResult<Superblock> {
    let rs = opts.record_size;
    if !rs.is_power_of_two() || !(MIN_RECORD_SIZE..=MAX_RECORD_SIZE).contains(&rs) {
        return Err(FsError::Invalid(
            "record size must be a power of two from 4K to 1M",
        ));
    }
    let len = dev.len()?;
    if len < MIN_DEVICE_BYTES {
        return Err(FsError::Invalid(
            "device too small: gpufs needs at least 4 MiB",
        ));
    }
    let now = now_ns();
    let sb = new_superblock(opts, len / BLOCK_SIZE as u64, now);
    // Wipe old signatures, the key area and the first journal block before anything
    // points at them.
    let zero = vec![0u8; BLOCK_SIZE * (sb.journal_start as usize + 1)];
    dev.write_at(&zero, 0)?;
    let keys = match &opts.encrypt {
        Some(new) => {
            let volume_key = VolumeKey::random()?;
            let mut table = KeyTable::new(sb.uuid);
            table.slots[0] = make_slot(&volume_key, &new.passphrase, new.kdf, &sb.uuid, now)?;
            table.generation = 1;
            write_key_table(dev.as_ref(), &sb, &table)?;
            Some(Arc::new(SealKeys::new(&volume_key)))
        }
        None => None,
    };
    let replay = Replay {
        transactions: Vec::new(),
        end_index: 0,
        end_seq: sb.journal_seq,
        used: 0,
        saw_blocks: false,
        repaired: Vec::new(),
    };
    let alloc = Allocator::new(sb.allocatable_blocks());
    let mut journal = Journal::new(&sb, &replay);
    journal.set_keys(keys.clone());
    let mut vol = Volume::assemble(dev, sb, Namespace::empty(), alloc, journal, false);
    vol.keys = keys;
    vol.ensure_journal_copy()?;
    vol.put_inode(Ino::ROOT, root_directory(opts, now))?;
    vol.close()?;
    Ok(*vol.superblock())
}

/// The superblock of a new filesystem of `total_blocks` (generation 0, no checkpoint
/// yet): the layout, and the journal's first sequence number, taken from the uuid.
fn new_superblock(opts: &MkfsOptions, total_blocks: u64, now: i64) -> Superblock {
    let journal_blocks = opts
        .journal_blocks
        .unwrap_or((total_blocks / 64).clamp(256, 65536))
        .clamp(16, total_blocks / 4);
    // An encrypted image keeps its key slots between the superblocks and the journal.
    let (journal_start, key_area) = match opts.encrypt {
        Some(_) => (2 + KEY_AREA_BLOCKS, 2),
        None => (2, 0),
    };
    let u = opts.uuid;
    let seq0 = u64::from_le_bytes([u[0], u[1], u[2], u[3], u[4], u[5], 0, 0]) + 1;
    Superblock {
        magic: SUPERBLOCK_MAGIC,
        version: FORMAT_VERSION,
        block_size: BLOCK_SIZE as u32,
        record_size: opts.record_size,
        flags: if opts.dedup {
            Superblock::FLAG_DEDUP
        } else {
            0
        } | if key_area != 0 {
            Superblock::FLAG_ENCRYPTED
        } else {
            0
        },
        total_blocks,
        generation: 0,
        uuid: opts.uuid,
        journal_start,
        journal_blocks,
        journal_head: 0,
        journal_seq: seq0,
        checkpoint_root: 0,
        data_start: journal_start + journal_blocks,
        used_blocks: 0,
        inode_count: 0,
        created_ns: now,
        checkpoint_ns: now,
        compression: opts.compression.encode(),
        reserved_a: 0,
        checkpoint_root_copy: 0,
        journal_copy_start: 0,
        far_slot: 0,
        scrub_cursor: 0,
        in_use: gpufs_format::superblock::InUse::NOBODY,
        key_area,
        checksum: 0,
    }
}

/// The root directory's inode: mode 0755, owned as `opts` says.
fn root_directory(opts: &MkfsOptions, now: i64) -> InodeRecord {
    InodeRecord {
        mode: FileKind::Directory.mode_bits() | 0o755,
        uid: opts.uid,
        gid: opts.gid,
        nlink: 2,
        size: 0,
        atime_ns: now,
        mtime_ns: now,
        ctime_ns: now,
        rdev: 0,
        generation: 0,
        flags: 0,
        prealloc_blocks: 0,
    }
}
