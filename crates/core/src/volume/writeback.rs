//! The write-back record cache: writes land here as whole records (their logical bytes)
//! and reach the record pipeline in batches — at every commit (fsync, fdatasync, the
//! timer, a full journal), before a checkpoint, before an operation that inspects how a
//! file is stored (truncate, hole punching, SEEK_DATA), and when the cache holds more
//! than its bound. Many small writes to one record become one record write, and a batch
//! is compressed on every core at once.
//!
//! Durability is unchanged: a commit places every dirty record before it writes its
//! journal transaction, so nothing a commit covers is left behind, and a crash loses
//! only what no commit covered — as before. Space is reserved when a record is buffered
//! (its raw size, every copy), so a write that cannot be stored fails with ENOSPC at
//! once, not at the next fsync.

use std::collections::BTreeMap;
use std::sync::Arc;

use gpufs_format::BLOCK_SIZE;

use super::Volume;
use crate::error::{FsError, FsResult};
use crate::units::{Ino, RecordIndex};

/// A buffered record: its logical bytes and the blocks reserved for it.
struct Dirty {
    data: Arc<Vec<u8>>,
    reserved: u64,
}

/// Dirty records not yet given to the pipeline, in file order.
#[derive(Default)]
pub(super) struct DirtyRecords {
    map: BTreeMap<(Ino, RecordIndex), Dirty>,
    bytes: usize,
    /// Blocks reserved for them: raw size, every copy.
    reserved_blocks: u64,
}

/// Blocks a dirty record of `len` bytes may take when placed with `copies` copies.
fn reservation(len: usize, copies: u8) -> u64 {
    (len.div_ceil(BLOCK_SIZE) as u64).max(1) * u64::from(copies)
}

impl DirtyRecords {
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn reserved_blocks(&self) -> u64 {
        self.reserved_blocks
    }

    /// Records buffered.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn get(&self, ino: Ino, index: RecordIndex) -> Option<&Arc<Vec<u8>>> {
        self.map.get(&(ino, index)).map(|d| &d.data)
    }

    /// Blocks reserved for record `index` of `ino` (0 when it is not dirty).
    fn reserved_for(&self, ino: Ino, index: RecordIndex) -> u64 {
        self.map.get(&(ino, index)).map_or(0, |d| d.reserved)
    }

    /// Takes the records of `ino` in `from..to` out (every record of `ino` with `..END`).
    fn take_range(
        &mut self,
        ino: Ino,
        from: RecordIndex,
        to: RecordIndex,
    ) -> Vec<(RecordIndex, Arc<Vec<u8>>)> {
        let keys: Vec<(Ino, RecordIndex)> = self
            .map
            .range((ino, from)..(ino, to))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.remove(k).map(|v| (k.1, v)))
            .collect()
    }

    fn remove(&mut self, key: (Ino, RecordIndex)) -> Option<Arc<Vec<u8>>> {
        let d = self.map.remove(&key)?;
        self.bytes -= d.data.len();
        self.reserved_blocks -= d.reserved;
        Some(d.data)
    }

    fn insert(&mut self, key: (Ino, RecordIndex), data: Arc<Vec<u8>>, copies: u8) {
        let reserved = reservation(data.len(), copies);
        self.bytes += data.len();
        self.reserved_blocks += reserved;
        if let Some(old) = self.map.insert(key, Dirty { data, reserved }) {
            self.bytes -= old.data.len();
            self.reserved_blocks -= old.reserved;
        }
    }

    /// The inodes with dirty records.
    fn inodes(&self) -> Vec<Ino> {
        let mut v: Vec<Ino> = self.map.keys().map(|k| k.0).collect();
        v.dedup();
        v
    }
}

impl Volume {
    /// The buffered logical bytes of record `index` of `ino`, if dirty.
    pub(super) fn dirty_record(&self, ino: Ino, index: RecordIndex) -> Option<Arc<Vec<u8>>> {
        self.dirty.get(ino, index).cloned()
    }

    /// Logical length of record `index` of `ino`, dirty or stored; `None` for a hole.
    pub fn record_len(&self, ino: Ino, index: RecordIndex) -> Option<u32> {
        match self.dirty.get(ino, index) {
            Some(d) => Some(d.len() as u32),
            None => self.record(ino, index).map(|p| p.logical_len),
        }
    }

    /// Does `ino` have dirty records at index `from` or later?
    pub fn has_dirty_from(&self, ino: Ino, from: RecordIndex) -> bool {
        self.dirty
            .map
            .range((ino, from)..(ino, RecordIndex::END))
            .next()
            .is_some()
    }

    /// Blocks the dirty records of `ino` will take at most (`st_blocks` before they are
    /// placed).
    pub fn dirty_blocks_of(&self, ino: Ino) -> u64 {
        self.dirty
            .map
            .range((ino, RecordIndex::new(0))..(ino, RecordIndex::END))
            .map(|(_, d)| d.reserved)
            .sum()
    }

