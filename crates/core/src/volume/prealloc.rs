//! Space fallocate reserves. A copy-on-write filesystem cannot pin the blocks a later
//! write will use, so a reservation is a count, per file (`prealloc_blocks` in its
//! inode, format v4), of blocks kept back from every other writer: statfs counts them as
//! used, allocation leaves them alone, and the file's own writes draw on them before
//! they need free space. A file's reservation never exceeds what its holes (below its
//! size, or the end fallocate asked for) would take written; truncation trims it, and
//! freeing the inode gives it back.

use gpufs_format::{InodeRecord, JournalOp, BLOCK_SIZE};

use super::Volume;
use crate::error::{FsError, FsResult};
use crate::units::{FileOffset, Ino, RecordIndex};

impl Volume {
    /// Blocks `ino` has reserved.
    pub fn prealloc_of(&self, ino: Ino) -> u64 {
        self.inode(ino).map_or(0, |r| u64::from(r.prealloc_blocks))
    }

    /// Blocks the records of `ino` touching bytes `from..to` that are holes (neither
    /// stored nor buffered) would take written, each as long as the file would be at
    /// `limit` bytes, with every copy its policy asks for.
    pub fn hole_blocks(&self, ino: Ino, from: u64, to: u64, limit: u64) -> u64 {
        let geo = self.geometry();
        let block = BLOCK_SIZE as u64;
        let copies = u64::from(self.policy_of(ino).copies);
        let mut blocks = 0;
        let touched = geo.records_touching(FileOffset::new(from), FileOffset::new(to));
        for index in (touched.start.get()..touched.end.get()).map(RecordIndex::new) {
            let present =
                self.record(ino, index).is_some() || self.dirty_record(ino, index).is_some();
            let start = geo.start_of(index).get();
            if present || start >= limit {
                continue;
            }
            let len = geo.record_size().min(limit - start);
            blocks += len.div_ceil(block);
        }
        blocks * copies
    }

    /// Reserves room for the holes of `ino` in `from..to` (the file `limit` bytes long
    /// then): its reservation grows by what they take, up to what all its holes below
    /// `limit` take. Fails with ENOSPC, reserving nothing, when the space is not there.
    pub fn preallocate(&mut self, ino: Ino, from: u64, to: u64, limit: u64) -> FsResult<()> {
        let rec = *self.inode(ino).ok_or(FsError::NotFound)?;
        let have = u64::from(rec.prealloc_blocks);
        let bound = self.hole_blocks(ino, 0, limit, limit);
        let want = (have + self.hole_blocks(ino, from, to, limit)).min(bound);
        if want <= have {
            return Ok(());
        }
        let want = u32::try_from(want).map_err(|_| FsError::NoSpace)?;
        self.ensure_space(u64::from(want) - have)?;
        self.set_prealloc(ino, rec, want)
    }

    /// After `ino` was cut to `size` bytes: its reservation is trimmed to what its holes
    /// below `size` take.
    pub fn trim_prealloc(&mut self, ino: Ino, size: u64) -> FsResult<()> {
        let Some(&rec) = self.inode(ino) else {
            return Ok(());
        };
        if rec.prealloc_blocks == 0 {
            return Ok(());
        }
        let bound = self.hole_blocks(ino, 0, size, size);
        if u64::from(rec.prealloc_blocks) <= bound {
            return Ok(());
        }
        // Fits: below the value it replaces.
        self.set_prealloc(ino, rec, bound as u32)
    }

    /// Takes up to `blocks` of `ino`'s reservation for a write of its own; returns how
    /// many were taken (they leave the reserve; the caller holds them from now on).
    pub(super) fn take_prealloc(&mut self, ino: Ino, blocks: u64) -> FsResult<u64> {
        let Some(&rec) = self.inode(ino) else {
            return Ok(0);
        };
        let take = blocks.min(u64::from(rec.prealloc_blocks));
        if take > 0 {
            // `take` is at most the u32 it comes from.
            self.set_prealloc(ino, rec, rec.prealloc_blocks - take as u32)?;
        }
        Ok(take)
    }

    fn set_prealloc(&mut self, ino: Ino, rec: InodeRecord, blocks: u32) -> FsResult<()> {
        self.apply(JournalOp::InodePut {
            ino: ino.get(),
            rec: InodeRecord {
                prealloc_blocks: blocks,
                ..rec
            },
        })
    }
}
