//! Snapshots: a snapshot keeps a checkpoint (its roots, page tables and pages are never
//! freed while it exists) and every data block that checkpoint's allocation bitmap
//! marks. Ownership of data blocks is by bitmap: the union of the snapshots' bitmaps is
//! kept in the live checkpoint; a block the live filesystem frees that the union marks is
//! *held* (stays allocated, no longer the live filesystem's); deleting a snapshot
//! recomputes the union from the others and frees the held blocks it no longer marks —
//! exactly the blocks only that snapshot held, without walking any file.

use bytemuck::Zeroable;
use hashbrown::{HashMap, HashSet};

use gpufs_format::checkpoint::CheckpointImage;
use gpufs_format::snapshot::{valid_snapshot_name, SnapshotRecord};

use super::checkpoint_load::KeptCheckpoint;
use super::Volume;
use crate::error::{FsError, FsResult};
use crate::time::now_ns;

/// The snapshots of a volume and the space they hold (blocks relative to the data area).
#[derive(Clone, Debug, Default)]
pub(super) struct Snapshots {
    pub table: Vec<SnapshotRecord>,
    pub next_id: u64,
    /// Union of the snapshots' data bitmaps; empty when there is no snapshot.
    pub union: Vec<u8>,
    /// Blocks of `union` the live filesystem no longer uses: allocated for snapshots only.
    pub held: Vec<u8>,
    pub held_blocks: u64,
    /// Every run of the snapshots' checkpoints, with how many snapshots name it.
    pub runs: HashMap<(u64, u64), u32>,
    /// Each snapshot's runs, by id.
    pub runs_of: HashMap<u64, Vec<(u64, u64)>>,
    /// Each snapshot's data bitmap, by id, once read.
    bitmaps: HashMap<u64, Vec<u8>>,
    /// Runs to free once a checkpoint that no longer names them is durable.
    pub after_checkpoint: Vec<(u64, u64)>,
}

/// What [`Snapshots::record`] changed that its undo needs back.
pub(super) struct RecordUndo {
    union: Vec<u8>,
}

/// One snapshot as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: u64,
    pub name: String,
    pub created_ns: u64,
    pub generation: u64,
    pub inodes: u64,
    /// Data bytes (in blocks) its files take.
    pub referenced_bytes: u64,
    /// Bytes that deleting it would free: data blocks no other snapshot and not the live
    /// filesystem use.
    pub unique_bytes: u64,
    /// Its checkpoint cannot be read.
    pub damaged: bool,
}

impl SnapshotInfo {
    /// What `rec` says, with the bytes only it holds and whether it is damaged.
    pub fn of(rec: &SnapshotRecord, unique_bytes: u64, damaged: bool) -> SnapshotInfo {
        SnapshotInfo {
            id: rec.id,
            name: String::from_utf8_lossy(rec.name()).into_owned(),
            created_ns: rec.created_ns,
            generation: rec.generation,
            inodes: rec.inodes,
            referenced_bytes: rec.referenced_blocks * gpufs_format::BLOCK_SIZE as u64,
            unique_bytes,
            damaged,
        }
    }
}

pub(crate) fn bit(bits: &[u8], b: u64) -> bool {
    bits.get((b / 8) as usize)
        .is_some_and(|x| (x >> (b % 8)) & 1 == 1)
}

fn set_bit(bits: &mut [u8], b: u64, on: bool) {
    if let Some(x) = bits.get_mut((b / 8) as usize) {
        if on {
            *x |= 1 << (b % 8);
        } else {
            *x &= !(1 << (b % 8));
        }
    }
}

