//! The data area as the record pipeline sees it, and the volume's record operations:
//! every data record is written and read through [`crate::records`], here.

use std::sync::Arc;

use gpufs_compute::{Choice, Compute, LazyCompute};
use gpufs_format::{Compression, JournalOp, RecordPtr, Superblock};

use super::Volume;
use crate::alloc::Allocator;
use crate::crypt::SealKeys;
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::records::{
    self, BlockSink, BlockSource, Healing, Outcome, RecordError, WriteIo, WritePolicy, WRITE,
};
use crate::units::{BlockNo, Ino, RecordIndex};

/// The compute layer for a batch of `records`, when it is large enough to go there at
/// all (opening `lazy` at the first such batch) and `lazy` is not held to the CPU.
pub(super) fn batch_device<'c>(
    lazy: Option<&'c LazyCompute>,
    records: &[&[u8]],
) -> Option<&'c Compute> {
    let lazy = lazy?;
    let bytes: u64 = records.iter().map(|r| r.len() as u64).sum();
    if bytes < records::DEVICE_MIN_BYTES || lazy.choice() == Choice::Cpu {
        return None;
    }
    match lazy.get() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::debug!("records prepared on the CPU: {e}");
            None
        }
    }
}

/// The allocator's number of absolute block `block`, when the run of `count` from it
/// lies inside the data area (`data_start`, `area_blocks` long).
pub(super) fn relative(
    data_start: u64,
    area_blocks: u64,
    block: BlockNo,
    count: u64,
) -> FsResult<u64> {
    block
        .get()
        .checked_sub(data_start)
        .filter(|r| r.saturating_add(count) <= area_blocks)
        .ok_or_else(|| FsError::corrupt(format!("block run {block}+{count} outside the data area")))
}

/// Record `index` of a file, as far as it can be had without reading the device.
pub enum RecordLookup {
    /// Not stored: reads as zeros.
    Hole,
    /// Buffered or cached bytes.
    Ready(Arc<Vec<u8>>),
    /// Stored: reading it takes a device read, which [`PendingRead::load`] does without
    /// the volume lock.
    Pending(PendingRead),
}

/// A record read to be done without the volume lock: the device, the area's bounds and
/// the pointer. While the pointer is current its blocks cannot be reused (frees wait for
/// a commit), so bytes that verify are the record's; a failure is retried under the lock,
/// where the record may have changed or need healing.
pub struct PendingRead {
    dev: Arc<dyn Device>,
    keys: Option<Arc<SealKeys>>,
    data_start: u64,
    area_blocks: u64,
    pub ptr: RecordPtr,
}

impl PendingRead {
    /// The record's logical bytes, every check of the read path passed; `None` when a
    /// copy failed (retry under the lock).
    pub fn load(&self) -> Option<Vec<u8>> {
        let src = AreaReader {
            dev: self.dev.as_ref(),
            keys: self.keys.as_deref(),
            data_start: self.data_start,
            area_blocks: self.area_blocks,
        };
        let mut buf = Vec::new();
        match records::load(&src, &self.ptr, &mut buf) {
            Ok(h) if h.bad.is_empty() => Some(buf),
            _ => None,
        }
    }
}

/// Reads of the data area.
struct AreaReader<'a> {
    dev: &'a dyn Device,
    keys: Option<&'a SealKeys>,
    data_start: u64,
    area_blocks: u64,
}

impl<'a> AreaReader<'a> {
    /// Built from the volume's fields, so that the record cache can be borrowed beside.
    fn of(
        dev: &'a Arc<dyn Device>,
        keys: Option<&'a Arc<SealKeys>>,
        sb: &Superblock,
        alloc: &Allocator,
    ) -> Self {
        AreaReader {
            dev: dev.as_ref(),
            keys: keys.map(Arc::as_ref),
            data_start: sb.data_start,
            area_blocks: alloc.total(),
        }
    }
}

impl BlockSource for AreaReader<'_> {
    fn keys(&self) -> Option<&SealKeys> {
        self.keys
    }

    fn check_run(&self, block: BlockNo, count: u64) -> FsResult<()> {
        relative(self.data_start, self.area_blocks, block, count).map(|_| ())
    }

    fn read_blocks(&self, block: BlockNo, buf: &mut [u8]) -> FsResult<()> {
        debug_assert!(block.get() >= self.data_start);
        self.dev.read_at(buf, block.byte_offset())?;
        Ok(())
    }
}

/// Allocation and writes in the data area, keeping back `reserve` blocks for the next
/// checkpoint.
struct AreaWriter<'a> {
    dev: &'a dyn Device,
    alloc: &'a mut Allocator,
    data_start: u64,
    reserve: u64,
    birth_gen: u64,
}

