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
use crate::records::{PreparedRecord, WriteIo};
use crate::units::{Ino, RecordIndex};

/// A buffered record: its logical bytes, the blocks reserved for it, and what the
/// preparer made of them.
struct Dirty {
    data: Arc<Vec<u8>>,
    reserved: u64,
    state: Preparing,
}

/// How far a dirty record got through the transforming stages before it is placed.
enum Preparing {
    /// Not prepared: its flush runs the stages.
    Raw,
    /// Handed to the preparer; flushed before it returns, it is prepared by the flush.
    Taken,
    /// Prepared from exactly these bytes (any change to them makes it `Raw` again).
    Done(PreparedRecord),
}

impl Dirty {
    /// (bytes of memory it holds, bytes not yet prepared) — what it adds to the totals.
    fn weight(&self) -> (usize, usize) {
        match &self.state {
            Preparing::Raw => (self.data.len(), self.data.len()),
            Preparing::Taken => (self.data.len(), 0),
            Preparing::Done(p) => (self.data.len() + p.heap_bytes(), 0),
        }
    }
}

/// Dirty records not yet given to the pipeline, in file order.
#[derive(Default)]
pub(super) struct DirtyRecords {
    map: BTreeMap<(Ino, RecordIndex), Dirty>,
    /// Memory they hold: logical bytes and prepared bytes.
    bytes: usize,
    /// Logical bytes of those not prepared nor taken by the preparer.
    raw_bytes: usize,
    /// Blocks reserved for them: raw size, every copy.
    reserved_blocks: u64,
}

/// Which record of which file.
pub(super) type RecordKey = (Ino, RecordIndex);

/// A dirty record taken out of the cache to be placed or dropped.
struct TakenRecord {
    index: RecordIndex,
    data: Arc<Vec<u8>>,
    prepared: Option<PreparedRecord>,
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

    /// Logical bytes of the records that are neither prepared nor being prepared.
    pub(super) fn raw_bytes(&self) -> usize {
        self.raw_bytes
    }

    fn add(&mut self, d: &Dirty) {
        let (bytes, raw) = d.weight();
        self.bytes += bytes;
        self.raw_bytes += raw;
        self.reserved_blocks += d.reserved;
    }

    fn sub(&mut self, d: &Dirty) {
        let (bytes, raw) = d.weight();
        self.bytes -= bytes;
        self.raw_bytes -= raw;
        self.reserved_blocks -= d.reserved;
    }

    /// Accounts for a record whose weight went from `before` to `after` and that
    /// reserved `more_blocks`.
    fn reweigh(&mut self, before: (usize, usize), after: (usize, usize), more_blocks: u64) {
        self.bytes = self.bytes - before.0 + after.0;
        self.raw_bytes = self.raw_bytes - before.1 + after.1;
        self.reserved_blocks += more_blocks;
    }

    fn get(&self, ino: Ino, index: RecordIndex) -> Option<&Arc<Vec<u8>>> {
        self.map.get(&(ino, index)).map(|d| &d.data)
    }

    /// Blocks reserved for record `index` of `ino` (0 when it is not dirty).
    fn reserved_for(&self, ino: Ino, index: RecordIndex) -> u64 {
        self.map.get(&(ino, index)).map_or(0, |d| d.reserved)
    }