    /// Buffers `(index, bytes)` records of `ino`, replacing what each held. Returns how
    /// many were buffered: it stops at the first for which no space can be reserved (an
    /// error when it is the first).
    pub(super) fn buffer_records(
        &mut self,
        ino: Ino,
        recs: &[(RecordIndex, &[u8])],
    ) -> FsResult<usize> {
        let copies = self.policy_of(ino).copies;
        for (done, (index, data)) in recs.iter().enumerate() {
            // A record of zeros is a hole at once (the pipeline's zero stage would make it
            // one): nothing to keep or reserve.
            if data.iter().all(|b| *b == 0) {
                self.drop_records(ino, *index, index.next())?;
                self.counters.records.count_hole(data.len() as u32);
                continue;
            }
            let old = self.dirty.reserved_for(ino, *index);
            let need = reservation(data.len(), copies).saturating_sub(old);
            if need > 0
                && (self.alloc.free() < need + self.write_reserve() || self.short_of_runs(copies))
            {
                if done == 0 {
                    return Err(FsError::NoSpace);
                }
                return Ok(done);
            }
            self.dirty
                .insert((ino, *index), Arc::new(data.to_vec()), copies);
        }
        if self.dirty.bytes() > self.write_cache_bytes {
            self.flush_dirty()?;
        }
        Ok(recs.len())
    }

    /// Writes `data` at byte `offset` of record `index` of `ino` in place, when that
    /// record is buffered (growing it, zero-filled, as needed; at most `record_size`
    /// bytes). Returns false, changing nothing, when it is not buffered or the space its
    /// growth needs cannot be reserved.
    pub fn patch_dirty(
        &mut self,
        ino: Ino,
        index: RecordIndex,
        offset: usize,
        data: &[u8],
    ) -> bool {
        let end = offset + data.len();
        debug_assert!(end as u64 <= self.geometry().record_size());
        let copies = self.policy_of(ino).copies;
        let free = self.alloc.free();
        let reserve = self.write_reserve();
        let Some(d) = self.dirty.map.get_mut(&(ino, index)) else {
            return false;
        };
        let grown = reservation(end.max(d.data.len()), copies);
        let need = grown.saturating_sub(d.reserved);
        if need > 0 && free < need + reserve {
            return false;
        }
        let old_len = d.data.len();
        let buf = Arc::make_mut(&mut d.data);
        if buf.len() < end {
            buf.resize(end, 0);
        }
        buf[offset..end].copy_from_slice(data);
        let new_len = buf.len();
        self.dirty.bytes += new_len - old_len;
        self.dirty.reserved_blocks += need;
        d.reserved += need;
        true
    }

    /// Near a full disk, free space may be there in runs too short for a record (a
    /// record is stored in contiguous blocks): is there no longer a run of a whole
    /// record for every buffered record, one more, and the next checkpoint? Counted only
    /// when free space is under twice what they would take, so a roomy disk never pays
    /// the scan.
    pub(super) fn short_of_runs(&self, copies: u8) -> bool {
        let per = self.geometry().record_size().div_ceil(BLOCK_SIZE as u64);
        let records = (self.dirty.len() as u64 + 1) * u64::from(copies);
        let want = records + self.checkpoint_reserve().div_ceil(per);
        if self.alloc.free() >= 2 * want * per {
            return false;
        }
        self.alloc.runs_of(per, want) < want
    }

    /// Blocks allocation keeps back: the next checkpoint's and the dirty records'.
    pub(super) fn write_reserve(&self) -> u64 {
        self.checkpoint_reserve() + self.dirty.reserved_blocks()
    }

    /// Forgets the dirty records of `ino` in `from..to` (they are dropped).
    pub(super) fn discard_dirty(&mut self, ino: Ino, from: RecordIndex, to: RecordIndex) {
        self.dirty.take_range(ino, from, to);
    }

    /// Gives the dirty records of `ino` to the pipeline.
    pub fn flush_dirty_of(&mut self, ino: Ino) -> FsResult<()> {
        let copies = self.policy_of(ino).copies;
        let recs = self
            .dirty
            .take_range(ino, RecordIndex::new(0), RecordIndex::END);
        if recs.is_empty() {
            return Ok(());
        }
        let refs: Vec<(RecordIndex, &[u8])> =
            recs.iter().map(|(i, d)| (*i, d.as_slice())).collect();
        match self.place_records(ino, &refs) {
            Ok(n) if n == recs.len() => Ok(()),
            Ok(n) => {
                // Put back what was not placed, and say why.
                for (i, d) in recs.into_iter().skip(n) {
                    self.dirty.insert((ino, i), d, copies);
                }
                Err(FsError::NoSpace)
            }
            Err(e) => {
                for (i, d) in recs {
                    self.dirty.insert((ino, i), d, copies);
                }
                Err(e)
            }
        }
    }

    /// Gives every dirty record to the pipeline.
    pub fn flush_dirty(&mut self) -> FsResult<()> {
        for ino in self.dirty.inodes() {
            self.flush_dirty_of(ino)?;
        }
        debug_assert!(self.dirty.is_empty());
        Ok(())
    }
}
