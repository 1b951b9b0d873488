//! The POSIX API: what the FUSE adapter and the tests call. One lock guards the volume;
//! every method validates its input, builds journal ops, and applies them.

mod acl;
mod attrs;
mod background;
mod clone;
mod data;
mod dedup;
mod diff;
mod flags;
mod names;
mod props;
mod receive;
mod scrub;
mod search;
mod search_text;
mod send;
mod snapshot_view;
mod snapshots;
mod stream;

use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use gpufs_format::{FileKind, InodeRecord, BLOCK_SIZE, NAME_MAX};
use parking_lot::Mutex;

use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::time::now_ns;
use crate::units::Ino;
use crate::volume::{OpenOptions, Volume, VolumeCounters};

pub use attrs::{SetAttr, StatFs, TimeSet};
pub use clone::CopyOutcome;
pub use data::{FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE};
pub use dedup::{DedupProgress, DedupReport};
pub use diff::Change;
pub use flags::{FS_APPEND_FL, FS_IMMUTABLE_FL};
pub use names::RenameMode;
pub use props::{PropertyValue, PROPERTY_NAMES};
pub use receive::{ReceiveError, ReceiveSummary};
pub use scrub::{DamagedFile, ScrubProgress, ScrubReport};
pub use search::{DuEntry, DuRows, SearchQuery, SearchResults};
pub use send::SendSummary;
pub use snapshot_view::SnapshotView;
pub use stream::{StreamError, StreamReader, StreamWriter};

/// Largest file size (16 TiB, as ext4 with 4 KiB blocks).
pub const MAX_FILE_SIZE: u64 = 1 << 44;
/// Most hard links one inode may have.
pub const LINK_MAX: u32 = 65_000;
/// Uncommitted journal bytes that trigger a commit without waiting for the timer.
const COMMIT_BYTES: usize = 8 << 20;

/// Who is asking: the credentials of the calling process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// The process's umask, applied to a node it creates where no default ACL is
    /// inherited (the mount asks the kernel to leave that to the filesystem).
    pub umask: u32,
}

impl Caller {
    pub const ROOT: Caller = Caller {
        uid: 0,
        gid: 0,
        umask: 0,
    };
}

/// Attributes of one inode, as `stat` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub generation: u32,
    pub kind: FileKind,
    /// Permission bits with set-id and sticky bits (`mode & 0o7777`).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub size: u64,
    /// 512-byte units allocated.
    pub blocks: u64,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub blksize: u32,
}

/// One entry handed to a readdir callback.
pub struct DirEntry<'a> {
    /// Offset to resume after this entry.
    pub cookie: u64,
    pub ino: u64,
    pub kind: FileKind,
    pub name: &'a [u8],
}

/// The attributes of inode `ino` whose records take `stored` blocks.
pub(crate) fn attr_of(ino: u64, rec: &InodeRecord, stored: u64, blksize: u32) -> Attr {
    let blocks = if rec.kind() == Some(FileKind::Symlink) {
        0
    } else {
        stored * (BLOCK_SIZE as u64 / 512)
    };
    Attr {
        ino,
        generation: rec.generation,
        kind: rec.kind().unwrap_or(FileKind::Regular),
        perm: (rec.mode & 0o7777) as u16,
        nlink: rec.nlink,
        uid: rec.uid,
        gid: rec.gid,
        rdev: rec.rdev,
        size: rec.size,
        blocks,
        atime_ns: rec.atime_ns,
        mtime_ns: rec.mtime_ns,
        ctime_ns: rec.ctime_ns,
        blksize,
    }
}

