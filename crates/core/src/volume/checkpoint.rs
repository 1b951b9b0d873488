//! Writing and loading checkpoints.

use std::collections::HashSet;

use gpufs_format::checkpoint::{CheckpointImage, CheckpointRoot, CKPT_MAGIC};
use gpufs_format::pages::{encode_page_index, encode_page_table, PageEntry};
use gpufs_format::superblock::SUPERBLOCK_SLOTS;
use gpufs_format::{checksum, Superblock, BLOCK_SIZE, FORMAT_VERSION};

use super::pages::{cut_table_pages, CutPage, PageSet};
use super::segments::BlobPlan;
use super::snapshots::runs_of_bits;
use super::Volume;
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::time::now_ns;
use crate::units::BlockNo;

impl Volume {
    /// Writes the whole namespace copy-on-write and makes it current. Afterwards the
    /// journal is empty and every deferred free is released.
    pub fn checkpoint(&mut self) -> FsResult<()> {
        self.write_checkpoint_marked(false).map(|_| ())
    }

    /// A checkpoint whose superblock says `clean` (unmount) or not (the session goes on
    /// writing journal blocks under it). Returns the data bitmap it wrote: the blocks
    /// the live filesystem's records take.
    pub(super) fn write_checkpoint_marked(&mut self, clean: bool) -> FsResult<Vec<u8>> {
        self.write_checkpoint_with(clean, None)
    }

    /// [`Volume::write_checkpoint_marked`], recording in it a new snapshot of what it
    /// holds, `(name, created_ns)` (the snapshot keeps this very checkpoint).
    pub(super) fn write_checkpoint_with(
        &mut self,
        clean: bool,
        snapshot: Option<(&[u8], u64)>,
    ) -> FsResult<Vec<u8>> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        self.check_failed()?;
        self.flush_dirty()?;
        if self.ns.dead_name_bytes() > (1 << 20)
            && self.ns.dead_name_bytes() > self.ns.name_estimate()
        {
            self.ns.compact_names();
        }
        // Data written so far must be durable before a checkpoint refers to it.
        self.dev.flush()?;