    /// Takes the records of `ino` in `from..to` out (every record of `ino` with `..END`),
    /// each with what the preparer made of it, if anything.
    fn take_range(&mut self, ino: Ino, from: RecordIndex, to: RecordIndex) -> Vec<TakenRecord> {
        let keys: Vec<(Ino, RecordIndex)> = self
            .map
            .range((ino, from)..(ino, to))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let d = self.map.remove(&k)?;
                self.sub(&d);
                let prepared = match d.state {
                    Preparing::Done(p) => Some(p),
                    Preparing::Raw | Preparing::Taken => None,
                };
                Some(TakenRecord {
                    index: k.1,
                    data: d.data,
                    prepared,
                })
            })
            .collect()
    }

    fn insert(&mut self, key: (Ino, RecordIndex), data: Arc<Vec<u8>>, copies: u8) {
        let d = Dirty {
            reserved: reservation(data.len(), copies),
            data,
            state: Preparing::Raw,
        };
        self.add(&d);
        if let Some(old) = self.map.insert(key, d) {
            self.sub(&old);
        }
    }

    /// Up to `max_bytes` of whole (`record_len` bytes) records not yet prepared, marked
    /// as taken by the preparer: `(key, bytes)` of each.
    pub(super) fn take_raw(
        &mut self,
        record_len: usize,
        max_bytes: usize,
    ) -> Vec<(RecordKey, Arc<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for (k, d) in &mut self.map {
            if bytes >= max_bytes {
                break;
            }
            if matches!(d.state, Preparing::Raw) && d.data.len() == record_len {
                d.state = Preparing::Taken;
                self.raw_bytes -= d.data.len();
                bytes += d.data.len();
                out.push((*k, Arc::clone(&d.data)));
            }
        }
        out
    }

    /// Keeps `prepared` for the record at `key` if it still holds exactly `data` (the
    /// bytes it was prepared from: a write since then replaced or copied them); with
    /// `None`, or a record changed meanwhile, it is not prepared.
    pub(super) fn keep_prepared(
        &mut self,
        key: (Ino, RecordIndex),
        data: &Arc<Vec<u8>>,
        prepared: Option<PreparedRecord>,
    ) -> bool {
        let Some(d) = self.map.get_mut(&key) else {
            return false;
        };
        if !Arc::ptr_eq(&d.data, data) || !matches!(d.state, Preparing::Taken) {
            return false;
        }
        let kept = prepared.is_some();
        let before = d.weight();
        d.state = prepared.map_or(Preparing::Raw, Preparing::Done);
        let after = d.weight();
        self.reweigh(before, after, 0);
        kept
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
            // What fallocate reserved for this file pays first (it is in the reserve).
            let own = need.min(self.prealloc_of(ino));
            if need > own
                && (self.alloc.free() < need - own + self.write_reserve()
                    || self.short_of_runs(copies))
            {
                if done == 0 {
                    return Err(FsError::NoSpace);
                }
                return Ok(done);
            }
            self.take_prealloc(ino, own)?;
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
        let before = d.weight();
        // While the preparer holds the bytes, this copies them: what it prepares no
        // longer matches and is not kept.
        let buf = Arc::make_mut(&mut d.data);
        if buf.len() < end {
            buf.resize(end, 0);
        }
        buf[offset..end].copy_from_slice(data);
        d.reserved += need;
        d.state = Preparing::Raw;
        let after = d.weight();
        self.dirty.reweigh(before, after, need);
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

    /// Blocks allocation keeps back: the next checkpoint's, the dirty records' and what
    /// fallocate reserved.
    pub(super) fn write_reserve(&self) -> u64 {
        self.checkpoint_reserve() + self.dirty.reserved_blocks() + self.ns.prealloc_blocks()
    }

    /// Forgets the dirty records of `ino` in `from..to` (they are dropped).
    pub(super) fn discard_dirty(&mut self, ino: Ino, from: RecordIndex, to: RecordIndex) {
        self.dirty.take_range(ino, from, to);
    }

    /// Gives the dirty records of `ino` to the pipeline: those the preparer prepared
    /// under the policy the file has now are placed as they are, the rest prepared here.
    pub fn flush_dirty_of(&mut self, ino: Ino) -> FsResult<()> {
        let policy = self.policy_of(ino);
        let recs = self
            .dirty
            .take_range(ino, RecordIndex::new(0), RecordIndex::END);
        if recs.is_empty() {
            return Ok(());
        }
        let (datas, prepared): (Vec<_>, Vec<_>) = recs
            .into_iter()
            .map(|r| ((r.index, r.data), r.prepared))
            .unzip();
        let mut ios: Vec<Option<WriteIo<'_>>> = prepared
            .into_iter()
            .zip(&datas)
            .map(|(p, (_, data))| {
                p.filter(|p| *p.policy() == policy)
                    .map(|p| p.attach(data.as_slice()))
            })
            .collect();
        let fresh: Vec<&[u8]> = ios
            .iter()
            .zip(&datas)
            .filter(|(io, _)| io.is_none())
            .map(|(_, (_, data))| data.as_slice())
            .collect();
        let mut fresh = self.prepare_records(policy.clone(), &fresh).into_iter();
        for io in ios.iter_mut().filter(|io| io.is_none()) {
            *io = fresh.next();
        }
        let ios: Vec<WriteIo<'_>> = ios.into_iter().flatten().collect();
        debug_assert_eq!(ios.len(), datas.len());
        let indices: Vec<RecordIndex> = datas.iter().map(|(i, _)| *i).collect();
        let placed = self.place_prepared(ino, &indices, ios);
        let kept = match placed {
            Ok(n) if n == datas.len() => return Ok(()),
            Ok(n) => n,
            Err(_) => 0,
        };
        // Put back what was not placed, and say why.
        for (i, d) in datas.into_iter().skip(kept) {
            self.dirty.insert((ino, i), d, policy.copies);
        }
        Err(placed.err().unwrap_or(FsError::NoSpace))
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