impl BlockSink for AreaWriter<'_> {
    fn birth_gen(&self) -> u64 {
        self.birth_gen
    }

    fn allocate(&mut self, count: u64) -> FsResult<BlockNo> {
        if self.alloc.free() < count + self.reserve {
            return Err(FsError::NoSpace);
        }
        let rel = self.alloc.alloc(count).ok_or(FsError::NoSpace)?;
        debug_assert!(rel + count <= self.alloc.total());
        Ok(BlockNo::new(self.data_start + rel))
    }

    fn allocate_far(&mut self, count: u64, from: BlockNo) -> FsResult<BlockNo> {
        let cursor = self.alloc.cursor();
        let from_rel = from.get().saturating_sub(self.data_start);
        self.alloc.set_cursor(self.alloc.far_from(from_rel));
        let got = self.allocate(count);
        // Data goes on where it was going.
        self.alloc.set_cursor(cursor);
        got
    }

    fn release(&mut self, block: BlockNo, count: u64) {
        let area = self.alloc.total();
        if let Ok(rel) = relative(self.data_start, area, block, count) {
            let _ = self.alloc.free_now(rel, count);
        }
    }

    fn write_blocks(&mut self, block: BlockNo, bytes: &[u8]) -> FsResult<()> {
        debug_assert!(
            relative(self.data_start, self.alloc.total(), block, 1).is_ok(),
            "write at block {block} outside the data area"
        );
        self.dev.write_at(bytes, block.byte_offset())?;
        Ok(())
    }
}

impl Volume {
    /// The logical bytes of record `index` of `ino`, verified; `None` for a hole. A copy
    /// that fails its checksum while another is good is rewritten from the good one.
    pub fn read_record(&mut self, ino: Ino, index: RecordIndex) -> FsResult<Option<Arc<Vec<u8>>>> {
        if let Some(dirty) = self.dirty_record(ino, index) {
            return Ok(Some(dirty));
        }
        let Some(ptr) = self.ns.extent(ino.get(), index.get()).copied() else {
            return Ok(None);
        };
        let src = AreaReader::of(&self.dev, self.keys.as_ref(), &self.sb, &self.alloc);
        let (bytes, healing) = records::read_cached(&mut self.cache, &src, &ptr)?;
        if !healing.bad.is_empty() {
            self.heal(ino, index, &healing);
        }
        Ok(Some(bytes))
    }

    /// The bytes of the record `ptr` names (a snapshot's: verified, from any good copy,
    /// cached; nothing rewritten).
    pub fn read_ptr(&mut self, ptr: &RecordPtr) -> FsResult<Arc<Vec<u8>>> {
        let src = AreaReader::of(&self.dev, self.keys.as_ref(), &self.sb, &self.alloc);
        records::read_cached(&mut self.cache, &src, ptr).map(|(bytes, _)| bytes)
    }

    /// Record `index` of `ino` without reading the device: a hole, buffered or cached
    /// bytes, or the read to do.
    pub fn lookup_record(&self, ino: Ino, index: RecordIndex) -> RecordLookup {
        if let Some(dirty) = self.dirty_record(ino, index) {
            return RecordLookup::Ready(dirty);
        }
        let Some(ptr) = self.ns.extent(ino.get(), index.get()).copied() else {
            return RecordLookup::Hole;
        };
        if let Some(hit) = self.cache.get(BlockNo::new(ptr.block), ptr.logical_len) {
            return RecordLookup::Ready(hit);
        }
        RecordLookup::Pending(PendingRead {
            dev: self.dev.clone(),
            keys: self.keys.clone(),
            data_start: self.sb.data_start,
            area_blocks: self.alloc.total(),
            ptr,
        })
    }

    /// Keeps bytes a [`PendingRead`] loaded in the record cache, when `ptr` is still
    /// record `index` of `ino` (else its blocks may be on their way to reuse).
    pub fn cache_loaded(
        &mut self,
        ino: Ino,
        index: RecordIndex,
        ptr: &RecordPtr,
        bytes: Arc<Vec<u8>>,
    ) {
        if self.ns.extent(ino.get(), index.get()) == Some(ptr)
            && self.dirty_record(ino, index).is_none()
        {
            self.cache.insert(BlockNo::new(ptr.block), bytes);
        }
    }