        // The bitmap of data blocks the current namespace uses: not the checkpoint's own
        // blocks, not the snapshots' checkpoints or the blocks only snapshots hold, not
        // blocks whose free is still pending.
        let mut data_only = self.alloc.clone();
        let snapshot_runs = self.snaps.runs_beside(&self.ckpt_runs);
        for &(s, n) in self
            .ckpt_runs
            .iter()
            .chain(&snapshot_runs)
            .chain(&self.snaps.after_checkpoint)
        {
            data_only.free_now(s, n)?;
        }
        for (s, n) in self.fixed_metadata_runs() {
            data_only.free_now(s, n)?;
        }
        for (s, n) in runs_of_bits(&self.snaps.held, self.alloc.total()) {
            data_only.free_now(s, n)?;
        }
        data_only.release_pending()?;
        let data_used = data_only.used();
        let bitmap = data_only.to_bitmap();
        drop(data_only);
        // The roots first: a snapshot recorded in this checkpoint names them.
        let roots = self.alloc_roots()?;
        let undo = snapshot.map(|(name, created_ns)| {
            let ds = self.sb.data_start;
            let gen = self.sb.generation + 1;
            self.snaps.record(
                name,
                gen,
                [ds + roots[0], ds + roots[1]],
                &bitmap,
                self.ns.live_inodes(),
                created_ns,
            )
        });
        let written = self.write_checkpoint_at(clean, roots, &bitmap, data_used);
        if written.is_ok() {
            // Everything is durable: a hold of commits has ended.
            self.commits_held = false;
        }
        match (written, undo) {
            (Ok(()), None) => Ok(bitmap),
            (Ok(()), Some(_)) => {
                self.snaps.kept_now(self.ckpt_runs.clone(), bitmap.clone());
                Ok(bitmap)
            }
            (Err(e), undo) => {
                if let Some(undo) = undo {
                    self.snaps.undo_record(undo);
                }
                Err(e)
            }
        }
    }

    /// Two root blocks, the second as far from the first as free space allows; data
    /// goes on where it was going.
    fn alloc_roots(&mut self) -> FsResult<[u64; 2]> {
        let cursor = self.alloc.cursor();
        let first = self.alloc.alloc(1).ok_or(FsError::NoSpace)?;
        self.alloc.set_cursor(self.alloc.far_from(first));
        let second = self.alloc.alloc(1);
        self.alloc.set_cursor(cursor);
        match second {
            Some(second) => Ok([first, second]),
            None => {
                let _ = self.alloc.free_now(first, 1);
                Err(FsError::NoSpace)
            }
        }
    }

    /// Writes the checkpoint of the namespace with `bitmap` (`data_used` blocks) whose
    /// roots go at `roots` (given back if it fails).
    fn write_checkpoint_at(
        &mut self,
        clean: bool,
        roots: [u64; 2],
        bitmap: &[u8],
        data_used: u64,
    ) -> FsResult<()> {
        let head = CheckpointImage {
            bitmap: bitmap.to_vec(),
            snapshots: self.snaps.table.clone(),
            snapshot_union: self.snaps.union.clone(),
            next_snapshot: self.snaps.next_id,
            ..CheckpointImage::default()
        };
        let plan = self.plan_blob(&head);
        drop(head);
        let written = self.write_planned_checkpoint(clean, roots, &plan, data_used);
        match &written {
            Ok(()) => self.keep_segment_pages(&plan),
            // What the segments hold on disk is the last checkpoint's again, which the
            // pages planned here may not be: encode every segment next time.
            Err(_) => self.segment_pages.clear(),
        }
        written
    }

    /// [`Volume::write_checkpoint_at`] of the blob `plan`.
    fn write_planned_checkpoint(
        &mut self,
        clean: bool,
        roots: [u64; 2],
        plan: &BlobPlan,
        data_used: u64,
    ) -> FsResult<()> {
        let copies = self.place_checkpoint_copies(plan, roots)?;
        let ds = self.sb.data_start;
        let new_runs = checkpoint_runs(&copies, ds);
        let ckpt_blocks = new_runs.iter().map(|r| r.1).sum::<u64>();
        let snapshot_blocks = self
            .snaps
            .runs_beside(&new_runs)
            .iter()
            .map(|r| r.1)
            .sum::<u64>()
            + self.snaps.held_blocks;
        let result = self.write_checkpoint(
            &plan.fresh,
            &copies,
            data_used + ckpt_blocks + snapshot_blocks,
            clean,
        );
        if let Err(e) = result {
            for c in &copies {
                for &(s, n) in &c.allocated {
                    let _ = self.alloc.free_now(s, n);
                }
            }
            return Err(e);
        }
        // The checkpoint is durable: memory must now say what the disk says, whatever
        // the allocator answers. A free it refuses (a double free: memory no longer
        // matches the image) stops all further writing instead of failing this
        // checkpoint half recorded.
        let mut refused: Option<FsError> = None;
        let mut free = |alloc: &mut crate::alloc::Allocator, s: u64, n: u64| {
            if let Err(e) = alloc.free_now(s, n) {
                refused.get_or_insert(e);
            }
        };
        // The runs the old checkpoint held that the new one does not name again.
        let kept: HashSet<(u64, u64)> = new_runs.iter().copied().collect();
        for run in std::mem::take(&mut self.ckpt_runs) {
            if !kept.contains(&run) && !self.snaps.names_run(&run) {
                free(&mut self.alloc, run.0, run.1);
            }
        }
        // What a deleted snapshot alone held: the checkpoint just written no longer
        // names it.
        for (s, n) in std::mem::take(&mut self.snaps.after_checkpoint) {
            if !kept.contains(&(s, n)) {
                for b in s..s + n {
                    self.cache.invalidate(BlockNo::new(ds + b));
                }
                free(&mut self.alloc, s, n);
            }
        }
        if let Err(e) = self.alloc.release_pending() {
            refused.get_or_insert(e);
        }
        if let Some(e) = refused {
            tracing::error!("after a durable checkpoint, a free was refused: {e}");
            self.failed
                .get_or_insert_with(|| format!("a free refused after a checkpoint: {e}"));
        }
        self.ckpt_runs = new_runs;
        for (copy, place) in copies.iter().enumerate() {
            let mut set = PageSet::of(&place.pages);
            for p in &place.table_pages {
                set.insert(*p);
            }
            self.ckpt_pages[copy] = set;
        }
        self.counters.checkpoint_pages_written +=
            copies.iter().map(|c| c.fresh.len() as u64).sum::<u64>();
        self.counters.checkpoint_table_pages_written += copies
            .iter()
            .map(|c| c.fresh_table.len() as u64)
            .sum::<u64>();
        self.counters.checkpoint_pages_kept += copies
            .iter()
            .map(|c| (c.pages.len() - c.fresh.len()) as u64)
            .sum::<u64>();
        self.journal.restart(self.sb.generation);
        self.journal.discard_pending();
        self.counters.checkpoints += 1;
        self.clean_on_disk = clean;
        self.changed = false;
        Ok(())
    }

    /// Forgets which pages the current checkpoint's copies hold, so that the next
    /// checkpoint writes both copies whole (after damage was found in one).
    pub(super) fn rewrite_every_checkpoint_page(&mut self) {
        self.ckpt_pages = Default::default();
        // No segment's pages are held by both copies any more.
        self.segment_pages.clear();
    }

    /// Room for the two copies of a checkpoint whose blob is cut into `cut`, the second
    /// as far from the first as free space allows (half the area away, where possible).
    fn place_checkpoint_copies(
        &mut self,
        plan: &BlobPlan,
        roots: [u64; 2],
    ) -> FsResult<Vec<CheckpointPlace>> {
        let mut copies: Vec<CheckpointPlace> = Vec::with_capacity(2);
        let cursor = self.alloc.cursor();
        for (copy, root) in roots.into_iter().enumerate() {
            if copy > 0 {
                self.alloc.set_cursor(self.alloc.far_from(roots[0]));
            }
            let mut place = CheckpointPlace {
                root,
                allocated: vec![(root, 1)],
                ..CheckpointPlace::default()
            };
            if let Err(e) = self.place_copy(copy, plan, &mut place) {
                for c in copies.iter().chain([&place]) {
                    for &(s, n) in &c.allocated {
                        let _ = self.alloc.free_now(s, n);
                    }
                }
                self.alloc.set_cursor(cursor);
                tracing::debug!(copy, "no room for a checkpoint copy");
                return Err(e);
            }
            copies.push(place);
        }
        // Data goes on where it was going.
        self.alloc.set_cursor(cursor);
        Ok(copies)
    }

    /// Places copy `copy` (its root given): each page (where this copy already holds one of
    /// the same identity, or in a new run; in single blocks when no run is long enough),
    /// its page table in pages of its own the same way, and the page index naming those.
    fn place_copy(
        &mut self,
        copy: usize,
        plan: &BlobPlan,
        place: &mut CheckpointPlace,
    ) -> FsResult<()> {
        let mut placed = PageSet::default();
        let mut pages = Vec::with_capacity(plan.pages.len());
        let mut fresh = Vec::new();
        for page in &plan.pages {
            if page.kept {
                // Planned only where both copies hold it (its bytes are not at hand): named
                // where this copy has it, nothing to remember.
                let Some(entry) = self.ckpt_pages[copy].find(&page.hash, page.len) else {
                    debug_assert!(false, "a kept checkpoint page is missing from copy {copy}");
                    return Err(FsError::corrupt(
                        "a kept checkpoint page is missing from its copy",
                    ));
                };
                pages.push(entry);
                continue;
            }
            let to = (&mut pages, &mut fresh, &mut place.allocated);
            self.place_page(copy, &mut placed, page, &plan.fresh, to)?;
        }
        place.pages = pages;
        place.fresh = fresh;
        // The table in content-defined pages: a checkpoint that changed a few pages
        // writes the table pages naming them, not the whole table.
        place.table = encode_page_table(plan.len, &place.pages);
        let keys = self.keys.clone();
        let (mut table_pages, mut fresh_table) = (Vec::new(), Vec::new());
        for page in cut_table_pages(&place.table, keys.as_deref()) {
            let to = (&mut table_pages, &mut fresh_table, &mut place.allocated);
            self.place_page(copy, &mut placed, &page, &place.table, to)?;
        }
        place.index = encode_page_index(place.table.len() as u64, &table_pages);
        place.table_pages = table_pages;
        place.fresh_table = fresh_table;
        let blocks = (place.index.len() as u64).div_ceil(BLOCK_SIZE as u64);
        let runs = self
            .alloc
            .alloc_scattered(blocks, CheckpointRoot::MAX_EXTENTS)
            .ok_or(FsError::NoSpace)?;
        place.allocated.extend(&runs);
        place.index_runs = runs;
        Ok(())
    }

    /// Places `page` of `bytes` in copy `copy`: where the copy already holds (or this
    /// checkpoint placed) a page of its identity, else in a new run, else as single-block
    /// pieces. Pushes what names it, what to write and what was allocated onto `to`.
    #[allow(clippy::type_complexity)]
    fn place_page(
        &mut self,
        copy: usize,
        placed: &mut PageSet,
        page: &CutPage,
        bytes: &[u8],
        to: (
            &mut Vec<PageEntry>,
            &mut Vec<(u64, CutPage)>,
            &mut Vec<(u64, u64)>,
        ),
    ) -> FsResult<()> {
        let (named, fresh, allocated) = to;
        let ds = self.sb.data_start;
        if let Some(entry) = self.find_page(copy, placed, page) {
            placed.insert(entry);
            named.push(entry);
            return Ok(());
        }
        if let Some(start) = self.alloc.alloc(page.blocks()) {
            allocated.push((start, page.blocks()));
            let entry = page.entry(ds + start);
            fresh.push((entry.block, *page));
            placed.insert(entry);
            named.push(entry);
            return Ok(());
        }
        // No run is long enough: the page goes as single-block pieces.
        for piece in page.pieces(bytes, self.keys.as_deref()) {
            let entry = match self.find_page(copy, placed, &piece) {
                Some(entry) => entry,
                None => {
                    let start = self.alloc.alloc(1).ok_or(FsError::NoSpace)?;
                    allocated.push((start, 1));
                    let entry = piece.entry(ds + start);
                    fresh.push((entry.block, piece));
                    entry
                }
            };
            placed.insert(entry);
            named.push(entry);
        }
        Ok(())
    }

    /// Where a page of `page`'s identity already lies: placed by this checkpoint, or held
    /// by this copy of the current one.
    fn find_page(&self, copy: usize, placed: &PageSet, page: &CutPage) -> Option<PageEntry> {
        placed
            .find(&page.hash, page.len)
            .or_else(|| self.ckpt_pages[copy].find(&page.hash, page.len))
    }

    /// Writes each copy's new pages, page table and root, flushes, then the superblocks
    /// that point at both; `used_blocks` counts data and both checkpoint copies.
    fn write_checkpoint(
        &mut self,
        blob: &[u8],
        copies: &[CheckpointPlace],
        used_blocks: u64,
        clean: bool,
    ) -> FsResult<()> {
        debug_assert_eq!(copies.len(), 2);
        let ds = self.sb.data_start;
        let gen = self.sb.generation + 1;
        for copy in copies {
            let mut chunk = Vec::new();
            let fresh = copy.fresh.iter().map(|f| (f, blob));
            let fresh_table = copy.fresh_table.iter().map(|f| (f, &copy.table[..]));
            for ((block, page), bytes) in fresh.chain(fresh_table) {
                let stored = page.stored(bytes, self.keys.as_deref());
                self.dev
                    .write_at(&stored, BlockNo::new(*block).byte_offset())?;
            }
            let mut table = copy.index.clone();
            if let Some(k) = &self.keys {
                let mac = super::checkpoint_load::page_table_mac(k, gen, &table);
                table[gpufs_format::pages::PAGE_TABLE_MAC].copy_from_slice(&mac);
            }
            let table = &table;
            let mut off = 0usize;
            for &(s, n) in &copy.index_runs {
                let len = (n as usize * BLOCK_SIZE).min(table.len() - off);
                chunk.clear();
                chunk.extend_from_slice(&table[off..off + len]);
                chunk.resize(n as usize * BLOCK_SIZE, 0);
                self.dev
                    .write_at(&chunk, BlockNo::new(ds + s).byte_offset())?;
                off += len;
            }
            let abs_runs: Vec<(u64, u64)> =
                copy.index_runs.iter().map(|&(s, n)| (ds + s, n)).collect();
            let root = CheckpointRoot {
                magic: CKPT_MAGIC,
                version: FORMAT_VERSION,
                extent_count: 0,
                generation: gen,
                blob_len: table.len() as u64,
                blob_checksum: checksum(table),
                checksum: 0,
            }
            .encode(&abs_runs)?;
            self.dev
                .write_at(&root, BlockNo::new(ds + copy.root).byte_offset())?;
        }
        self.dev.flush()?;

        let (head, seq) = self.journal.position();
        let sb = Superblock {
            generation: gen,
            journal_head: head,
            journal_seq: seq,
            checkpoint_root: ds + copies[0].root,
            checkpoint_root_copy: ds + copies[1].root,
            used_blocks: used_blocks + self.fixed_metadata_blocks(),
            inode_count: self.ns.live_inodes(),
            checkpoint_ns: now_ns(),
            flags: if clean {
                self.sb.flags | Superblock::FLAG_CLEAN
            } else {
                self.sb.flags & !Superblock::FLAG_CLEAN
            },
            ..self.sb
        };
        self.store_superblocks(sb)
    }
}

