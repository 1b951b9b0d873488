//! A mounted image: superblock, namespace, allocator and journal, with the commit and
//! checkpoint protocol that makes changes durable.
//!
//! Durability order, on every commit: data blocks written so far are flushed, then the
//! journal transaction is written and flushed. Checkpoints write the whole namespace
//! copy-on-write to free blocks, flush, then write the two superblock slots one after the
//! other with a flush after each, so a torn write can damage at most one slot.
//!
//! The namespace, the allocator, the journal and the record cache are private: the file
//! system layer reads the namespace through [`Volume::namespace`] and changes it only
//! through the operations of `ops.rs` and `area.rs`, each of which applies one journal
//! op and keeps the four in step (space freed is deferred until the commit that records
//! the free, and dropped from the record cache).

mod area;
mod checkpoint;
mod checkpoint_load;
mod dedup;
mod mkfs;
mod open;
mod ops;
mod pages;
mod prealloc;
mod prepare;
mod scrub;
mod segments;
pub use segments::SegmentIds;
mod snapshots;
mod writeback;

use std::sync::Arc;

use gpufs_compute::LazyCompute;
use gpufs_format::segments::SEGMENT_SLOTS;
use gpufs_format::superblock::InUse;
use gpufs_format::{JournalOp, Superblock, BLOCK_SIZE};

use crate::alloc::Allocator;
use crate::crypt::SealKeys;
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::journal::Journal;
use crate::namespace::{Namespace, SpaceChange};
use crate::records::{RecordCache, RecordGeometry};
use crate::units::BlockNo;

pub use area::{PendingRead, RecordLookup};
pub use checkpoint_load::{read_checkpoint, verify_checkpoint_copies};
pub use dedup::DedupCounters;
pub use mkfs::{mkfs, MkfsOptions, NewKey};
pub use open::{pick_superblock, refuse_if_held_elsewhere, AtimeMode, OpenOptions};
pub use scrub::MetadataScrub;
pub(crate) use snapshots::bit;
pub use snapshots::SnapshotInfo;

/// Bytes of verified records kept in memory.
const RECORD_CACHE_BYTES: usize = 64 << 20;

/// Counters for `stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct VolumeCounters {
    pub commits: u64,
    pub checkpoints: u64,
    /// Checkpoint pages written, and pages a checkpoint named where an earlier one had
    /// written them (both copies counted).
    pub checkpoint_pages_written: u64,
    pub checkpoint_pages_kept: u64,
    /// Pages of page tables checkpoints wrote (both copies): those holding changed
    /// entries.
    pub checkpoint_table_pages_written: u64,
    /// Namespace segments checkpoints encoded (they changed, or their pages were not
    /// known), and segments they named by the pages they already had.
    pub checkpoint_segments_encoded: u64,
    pub checkpoint_segments_kept: u64,
    pub journal_ops: u64,
    pub replayed_transactions: u64,
    /// Damaged copies of records rewritten from a good copy (reads and scrub).
    pub healed_copies: u64,
    /// What the write pipeline did with the records written since mount.
    pub records: crate::records::RecordCounters,
    /// What inline dedup found since mount.
    pub dedup: dedup::DedupCounters,
}