/// The runs of set bits of `bits` (blocks below `total`).
pub(super) fn runs_of_bits(bits: &[u8], total: u64) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, byte) in bits.iter().enumerate() {
        if *byte == 0 && start.is_none() {
            continue;
        }
        for j in 0..8u64 {
            let b = i as u64 * 8 + j;
            if b >= total {
                break;
            }
            match (byte >> j) & 1 == 1 {
                true if start.is_none() => start = Some(b),
                false => {
                    if let Some(s) = start.take() {
                        runs.push((s, b - s));
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(s) = start {
        runs.push((s, total.min(bits.len() as u64 * 8) - s));
    }
    runs
}

fn count_bits(bits: &[u8]) -> u64 {
    bits.iter().map(|b| u64::from(b.count_ones())).sum()
}

impl Snapshots {
    /// The snapshots an image records; `head_bitmap` is the live filesystem's (held
    /// blocks are the union's others).
    pub fn of_image(img: &CheckpointImage, head_bitmap: &[u8]) -> Snapshots {
        let mut s = Snapshots {
            table: img.snapshots.clone(),
            next_id: img.next_snapshot.max(1),
            union: img.snapshot_union.clone(),
            ..Snapshots::default()
        };
        if !s.union.is_empty() {
            s.held = s
                .union
                .iter()
                .enumerate()
                .map(|(i, u)| u & !head_bitmap.get(i).copied().unwrap_or(0))
                .collect();
            s.held_blocks = count_bits(&s.held);
        }
        s
    }

    /// Splits a run the live filesystem frees into the parts to free (false) and those a
    /// snapshot holds (true).
    pub fn split_free(&self, start: u64, count: u64) -> Vec<(u64, u64, bool)> {
        if self.union.is_empty() {
            return vec![(start, count, false)];
        }
        let mut out: Vec<(u64, u64, bool)> = Vec::new();
        for b in start..start + count {
            let held = bit(&self.union, b);
            match out.last_mut() {
                Some((_, n, h)) if *h == held => *n += 1,
                _ => out.push((b, 1, held)),
            }
        }
        out
    }

    /// Marks a run the live filesystem freed as held for the snapshots.
    pub fn hold(&mut self, start: u64, count: u64) {
        for b in start..start + count {
            if !bit(&self.held, b) {
                set_bit(&mut self.held, b, true);
                self.held_blocks += 1;
            }
        }
    }

    /// Records a new snapshot `name` of the checkpoint of generation `generation` about to
    /// be written at `roots` (absolute), whose data bitmap is `bitmap`.
    pub fn record(
        &mut self,
        name: &[u8],
        generation: u64,
        roots: [u64; 2],
        bitmap: &[u8],
        inodes: u64,
        created_ns: u64,
    ) -> RecordUndo {
        let undo = RecordUndo {
            union: self.union.clone(),
        };
        let mut rec = SnapshotRecord::zeroed();
        rec.id = self.next_id;
        rec.generation = generation;
        rec.created_ns = created_ns;
        rec.roots = roots;
        rec.referenced_blocks = count_bits(bitmap);
        rec.inodes = inodes;
        rec.set_name(name);
        if self.union.is_empty() {
            self.union = vec![0; bitmap.len()];
            self.held = vec![0; bitmap.len()];
        }
        for (u, b) in self.union.iter_mut().zip(bitmap) {
            *u |= b;
        }
        self.table.push(rec);
        self.next_id += 1;
        undo
    }

    /// Takes back the [`Snapshots::record`] that returned `undo` (its checkpoint was not
    /// written): the table, the next id and the union as they were. Costs the union's
    /// length, not a copy of every snapshot's runs and bitmaps.
    pub fn undo_record(&mut self, undo: RecordUndo) {
        debug_assert!(self.table.last().is_some_and(|r| r.id + 1 == self.next_id));
        self.table.pop();
        self.next_id -= 1;
        if undo.union.is_empty() {
            self.held.clear();
        }
        self.union = undo.union;
    }

    /// The checkpoint the newest snapshot keeps is written: it takes `runs`.
    pub fn kept_now(&mut self, runs: Vec<(u64, u64)>, bitmap: Vec<u8>) {
        if let Some(id) = self.table.last().map(|r| r.id) {
            self.add_runs(id, runs);
            self.bitmaps.insert(id, bitmap);
        }
    }

    /// Whether a snapshot's checkpoint names `run`.
    pub fn names_run(&self, run: &(u64, u64)) -> bool {
        self.runs.contains_key(run)
    }

    fn add_runs(&mut self, id: u64, runs: Vec<(u64, u64)>) {
        for r in &runs {
            *self.runs.entry(*r).or_default() += 1;
        }
        self.runs_of.insert(id, runs);
    }

    /// Forgets snapshot `id`'s runs; returns those no snapshot names any more.
    fn drop_runs(&mut self, id: u64) -> Vec<(u64, u64)> {
        let mut gone = Vec::new();
        for r in self.runs_of.remove(&id).unwrap_or_default() {
            if let Some(n) = self.runs.get_mut(&r) {
                *n -= 1;
                if *n == 0 {
                    self.runs.remove(&r);
                    gone.push(r);
                }
            }
        }
        gone
    }

    /// Runs the snapshots' checkpoints take that `live` (the live checkpoint's runs) does
    /// not: each once.
    pub fn runs_beside(&self, live: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let live: HashSet<&(u64, u64)> = live.iter().collect();
        self.runs
            .keys()
            .filter(|r| !live.contains(r))
            .copied()
            .collect()
    }
}

impl Volume {
    /// Reads the runs of every snapshot's checkpoint (mount).
    /// A snapshot whose checkpoint cannot be read (both copies of its root or page
    /// table damaged) does not stop the mount: a note says so, and deleting it frees what
    /// only it held. Returns the notes.
    pub(super) fn load_snapshot_runs(&mut self) -> Vec<String> {
        let ds = self.sb.data_start;
        let table = self.snaps.table.clone();
        let mut notes = Vec::new();
        for rec in &table {
            match self.kept_checkpoint(rec) {
                Ok(kept) => {
                    let runs = kept.runs.iter().map(|&(s, n)| (s - ds, n)).collect();
                    self.snaps.add_runs(rec.id, runs);
                }
                Err(e) => notes.push(format!(
                    "{e}; it cannot be read (delete it to free what only it holds)"
                )),
            }
        }
        notes
    }

    fn kept_checkpoint(&self, rec: &SnapshotRecord) -> FsResult<KeptCheckpoint> {
        KeptCheckpoint::open(
            self.dev.as_ref(),
            &self.sb,
            rec.roots,
            rec.generation,
            self.keys.as_deref(),
        )
        .map_err(|e| {
            FsError::corrupt(format!(
                "snapshot {:?}: {e}",
                String::from_utf8_lossy(rec.name())
            ))
        })
    }

    /// The namespace of snapshot `rec`, loaded from its checkpoint.
    pub(crate) fn snapshot_namespace(
        &self,
        rec: &SnapshotRecord,
    ) -> FsResult<crate::namespace::Namespace> {
        self.snapshot_namespace_and_segments(rec).map(|(ns, _)| ns)
    }

    /// [`Volume::snapshot_namespace`], with what identifies each of its segments.
    pub(crate) fn snapshot_namespace_and_segments(
        &self,
        rec: &SnapshotRecord,
    ) -> FsResult<(crate::namespace::Namespace, super::SegmentIds)> {
        let (img, segments) = self
            .kept_checkpoint(rec)?
            .image_and_segments(self.dev.as_ref(), self.keys.as_deref())?;
        let (ns, _) = crate::namespace::Namespace::from_image(img)?;
        Ok((ns, segments.ids()))
    }

    /// The image of the checkpoint snapshot `rec` keeps.
    pub(crate) fn snapshot_image(&self, rec: &SnapshotRecord) -> FsResult<CheckpointImage> {
        self.kept_checkpoint(rec)?
            .image(self.dev.as_ref(), self.keys.as_deref())
    }

    /// The data bitmap of snapshot `rec` (read once, then kept).
    fn snapshot_bitmap(&mut self, rec: &SnapshotRecord) -> FsResult<Vec<u8>> {
        if let Some(b) = self.snaps.bitmaps.get(&rec.id) {
            return Ok(b.clone());
        }
        let bitmap = self.snapshot_image(rec)?.bitmap;
        self.snaps.bitmaps.insert(rec.id, bitmap.clone());
        Ok(bitmap)
    }

    /// The snapshot named `name`.
    pub fn snapshot(&self, name: &[u8]) -> FsResult<SnapshotRecord> {
        self.snaps
            .table
            .iter()
            .find(|s| s.name() == name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    pub fn snapshot_records(&self) -> &[SnapshotRecord] {
        &self.snaps.table
    }

    /// Runs of the snapshots' checkpoints the live checkpoint does not name (relative).
    pub fn snapshot_checkpoint_runs(&self) -> Vec<(u64, u64)> {
        let mut runs = self.snaps.runs_beside(&self.ckpt_runs);
        runs.sort_unstable();
        runs
    }

    /// The union of the snapshots' data bitmaps (empty: no snapshot).
    pub fn snapshot_union(&self) -> &[u8] {
        &self.snaps.union
    }

    /// The blocks only snapshots hold, as a bitmap (empty: no snapshot).
    pub fn held_bits(&self) -> &[u8] {
        &self.snaps.held
    }

    /// Runs of the blocks only snapshots hold (relative).
    pub fn held_runs(&self) -> Vec<(u64, u64)> {
        runs_of_bits(&self.snaps.held, self.alloc.total())
    }

    /// Every snapshot, oldest first, with the bytes it references and the bytes only it
    /// holds.
    pub fn list_snapshots(&mut self) -> FsResult<Vec<SnapshotInfo>> {
        let table = self.snaps.table.clone();
        let mut bitmaps = Vec::with_capacity(table.len());
        let mut damaged = Vec::with_capacity(table.len());
        for rec in &table {
            // A damaged snapshot is listed as such, with nothing it alone holds.
            let bitmap = self.snapshot_bitmap(rec);
            damaged.push(bitmap.is_err());
            bitmaps.push(bitmap.unwrap_or_default());
        }
        let bs = gpufs_format::BLOCK_SIZE as u64;
        let mut out = Vec::with_capacity(table.len());
        for (i, rec) in table.iter().enumerate() {
            // Held blocks its bitmap marks and no other snapshot's does.
            let mut unique = 0u64;
            for (byte, held) in self.snaps.held.iter().enumerate() {
                let mut only = held & bitmaps[i].get(byte).copied().unwrap_or(0);
                if only == 0 {
                    continue;
                }
                for (j, other) in bitmaps.iter().enumerate() {
                    if j != i {
                        only &= !other.get(byte).copied().unwrap_or(0);
                    }
                }
                unique += u64::from(only.count_ones());
            }
            out.push(SnapshotInfo::of(rec, unique * bs, damaged[i]));
        }
        Ok(out)
    }

    /// Creates snapshot `name` of the filesystem as it is: one checkpoint (the pages
    /// that changed since the last one) that records the snapshot and is the one it
    /// keeps. A crash before its superblocks leaves no snapshot.
    pub fn create_snapshot(&mut self, name: &[u8]) -> FsResult<SnapshotRecord> {
        let now = u64::try_from(now_ns()).unwrap_or(0);
        self.create_snapshot_at(name, now)
    }

    /// [`Volume::create_snapshot`] with a creation time of its own (a received snapshot
    /// keeps its sender's).
    pub fn create_snapshot_at(&mut self, name: &[u8], created_ns: u64) -> FsResult<SnapshotRecord> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        if name.len() > gpufs_format::snapshot::SNAPSHOT_NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        if !valid_snapshot_name(name) {
            return Err(FsError::BadQuery(format!(
                "invalid snapshot name {:?}: 1 to 255 bytes of UTF-8, no '/', no control \
                 characters, not '.' or '..'",
                String::from_utf8_lossy(name)
            )));
        }
        if self.snapshot(name).is_ok() {
            return Err(FsError::Exists);
        }
        self.write_checkpoint_with(false, Some((name, created_ns)))?;
        self.snapshot(name)
    }

    /// Deletes snapshot `name`: the runs of its checkpoint no other checkpoint names and
    /// the blocks only it held are freed once the checkpoint that forgets it is durable.
    pub fn delete_snapshot(&mut self, name: &[u8]) -> FsResult<()> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        let rec = self.snapshot(name)?;
        let mut others = Vec::new();
        for other in self.snaps.table.clone().iter().filter(|s| s.id != rec.id) {
            others.push(self.snapshot_bitmap(other)?);
        }
        let live: HashSet<(u64, u64)> = self.ckpt_runs.iter().copied().collect();
        let total = self.alloc.total();
        let saved = self.snaps.clone();
        let s = &mut self.snaps;
        s.table.retain(|t| t.id != rec.id);
        s.bitmaps.remove(&rec.id);
        for run in s.drop_runs(rec.id) {
            if !live.contains(&run) {
                s.after_checkpoint.push(run);
            }
        }
        let mut union = vec![0u8; s.union.len()];
        for b in &others {
            for (u, x) in union.iter_mut().zip(b) {
                *u |= x;
            }
        }
        // Held blocks no remaining snapshot marks: only the deleted one held them.
        let released: Vec<u8> = s.held.iter().zip(&union).map(|(h, u)| h & !u).collect();
        for run in runs_of_bits(&released, total) {
            s.after_checkpoint.push(run);
        }
        s.held_blocks -= count_bits(&released);
        for (h, r) in s.held.iter_mut().zip(&released) {
            *h &= !r;
        }
        if s.table.is_empty() {
            s.union.clear();
            s.held.clear();
        } else {
            s.union = union;
        }
        // Nothing was freed yet: if the checkpoint fails, memory goes back to what the
        // disk holds.
        if let Err(e) = self.write_checkpoint_marked(false) {
            self.snaps = saved;
            return Err(e);
        }
        Ok(())
    }
}

impl Volume {
    /// Makes the live filesystem snapshot `name` again: its files as they were, every
    /// snapshot kept (newer ones too). What the live filesystem held that no snapshot
    /// holds is freed once the checkpoint recording the rollback is durable; what a
    /// snapshot holds stays, held. A crash before that checkpoint leaves the filesystem
    /// as it was.
    pub fn rollback_to_snapshot(&mut self, name: &[u8]) -> FsResult<()> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        let rec = self.snapshot(name)?;
        let ns = self.snapshot_namespace(&rec)?;
        let target = self.snapshot_bitmap(&rec)?;
        // Nothing buffered may outlive the files it belongs to.
        self.flush_dirty()?;
        self.commit()?;
        let current = self.live_data_bitmap()?;
        let total = self.alloc.total();
        let saved = self.snaps.clone();
        let s = &mut self.snaps;
        // Live blocks no snapshot holds: free after the checkpoint.
        let dropped: Vec<u8> = current.iter().zip(&s.union).map(|(c, u)| c & !u).collect();
        s.after_checkpoint.extend(runs_of_bits(&dropped, total));
        // Live blocks a snapshot holds become held; the snapshot's own are live again.
        for (((h, c), t), u) in s.held.iter_mut().zip(&current).zip(&target).zip(&s.union) {
            *h = (*h | (c & u)) & !t;
        }
        s.held_blocks = count_bits(&s.held);
        let old = std::mem::replace(&mut self.ns, ns);
        self.ns.rebuild_free_lists();
        self.dedup = super::dedup::DedupTable::of(&self.ns);
        self.cache.clear();
        self.changed = true;
        // Nothing was freed yet: if the checkpoint fails, memory goes back to what the
        // disk holds.
        if let Err(e) = self.write_checkpoint_marked(false) {
            self.ns = old;
            self.snaps = saved;
            self.dedup = super::dedup::DedupTable::of(&self.ns);
            return Err(e);
        }
        Ok(())
    }

    /// The blocks the live filesystem's records take, as a bitmap (allocator numbering).
    fn live_data_bitmap(&self) -> FsResult<Vec<u8>> {
        let total = self.alloc.total();
        let mut bits = vec![0u8; total.div_ceil(8) as usize];
        for (_, _, ptr) in self.ns.all_extents() {
            for (b, n) in ptr.runs() {
                let rel = self.relative(crate::units::BlockNo::new(b), n)?;
                for x in rel..rel + n {
                    bits[(x / 8) as usize] |= 1 << (x % 8);
                }
            }
        }
        Ok(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot recorded for a checkpoint that then failed leaves no trace.
    #[test]
    fn an_undone_record_leaves_the_snapshots_as_they_were() {
        let mut snaps = Snapshots {
            next_id: 1,
            ..Snapshots::default()
        };
        let first = snaps.record(b"a", 5, [10, 20], &[0b0110, 0], 7, 1);
        snaps.undo_record(first);
        assert!(snaps.table.is_empty() && snaps.union.is_empty() && snaps.held.is_empty());
        assert_eq!(snaps.next_id, 1);

        let _ = snaps.record(b"a", 5, [10, 20], &[0b0110, 0], 7, 1);
        let (table, union) = (snaps.table.clone(), snaps.union.clone());
        let second = snaps.record(b"b", 6, [11, 21], &[0b1001, 0xF0], 8, 2);
        assert_eq!(snaps.union, vec![0b1111, 0xF0]);
        snaps.undo_record(second);
        assert_eq!((snaps.table.clone(), snaps.union.clone()), (table, union));
        assert_eq!((snaps.next_id, snaps.held.len()), (2, 2));
    }
}