    /// Rewrites each bad copy of a record, in place, with the good copy's stored bytes
    /// (the same bytes its checksum was taken of). A failure is logged: the good copy
    /// still serves reads, and scrub reports what it could not repair.
    pub(crate) fn heal(&mut self, ino: Ino, index: RecordIndex, healing: &Healing) -> bool {
        if self.read_only {
            return false;
        }
        let mut all = true;
        for &(block, count) in &healing.bad {
            let mut padded = healing.stored.clone();
            padded.resize(count as usize * gpufs_format::BLOCK_SIZE, 0);
            match self.dev.write_at(&padded, block.byte_offset()) {
                Ok(()) => {
                    self.counters.healed_copies += 1;
                    tracing::warn!(%ino, %index, %block, "rewrote a damaged copy of a record");
                }
                Err(e) => {
                    all = false;
                    tracing::error!(%ino, %index, %block, "cannot rewrite a damaged copy: {e}");
                }
            }
        }
        all
    }

    /// Reads and verifies every copy of the record `ptr` points at (its bytes into `buf`),
    /// bypassing the cache (fsck, scrub): the copies that failed, if another was good.
    pub fn verify_record(
        &self,
        ptr: &RecordPtr,
        buf: &mut Vec<u8>,
    ) -> Result<Healing, RecordError> {
        records::load_every_copy(
            &AreaReader::of(&self.dev, self.keys.as_ref(), &self.sb, &self.alloc),
            ptr,
            buf,
        )
    }

    /// How new records of `ino` are written: its compression and copies properties.
    pub fn policy_of(&self, ino: Ino) -> WritePolicy {
        let flags = self.ns.inode(ino.get()).map_or(0, |r| r.flags);
        WritePolicy {
            compression: self.compression_of(ino),
            copies: gpufs_format::props::decode_copies(flags)
                .ok()
                .flatten()
                .unwrap_or(1),
            dedup: gpufs_format::props::decode_dedup(flags)
                .ok()
                .flatten()
                .unwrap_or_else(|| self.default_dedup()),
            keys: self.keys.clone(),
        }
    }

    /// How new records of `ino` are compressed: its own property, else the filesystem's
    /// default.
    pub fn compression_of(&self, ino: Ino) -> Compression {
        let own = self
            .ns
            .inode(ino.get())
            .and_then(|r| r.compression().ok().flatten());
        own.unwrap_or_else(|| self.default_compression())
    }

    /// Whether new records are deduplicated where no directory says otherwise
    /// (`gpufs mkfs --dedup`).
    pub fn default_dedup(&self) -> bool {
        self.sb.flags & Superblock::FLAG_DEDUP != 0
    }

    /// The filesystem's default compression (none for a version 1 image).
    pub fn default_compression(&self) -> Compression {
        Compression::decode(self.sb.compression)
            .ok()
            .flatten()
            .unwrap_or(Compression::None)
    }

    /// Stores `data` as record `index` of `ino` through the write pipeline, replacing
    /// (and freeing) the record there before; a record of zeros leaves a hole.
    pub fn store_record(&mut self, ino: Ino, index: RecordIndex, data: &[u8]) -> FsResult<()> {
        let stored = self.store_records(ino, &[(index, data)])?;
        debug_assert_eq!(stored, 1);
        Ok(())
    }

    /// Stores each `(index, bytes)` as [`Volume::store_record`] does: into the write-back
    /// cache, or with it off straight through the pipeline. Stops at the first failure:
    /// returns how many were stored, or the error when none was.
    pub fn store_records(&mut self, ino: Ino, recs: &[(RecordIndex, &[u8])]) -> FsResult<usize> {
        if self.write_cache_bytes > 0 {
            self.buffer_records(ino, recs)
        } else {
            // What fallocate reserved for this file pays first.
            let copies = u64::from(self.policy_of(ino).copies);
            let need: u64 = recs
                .iter()
                .map(|(_, d)| (d.len().div_ceil(gpufs_format::BLOCK_SIZE) as u64).max(1) * copies)
                .sum();
            self.take_prealloc(ino, need)?;
            self.place_records(ino, recs)
        }
    }

    /// Places each `(index, bytes)` record of `ino`: the bytes prepared (zero detection,
    /// compression, checksum) on every core at once, then allocated and written in order.
    /// Stops at the first failure: returns how many were placed, or the error when none
    /// was.
    pub(super) fn place_records(
        &mut self,
        ino: Ino,
        recs: &[(RecordIndex, &[u8])],
    ) -> FsResult<usize> {
        let geo = self.geometry();
        debug_assert!(recs
            .iter()
            .all(|(_, d)| d.len() as u64 <= geo.record_size()));
        let policy = self.policy_of(ino);
        let bytes: Vec<&[u8]> = recs.iter().map(|(_, d)| *d).collect();
        let prepared = self.prepare_records(policy, &bytes);
        let indices: Vec<RecordIndex> = recs.iter().map(|(i, _)| *i).collect();
        self.place_prepared(ino, &indices, prepared)
    }