pub struct Volume {
    dev: Arc<dyn Device>,
    sb: Superblock,
    ns: Namespace,
    alloc: Allocator,
    journal: Journal,
    /// Block runs (relative to the data area) of the current checkpoint, root included.
    ckpt_runs: Vec<(u64, u64)>,
    /// The pages each copy of the current checkpoint holds: the next checkpoint names
    /// those it would write again where they lie.
    ckpt_pages: [pages::PageSet; 2],
    /// The pages of each namespace segment of the current checkpoint, named again by the
    /// next one where the segment did not change.
    segment_pages: segments::SegmentPages,
    /// Snapshots and the space they hold.
    snaps: snapshots::Snapshots,
    read_only: bool,
    /// Messages for the person mounting (a damaged superblock slot, a replayed journal).
    notes: Vec<String>,
    counters: VolumeCounters,
    cache: RecordCache,
    /// Records written but not yet placed (the write-back cache).
    dirty: writeback::DirtyRecords,
    /// Bound of the write-back cache in bytes; 0 writes every record through.
    write_cache_bytes: usize,
    /// The superblock on disk says clean: no journal block of its generation exists.
    /// The first commit after it marks the superblock dirty before writing the journal.
    clean_on_disk: bool,
    /// Ops applied since the last checkpoint.
    changed: bool,
    /// Set when a superblock write failed part way: memory and disk may disagree about
    /// the generation, so nothing more may be made durable. A remount recovers.
    failed: Option<String>,
    /// The mount's compute layer, for batches of records large enough for the GPU
    /// (`None`: every record is prepared on the CPU cores).
    compute: Option<Arc<LazyCompute>>,
    /// The far superblock slot holds the current superblock (false while a slot given by
    /// [`Volume::ensure_far_slot`] waits for the next superblock write).
    far_on_disk: bool,
    /// Where each record written with a hash was seen (inline dedup).
    dedup: dedup::DedupTable,
    /// While set, nothing is made durable by a commit (a receive: its changes become
    /// durable together, by the checkpoint that records its snapshot, or not at all).
    commits_held: bool,
    /// The keys of an encrypted volume: records, checkpoint pages and journal blocks are
    /// sealed under them.
    keys: Option<Arc<SealKeys>>,
}

impl Volume {
    /// A volume over `dev` as `sb` describes it, holding `ns` and `alloc`, its journal
    /// positioned by `journal`.
    fn assemble(
        dev: Arc<dyn Device>,
        sb: Superblock,
        ns: Namespace,
        alloc: Allocator,
        journal: Journal,
        read_only: bool,
    ) -> Volume {
        debug_assert_eq!(alloc.total(), sb.allocatable_blocks());
        Volume {
            journal,
            dev,
            sb,
            ns,
            alloc,
            ckpt_runs: Vec::new(),
            ckpt_pages: Default::default(),
            segment_pages: Default::default(),
            snaps: snapshots::Snapshots::default(),
            read_only,
            notes: Vec::new(),
            counters: VolumeCounters::default(),
            cache: RecordCache::new(RECORD_CACHE_BYTES),
            dirty: writeback::DirtyRecords::default(),
            write_cache_bytes: 0,
            clean_on_disk: sb.flags & Superblock::FLAG_CLEAN != 0,
            changed: false,
            failed: None,
            compute: None,
            far_on_disk: sb.far_slot != 0,
            dedup: dedup::DedupTable::default(),
            commits_held: false,
            keys: None,
        }
    }

    /// The block an interrupted scrub resumes from (0: from the start), as the image
    /// last recorded it.
    pub fn scrub_cursor(&self) -> u64 {
        self.sb.scrub_cursor
    }

    /// Records where an interrupted scrub resumes: it reaches the image with the next
    /// superblock written (the next checkpoint, at the latest the unmount's); a
    /// read-only mount keeps it in memory.
    pub fn set_scrub_cursor(&mut self, block: u64) {
        if self.sb.scrub_cursor != block {
            self.sb.scrub_cursor = block;
            self.changed |= !self.read_only;
        }
    }

    /// Records the inline dedup table knows.
    pub fn dedup_entries(&self) -> usize {
        self.dedup.len()
    }

    /// Bytes of memory the inline dedup table holds.
    pub fn dedup_memory_bytes(&self) -> usize {
        self.dedup.memory_bytes()
    }

    /// Lets batches of records large enough for the GPU go to `compute`, whose dispatch
    /// policy picks the backend.
    pub fn set_compute(&mut self, compute: Arc<LazyCompute>) {
        self.compute = Some(compute);
    }

    /// The keys of an encrypted volume (`None`: not encrypted).
    pub fn keys(&self) -> Option<&Arc<SealKeys>> {
        self.keys.as_ref()
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// How file bytes fall into records on this volume.
    pub fn geometry(&self) -> RecordGeometry {
        RecordGeometry::new(self.sb.record_size)
    }

    pub fn record_size(&self) -> u32 {
        self.sb.record_size
    }

    /// Messages from mounting (a damaged superblock slot, a replayed journal, ...).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn counters(&self) -> VolumeCounters {
        self.counters
    }