/// Where one copy of a checkpoint goes (blocks relative to the data area unless said).
#[derive(Default)]
struct CheckpointPlace {
    root: u64,
    /// Runs of its page index.
    index_runs: Vec<(u64, u64)>,
    /// Its pages in blob order (absolute blocks), new and kept.
    pages: Vec<PageEntry>,
    /// The pages to write: (absolute block, the page).
    fresh: Vec<(u64, CutPage)>,
    /// Everything allocated for it, given back if the checkpoint fails.
    allocated: Vec<(u64, u64)>,
    /// The encoded page table (naming `pages`).
    table: Vec<u8>,
    /// The pages holding `table`, in order (absolute blocks), and those to write.
    table_pages: Vec<PageEntry>,
    fresh_table: Vec<(u64, CutPage)>,
    /// The encoded page index (naming `table_pages`): what the root points at.
    index: Vec<u8>,
}

/// Every run (relative to the data area) the copies of a checkpoint take, each once.
fn checkpoint_runs(copies: &[CheckpointPlace], ds: u64) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = copies
        .iter()
        .flat_map(|c| {
            c.index_runs.iter().copied().chain([(c.root, 1)]).chain(
                c.pages
                    .iter()
                    .chain(&c.table_pages)
                    .map(|p| (p.block - ds, p.blocks())),
            )
        })
        .collect();
    runs.sort_unstable();
    runs.dedup();
    runs
}

/// Writes both superblock slots, the one this generation owns first, with a flush after
/// each: a power cut can tear at most one of them.
pub(crate) fn write_superblocks(dev: &dyn Device, sb: &Superblock) -> FsResult<()> {
    let bytes = sb.encode();
    let first = (sb.generation % 2) as usize;
    for slot in [first, 1 - first] {
        dev.write_at(&bytes, SUPERBLOCK_SLOTS[slot] * BLOCK_SIZE as u64)?;
        // The far slot goes with the second: a torn write leaves the first whole.
        if slot != first && sb.far_slot != 0 {
            dev.write_at(&bytes, sb.far_slot * BLOCK_SIZE as u64)?;
        }
        dev.flush()?;
    }
    Ok(())
}