    /// Runs the transforming stages over `records` (on the GPU, every core or this
    /// thread, as [`records::prepare_batch`] chooses).
    pub(super) fn prepare_records<'a>(
        &self,
        policy: WritePolicy,
        records: &[&'a [u8]],
    ) -> Vec<WriteIo<'a>> {
        let compute = self.batch_compute(records);
        records::prepare_batch(WRITE, &policy, records, compute)
    }

    /// Places the prepared records `ios` as records `indices` of `ino`, in order (each
    /// shared with an equal stored record when dedup finds one). Stops at the first
    /// failure: returns how many were placed, or the error when none was.
    pub(super) fn place_prepared(
        &mut self,
        ino: Ino,
        indices: &[RecordIndex],
        ios: Vec<WriteIo<'_>>,
    ) -> FsResult<usize> {
        debug_assert_eq!(indices.len(), ios.len());
        for (done, (io, index)) in ios.into_iter().zip(indices).enumerate() {
            let placed = match self.dedup_hit(&io) {
                Some(ptr) => self.share_record(ino, *index, ptr),
                None => self.place_record(ino, *index, io),
            };
            if let Err(e) = placed {
                if done == 0 {
                    return Err(e);
                }
                tracing::debug!(%ino, done, "stopped storing records: {e}");
                return Ok(done);
            }
        }
        Ok(indices.len())
    }

    /// The compute layer for a batch of `records`, when it is large enough to go there
    /// at all and the mount has one.
    fn batch_compute(&self, records: &[&[u8]]) -> Option<&Compute> {
        batch_device(self.compute.as_deref(), records)
    }

    /// The stored record a prepared record with a hash (dedup on) can share instead of
    /// being written, counted in the dedup counters.
    fn dedup_hit(&mut self, io: &WriteIo<'_>) -> Option<RecordPtr> {
        let hash = io.hash()?;
        self.counters.dedup.lookups += 1;
        let ptr = self.dedup.find(&self.ns, &hash)?;
        // A file that asks for two copies never shares a record stored once.
        if ptr.runs().count() < usize::from(io.policy().copies) {
            return None;
        }
        self.counters.dedup.hits += 1;
        self.counters.dedup.bytes_saved += ptr.total_blocks() * gpufs_format::BLOCK_SIZE as u64;
        Some(ptr)
    }

    /// Places one prepared record as record `index` of `ino`, and records it.
    fn place_record(&mut self, ino: Ino, index: RecordIndex, io: WriteIo<'_>) -> FsResult<()> {
        let (logical, stored, verdict) = (io.logical_len(), io.stored_len(), io.verdict());
        let backend = io.backend();
        let outcome = records::place(WRITE, &mut self.writer(), io)?;
        self.counters
            .records
            .count(backend, verdict, &outcome, logical, stored);
        let ptr = match outcome {
            Outcome::Stored(ptr) => ptr,
            Outcome::Hole => {
                if self.ns.extent(ino.get(), index.get()).is_some() {
                    return self.drop_records(ino, index, index.next());
                }
                return Ok(());
            }
        };
        let put = self.apply(JournalOp::ExtentPut {
            ino: ino.get(),
            index: index.get(),
            ptr,
        });
        if put.is_ok() {
            self.dedup.insert(&ptr, ino.get(), index.get());
        } else {
            // Nothing refers to the new record: its blocks go back now.
            let mut w = self.writer();
            for (block, count) in ptr.runs() {
                w.release(BlockNo::new(block), count);
            }
        }
        put
    }

    /// Makes record `index` of `ino` refer to the stored record `ptr` too (a pointer of
    /// another record, placed): no data is written or allocated; the record gains a
    /// reference, and what `index` held is released.
    pub fn share_record(&mut self, ino: Ino, index: RecordIndex, ptr: RecordPtr) -> FsResult<()> {
        self.discard_dirty(ino, index, index.next());
        self.apply(JournalOp::ExtentShare {
            ino: ino.get(),
            index: index.get(),
            ptr,
        })
    }

    /// Drops the records `from..to` of `ino` (holes from then on).
    pub fn drop_records(&mut self, ino: Ino, from: RecordIndex, to: RecordIndex) -> FsResult<()> {
        debug_assert!(from <= to);
        self.discard_dirty(ino, from, to);
        self.apply(JournalOp::ExtentDrop {
            ino: ino.get(),
            from: from.get(),
            to: to.get(),
        })
    }

    fn writer(&mut self) -> AreaWriter<'_> {
        let reserve = self.write_reserve();
        let birth_gen = self.generation();
        AreaWriter {
            dev: self.dev.as_ref(),
            alloc: &mut self.alloc,
            data_start: self.sb.data_start,
            reserve,
            birth_gen,
        }
    }
}