    /// The allocator, to compare against what the namespace refers to (fsck).
    pub fn allocator(&self) -> &Allocator {
        &self.alloc
    }

    /// Blocks of the data area.
    pub fn data_blocks(&self) -> u64 {
        self.alloc.total()
    }

    /// Blocks files may still take: free now or after the next commit, less the room
    /// kept for the next checkpoint.
    pub fn available_blocks(&self) -> u64 {
        (self.alloc.free() + self.alloc.pending_blocks()).saturating_sub(self.write_reserve())
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Commit generation new records are born in.
    pub fn generation(&self) -> u64 {
        self.sb.generation + 1
    }

    /// Runs of the current checkpoint (both copies, roots included), relative to the
    /// data area.
    pub fn checkpoint_runs(&self) -> &[(u64, u64)] {
        &self.ckpt_runs
    }

    /// The run of the journal's second copy, relative to the data area, if there is one.
    pub fn journal_copy_run(&self) -> Option<(u64, u64)> {
        (self.sb.journal_copy_start != 0).then(|| {
            (
                self.sb.journal_copy_start - self.sb.data_start,
                self.sb.journal_blocks,
            )
        })
    }

    /// The far superblock slot (the image's last block), relative to the data area, if
    /// the image has one.
    pub fn far_slot_run(&self) -> Option<(u64, u64)> {
        (self.sb.far_slot != 0).then(|| (self.sb.far_slot - self.sb.data_start, 1))
    }

    /// Metadata that lives in the data area at fixed places, outside the checkpoint's
    /// bitmap: the journal's second copy and the far superblock slot.
    pub fn fixed_metadata_runs(&self) -> Vec<(u64, u64)> {
        self.journal_copy_run()
            .into_iter()
            .chain(self.far_slot_run())
            .collect()
    }

    /// Blocks [`Volume::fixed_metadata_runs`] take.
    fn fixed_metadata_blocks(&self) -> u64 {
        self.fixed_metadata_runs().iter().map(|r| r.1).sum()
    }

    /// Gives an image without a far superblock slot (made by an older build, or never
    /// mounted) one at its last block when that block is free: from the next superblock
    /// write on, the superblock exists three times, two of them at opposite ends of the
    /// image. Until that write the block is free space on disk.
    pub(super) fn ensure_far_slot(&mut self) -> FsResult<()> {
        if self.read_only || self.sb.far_slot != 0 {
            return Ok(());
        }
        let last = self.alloc.total() - 1;
        if self.alloc.is_used(last) {
            self.notes.push(
                "the image's last block holds data: the superblock keeps its two slots at \
                 the start only"
                    .into(),
            );
            return Ok(());
        }
        self.alloc.claim(last, 1)?;
        self.sb.far_slot = self.sb.data_start + last;
        debug_assert_eq!(self.sb.far_slot + 1, self.sb.total_blocks);
        self.sb.used_blocks += 1;
        Ok(())
    }

    /// Gives an image without a second journal copy (made by a version 1 build) one, in
    /// the middle of the data area where free space allows: from the next commit on every
    /// journal block is written twice. It becomes part of the image with the next
    /// superblock written; until then it is free space on disk, and a crash loses
    /// nothing.
    pub(super) fn ensure_journal_copy(&mut self) -> FsResult<()> {
        if self.read_only || self.sb.journal_copy_start != 0 {
            return Ok(());
        }
        let n = self.sb.journal_blocks;
        let cursor = self.alloc.cursor();
        self.alloc.set_cursor(self.alloc.total() / 2);
        let found = self.alloc.alloc(n);
        self.alloc.set_cursor(cursor);
        let Some(rel) = found else {
            self.notes.push(format!(
                "no run of {n} free blocks for the journal's second copy: the journal stays \
                 single"
            ));
            return Ok(());
        };
        self.sb.journal_copy_start = self.sb.data_start + rel;
        self.sb.used_blocks += n;
        self.journal.set_copy(self.sb.journal_copy_start);
        Ok(())
    }

    /// Applies `op` to the namespace and queues it in the journal. Space it frees is
    /// held back until the commit that records the free is durable. Every change of the
    /// namespace, live or at mount, passes here or through [`Volume::apply_replayed`].
    fn apply(&mut self, op: JournalOp) -> FsResult<()> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        self.check_failed()?;
        self.changed = true;
        let mut space = Vec::new();
        self.ns.apply(&op, &mut space)?;
        for change in space {
            if let SpaceChange::Free { block, count } = change {
                let rel = self.relative(BlockNo::new(block), count)?;
                self.cache.invalidate(BlockNo::new(block));
                for (s, n, held) in self.snaps.split_free(rel, count) {
                    if held {
                        self.snaps.hold(s, n);
                    } else {
                        self.alloc.defer_free(s, n);
                    }
                }
            }
        }
        // While commits are held the checkpoint that ends the hold records everything:
        // nothing is queued (a receive of millions of ops keeps none in memory).
        if !self.commits_held {
            self.journal.push(&op);
        }
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
                    let rel = self.relative(BlockNo::new(block), count)?;
                    self.alloc.claim(rel, count)?;
                }
                SpaceChange::Free { block, count } => {
                    let rel = self.relative(BlockNo::new(block), count)?;
                    self.cache.invalidate(BlockNo::new(block));
                    for (s, n, held) in self.snaps.split_free(rel, count) {
                        if held {
                            self.snaps.hold(s, n);
                        } else {
                            self.alloc.free_now(s, n)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Converts an absolute device block run to the allocator's numbering.
    pub fn relative(&self, block: BlockNo, count: u64) -> FsResult<u64> {
        area::relative(self.sb.data_start, self.alloc.total(), block, count)
    }

    /// Called at the start of an operation that may write up to `records` records:
    /// commits, so that deferred frees return to the pool, when the space, a run of one
    /// record's blocks, or runs for every buffered record are missing without them. Never fails for lack of space; the
    /// record writes themselves do. (A commit in the middle of an operation would make
    /// half of it durable, so the writes never commit.)
    pub fn make_room_for_records(&mut self, records: u64) -> FsResult<()> {
        if self.alloc.pending_blocks() == 0 && self.dirty.is_empty() {
            return Ok(());
        }
        let run = self.geometry().blocks_per_record();
        let blocks = records.saturating_mul(run);
        let short = self.alloc.free() < blocks.saturating_add(self.write_reserve());
        if short || !self.alloc.has_run(run) || self.short_of_runs(1) {
            self.commit()?;
        }
        Ok(())
    }

    /// Fails with ENOSPC unless `blocks` more can be used while leaving room for the
    /// next checkpoint. May commit: call it before the operation changes anything.
    pub fn ensure_space(&mut self, blocks: u64) -> FsResult<()> {
        let need = blocks + self.write_reserve();
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

    /// Makes every change so far durable (group commit). Data first, then the journal.
    pub fn commit(&mut self) -> FsResult<()> {
        if self.read_only || self.commits_held {
            return Ok(());
        }
        // Every dirty record is placed first: the transaction covers them all.
        self.flush_dirty()?;
        if !self.journal.has_pending() {
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

    /// Holds every commit until the next checkpoint: changes reach the device only as
    /// data written to free blocks, ops are not journaled, and that checkpoint makes all
    /// of them durable at once (or [`Volume::abandon`] drops them). Frees stay deferred
    /// meanwhile, so nothing the image on disk refers to is overwritten; a change that
    /// needs the space a commit would give back fails with ENOSPC instead.
    pub fn hold_commits(&mut self) {
        self.commits_held = true;
    }

    /// Leaves the image as its last checkpoint and commit made it: whatever changed in
    /// memory since is dropped (only free blocks were written while commits were held),
    /// the in-use marker is cleared, and this volume writes nothing more.
    pub fn abandon(&mut self) -> FsResult<()> {
        debug_assert!(
            self.commits_held,
            "abandoning changes that commits made durable"
        );
        if self.read_only || self.failed.is_some() {
            return Ok(());
        }
        let sb = Superblock {
            in_use: InUse::NOBODY,
            ..self.sb
        };
        let stored = self.store_superblocks(sb);
        self.failed = Some("its changes were abandoned".into());
        stored
    }

    /// True when ops are waiting for a commit.
    pub fn has_uncommitted(&self) -> bool {
        self.journal.has_pending() || !self.dirty.is_empty()
    }

    /// Bytes of ops waiting for a commit.
    pub fn uncommitted_bytes(&self) -> usize {
        self.journal.pending_bytes()
    }

    /// Blocks the next checkpoint may need, kept free for it: the namespace as it is,
    /// plus an extent entry for every buffered record and for every record the
    /// fallocate reservations may write (placed, they add to the checkpoint).
    fn checkpoint_reserve(&self) -> u64 {
        let ns = &self.ns;
        let extents_to_come = self.dirty.len() as u64
            + ns.prealloc_blocks()
                .div_ceil(self.geometry().blocks_per_record().max(1));
        // Each segment (and the head) has its own headers and ends in its own page.
        let segments = (ns.inode_slots() as u64).div_ceil(u64::from(SEGMENT_SLOTS)) + 1;
        let bytes = 64
            + segments * 128
            + ns.inode_slots() as u64 * 64
            + ns.dirent_estimate() as u64 * 32
            + ns.name_estimate() as u64
            + (ns.extent_entries() + extents_to_come) * 80
            + ns.xattr_bytes()
            + self.alloc.total().div_ceil(8)
            + self.snaps.union.len() as u64
            + self.snaps.table.len() as u64 * 320;
        // Two copies of the blob (every page new, as after damage; each page rounded up
        // to whole blocks: at most a block for each page of at least 16 KiB, and the
        // head's three parts each end in a short page), their page tables (an entry a
        // block at worst, where pages go as single-block pieces; v8: in pages of at
        // least 1 KiB, a block each at worst) and page indexes, their roots, and slack
        // for what the next few ops add.
        let pages = bytes.div_ceil(16 * 1024) + 3 + segments;
        let blob_blocks = bytes.div_ceil(BLOCK_SIZE as u64) + pages;
        let table_pages = (32 + blob_blocks * 32).div_ceil(1024);
        let table_blocks = table_pages + (32 + table_pages * 32).div_ceil(BLOCK_SIZE as u64);
        2 * (blob_blocks + table_blocks + 1) + 64
    }

    /// Flushes everything and writes a checkpoint marked clean (unmount). Does nothing
    /// when the image is already clean and unchanged.
    pub fn close(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        let marked = self.sb.in_use.is_held();
        if self.clean_on_disk && !self.changed && !marked {
            return Ok(());
        }
        self.check_failed()?;
        // A clean unmount leaves nobody's marker behind.
        self.sb.in_use = InUse::NOBODY;
        if self.clean_on_disk && !self.changed {
            return self.store_superblocks(self.sb);
        }
        self.write_checkpoint_marked(true).map(|_| ())
    }

    /// Marks the image as held by `holder` (both superblock slots), before this mount
    /// writes anything else of its own.
    pub(super) fn mark_in_use(&mut self, holder: InUse) -> FsResult<()> {
        debug_assert!(holder.is_held());
        // An encrypted image does not say where it is mounted: a path is something a
        // user wrote.
        let mount_point = if self.keys.is_some() {
            [0; 40]
        } else {
            holder.mount_point
        };
        let sb = Superblock {
            in_use: InUse {
                since_ns: crate::time::now_ns(),
                mount_point,
                ..holder
            },
            ..self.sb
        };
        self.store_superblocks(sb)
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
        self.far_on_disk = sb.far_slot != 0;
        self.sb = sb;
        Ok(())
    }
}
