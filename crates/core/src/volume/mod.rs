//! A mounted image: superblock, namespace, allocator and journal, with the commit and
//! checkpoint protocol that makes changes durable.
//!
//! Durability order, on every commit: data blocks written so far are flushed, then the
//! journal transaction is written and flushed. Checkpoints write the whole namespace
//! copy-on-write to free blocks, flush, then write the two superblock slots one after the
//! other with a flush after each, so a torn write can damage at most one slot.

mod checkpoint;
mod mkfs;
mod open;
mod records;

use std::sync::Arc;

use gpufs_format::{JournalOp, Superblock, BLOCK_SIZE};

use crate::alloc::Allocator;
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::journal::Journal;
use crate::namespace::{Namespace, SpaceChange};

pub use mkfs::{mkfs, MkfsOptions};
pub use open::OpenOptions;
pub use records::RecordCache;

/// Bytes of verified records kept in memory.
const RECORD_CACHE_BYTES: usize = 64 << 20;

/// Counters for `stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct VolumeCounters {
    pub commits: u64,
    pub checkpoints: u64,
    pub journal_ops: u64,
    pub replayed_transactions: u64,
}

pub struct Volume {
    dev: Arc<dyn Device>,
    sb: Superblock,
    pub ns: Namespace,
    pub alloc: Allocator,
    journal: Journal,
    /// Block runs (relative to the data area) of the current checkpoint, root included.
    ckpt_runs: Vec<(u64, u64)>,
    read_only: bool,
    /// Messages for the person mounting (a damaged superblock slot, a replayed journal).
    pub notes: Vec<String>,
    pub counters: VolumeCounters,
    cache: RecordCache,
    /// The superblock on disk says clean: no journal block of its generation exists.
    /// The first commit after it marks the superblock dirty before writing the journal.
    clean_on_disk: bool,
    /// Ops applied since the last checkpoint.
    changed: bool,
    /// Set when a superblock write failed part way: memory and disk may disagree about
    /// the generation, so nothing more may be made durable. A remount recovers.
    failed: Option<String>,
}

impl Volume {
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    pub fn device(&self) -> &Arc<dyn Device> {
        &self.dev
    }

    pub fn record_size(&self) -> u32 {
        self.sb.record_size
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Commit generation new records are born in.
    pub fn generation(&self) -> u64 {
        self.sb.generation + 1
    }

    /// Runs of the current checkpoint, relative to the data area.
    pub fn checkpoint_runs(&self) -> &[(u64, u64)] {
        &self.ckpt_runs
    }

    /// Applies `op` to the namespace and queues it in the journal. Space it frees is
    /// held back until the commit that records the free is durable.
    pub fn apply(&mut self, op: JournalOp) -> FsResult<()> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        self.check_failed()?;
        self.changed = true;
        let mut space = Vec::new();
        self.ns.apply(&op, &mut space)?;
        for change in space {
            if let SpaceChange::Free { block, count } = change {
                let rel = self.relative(block, count)?;
                self.cache.invalidate(block);
                self.alloc.defer_free(rel, count);
            }
        }
        self.journal.push(&op);
        self.counters.journal_ops += 1;
        Ok(())
    }

    /// Applies a replayed op: space changes take effect at once.
    fn apply_replayed(&mut self, op: &JournalOp) -> FsResult<()> {
        let mut space = Vec::new();
        self.ns.apply(op, &mut space)?;
        for change in space {
            match change {
                SpaceChange::Claim { block, count } => {
                    let rel = self.relative(block, count)?;
                    self.alloc.claim(rel, count)?;
                }
                SpaceChange::Free { block, count } => {
                    let rel = self.relative(block, count)?;
                    self.cache.invalidate(block);
                    self.alloc.free_now(rel, count)?;
                }
            }
        }
        Ok(())
    }

    /// Converts an absolute device block run to the allocator's numbering.
    pub fn relative(&self, block: u64, count: u64) -> FsResult<u64> {
        let rel = block
            .checked_sub(self.sb.data_start)
            .filter(|r| r.saturating_add(count) <= self.alloc.total())
            .ok_or_else(|| {
                FsError::corrupt(format!("block run {block}+{count} outside the data area"))
            })?;
        Ok(rel)
    }

    /// Allocates `count` contiguous blocks for data; returns the absolute first block.
    /// Keeps back the room the next checkpoint needs. Never commits: this runs in the
    /// middle of an operation, and a commit here would make half of it durable. Operations
    /// call [`Volume::make_room`] before they change anything instead.
    pub fn alloc_data(&mut self, count: u64) -> FsResult<u64> {
        if self.alloc.free() < count + self.checkpoint_reserve() {
            return Err(FsError::NoSpace);
        }
        let rel = self.alloc.alloc(count).ok_or(FsError::NoSpace)?;
        Ok(self.sb.data_start + rel)
    }