/// Hands `emit` "." (cookie 1) and ".." (2) of directory `dir` whose parent is
/// `parent`, those after `offset`; true when `emit` said its buffer is full.
pub(crate) fn emit_dots(
    dir: u64,
    parent: u64,
    offset: u64,
    emit: &mut impl FnMut(DirEntry<'_>) -> FsResult<bool>,
) -> FsResult<bool> {
    for (cookie, ino, name) in [(1, dir, &b"."[..]), (2, parent, &b".."[..])] {
        let entry = DirEntry {
            cookie,
            ino,
            kind: FileKind::Directory,
            name,
        };
        if offset < cookie && emit(entry)? {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) struct Inner {
    pub(crate) vol: Volume,
    /// Open handles per inode: an unlinked file lives until its last close.
    pub(crate) open: HashMap<Ino, u32>,
    pub(crate) last_commit: Instant,
    /// When reads move access times.
    pub(crate) atime: crate::volume::AtimeMode,
    /// Snapshots loaded for reading, most recent last.
    pub(crate) views: Vec<Arc<SnapshotView>>,
}

/// A mounted gpufs filesystem.
pub struct Filesystem {
    inner: Mutex<Inner>,
    /// Wakes the thread that prepares dirty records off the lock, once started.
    preparer: OnceLock<SyncSender<()>>,
}

impl Filesystem {
    /// Opens (and if needed recovers) the filesystem on `dev`.
    pub fn mount(dev: Arc<dyn Device>, opts: OpenOptions) -> FsResult<Filesystem> {
        Self::mount_with_keys(dev, opts, None)
    }

    /// [`Filesystem::mount`] of an image that may be encrypted (`keys`: its keys, from
    /// [`crate::crypt::unlock`]).
    pub fn mount_with_keys(
        dev: Arc<dyn Device>,
        opts: OpenOptions,
        keys: Option<Arc<crate::crypt::SealKeys>>,
    ) -> FsResult<Filesystem> {
        let vol = Volume::open_with_keys(dev, opts, keys)?;
        Ok(Filesystem {
            inner: Mutex::new(Inner {
                vol,
                open: HashMap::new(),
                last_commit: Instant::now(),
                atime: opts.atime,
                views: Vec::new(),
            }),
            preparer: OnceLock::new(),
        })
    }

    /// Lets the write path send batches of records to `compute` (the mount's compute
    /// layer, opened at the first batch large enough for the GPU).
    pub fn set_compute(&self, compute: Arc<gpufs_compute::LazyCompute>) {
        self.inner.lock().vol.set_compute(compute);
    }

    /// Messages from mounting (damaged superblock slot, journal replayed, ...).
    pub fn notes(&self) -> Vec<String> {
        self.inner.lock().vol.notes().to_vec()
    }

    pub fn is_read_only(&self) -> bool {
        self.inner.lock().vol.is_read_only()
    }

    /// Makes every change so far durable.
    pub fn sync(&self) -> FsResult<()> {
        let mut g = self.inner.lock();
        g.vol.commit()?;
        g.last_commit = Instant::now();
        Ok(())
    }

    /// Checkpoints and leaves nothing to replay (clean unmount).
    pub fn close(&self) -> FsResult<()> {
        self.inner.lock().vol.close()
    }

    /// Counters for `gpufs stats`.
    pub fn counters(&self) -> VolumeCounters {
        self.inner.lock().vol.counters()
    }

    /// Entries of the inline dedup table and the bytes of memory it holds.
    pub fn dedup_table(&self) -> (usize, usize) {
        let g = self.inner.lock();
        (g.vol.dedup_entries(), g.vol.dedup_memory_bytes())
    }

    /// Approximate bytes of memory the namespace holds.
    pub fn namespace_bytes(&self) -> usize {
        self.inner.lock().vol.namespace().heap_bytes()
    }

    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }
}

impl Inner {
    pub(crate) fn inode(&self, ino: Ino) -> FsResult<InodeRecord> {
        self.vol.inode(ino).copied().ok_or(FsError::NotFound)
    }

    pub(crate) fn dir_inode(&self, ino: Ino) -> FsResult<InodeRecord> {
        let rec = self.inode(ino)?;
        if rec.kind() != Some(FileKind::Directory) {
            return Err(FsError::NotDir);
        }
        Ok(rec)
    }

    pub(crate) fn put(&mut self, ino: Ino, rec: InodeRecord) -> FsResult<()> {
        self.vol.put_inode(ino, rec)
    }

    pub(crate) fn attr(&self, ino: Ino, rec: &InodeRecord) -> Attr {
        let stored: u64 = self
            .vol
            .records(ino)
            .iter()
            .map(|(_, p)| p.total_blocks())
            .sum::<u64>()
            + self.vol.dirty_blocks_of(ino);
        attr_of(u64::from(ino), rec, stored, self.vol.record_size())
    }

    /// Sets mtime and ctime of a directory whose entries changed.
    pub(crate) fn touch_dir(&mut self, dir: Ino, now: i64, nlink_delta: i32) -> FsResult<()> {
        let mut rec = self.inode(dir)?;
        rec.mtime_ns = now;
        rec.ctime_ns = now;
        rec.nlink = rec.nlink.saturating_add_signed(nlink_delta);
        self.put(dir, rec)
    }

    /// Sets the ctime of `ino` (its attributes or links changed).
    pub(crate) fn touch_ctime(&mut self, ino: Ino, now: i64) -> FsResult<()> {
        let rec = InodeRecord {
            ctime_ns: now,
            ..self.inode(ino)?
        };
        self.put(ino, rec)
    }

    /// Commits early once enough ops are waiting (group commit by size).
    pub(crate) fn maybe_commit(&mut self) -> FsResult<()> {
        if self.vol.uncommitted_bytes() >= COMMIT_BYTES {
            self.vol.commit()?;
            self.last_commit = Instant::now();
        }
        Ok(())
    }

    pub(crate) fn writable(&self) -> FsResult<()> {
        if self.vol.is_read_only() {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }
}

/// Validates one path component.
pub(crate) fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(FsError::Invalid("bad file name"));
    }
    Ok(())
}

pub(crate) fn now() -> i64 {
    now_ns()
}

#[cfg(test)]
mod tests;