    /// Called at the start of an operation that may allocate up to `blocks` data blocks,
    /// in runs of up to `run`: commits, so that deferred frees return to the pool, when
    /// the space or a run that long is missing without them. Never fails for lack of
    /// space; the allocations themselves do.
    pub fn make_room(&mut self, blocks: u64, run: u64) -> FsResult<()> {
        if self.alloc.pending_blocks() == 0 {
            return Ok(());
        }
        let short = self.alloc.free() < blocks.saturating_add(self.checkpoint_reserve());
        if short || !self.alloc.has_run(run) {
            self.commit()?;
        }
        Ok(())
    }

    /// Fails with ENOSPC unless `blocks` more can be used while leaving room for the
    /// next checkpoint. May commit: call it before the operation changes anything.
    pub fn ensure_space(&mut self, blocks: u64) -> FsResult<()> {
        let need = blocks + self.checkpoint_reserve();
        if self.alloc.free() >= need {
            return Ok(());
        }
        if self.alloc.pending_blocks() > 0 {
            self.commit()?;
            if self.alloc.free() >= need {
                return Ok(());
            }
        }
        Err(FsError::NoSpace)
    }

    /// Frees a run allocated for data that no op refers to (a failed write).
    pub fn unalloc_data(&mut self, block: u64, count: u64) {
        if let Ok(rel) = self.relative(block, count) {
            let _ = self.alloc.free_now(rel, count);
        }
    }

    /// Writes `bytes` (a whole number of blocks) at absolute `block`.
    pub fn write_blocks(&self, block: u64, bytes: &[u8]) -> FsResult<()> {
        debug_assert_eq!(bytes.len() % BLOCK_SIZE, 0);
        self.dev.write_at(bytes, block * BLOCK_SIZE as u64)?;
        Ok(())
    }

    /// Reads `buf.len()` bytes from absolute `block`.
    pub fn read_blocks(&self, block: u64, buf: &mut [u8]) -> FsResult<()> {
        self.dev.read_at(buf, block * BLOCK_SIZE as u64)?;
        Ok(())
    }

    /// Makes every change so far durable (group commit). Data first, then the journal.
    pub fn commit(&mut self) -> FsResult<()> {
        if self.read_only || !self.journal.has_pending() {
            return Ok(());
        }
        self.check_failed()?;
        if !self.journal.fits_pending() {
            return self.checkpoint();
        }
        if self.clean_on_disk {
            let sb = Superblock {
                flags: self.sb.flags & !Superblock::FLAG_CLEAN,
                ..self.sb
            };
            self.store_superblocks(sb)?;
            self.clean_on_disk = false;
        }
        self.dev.flush()?;
        self.journal.write_pending(self.dev.as_ref())?;
        self.dev.flush()?;
        self.alloc.release_pending()?;
        self.counters.commits += 1;
        if self.journal.used() * 2 >= self.journal.capacity() {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// True when ops are waiting for a commit.
    pub fn has_uncommitted(&self) -> bool {
        self.journal.has_pending()
    }

    /// Bytes of ops waiting for a commit.
    pub fn uncommitted_bytes(&self) -> usize {
        self.journal.pending_bytes()
    }

    /// Blocks the next checkpoint may need, kept free for it.
    pub fn checkpoint_reserve(&self) -> u64 {
        let ns = &self.ns;
        let bytes = 64
            + ns.inode_slots() as u64 * 64
            + ns.dirent_estimate() as u64 * 32
            + ns.name_estimate() as u64
            + ns.extent_entries() * 80
            + ns.xattr_bytes()
            + self.alloc.total().div_ceil(8);
        // The blob, its root, and slack for what the next few ops add.
        bytes.div_ceil(BLOCK_SIZE as u64) + 64
    }

    /// Flushes everything and writes a checkpoint marked clean (unmount). Does nothing
    /// when the image is already clean and unchanged.
    pub fn close(&mut self) -> FsResult<()> {
        if self.read_only || (self.clean_on_disk && !self.changed) {
            return Ok(());
        }
        self.check_failed()?;
        self.write_checkpoint_marked(true)
    }

    /// Fails with EIO once a superblock write has failed.
    fn check_failed(&self) -> FsResult<()> {
        match &self.failed {
            Some(why) => Err(FsError::corrupt(format!(
                "the filesystem stopped writing after a device error ({why}); remount it"
            ))),
            None => Ok(()),
        }
    }

    /// Writes both superblock slots with `sb` and makes it current. A failure part way
    /// leaves the two slots and memory possibly disagreeing, so the volume stops writing.
    fn store_superblocks(&mut self, sb: Superblock) -> FsResult<()> {
        if let Err(e) = checkpoint::write_superblocks(self.dev.as_ref(), &sb) {
            tracing::error!("superblock write failed: {e}; no further writes until remount");
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.sb = sb;
        Ok(())
    }
}
