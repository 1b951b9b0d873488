//! Scrub of a mounted filesystem (`gpufs scrub`): every copy of the metadata, then every
//! copy of every data record in disk order, verified; a bad copy with a good one beside
//! it is rewritten from it, and a record with no good copy is reported with its file's
//! path and the bytes lost. The volume lock is taken one batch at a time, so the
//! filesystem stays in use; an interrupted scrub resumes at the block where it stopped,
//! after a remount too (the superblock keeps the block).

use std::collections::BTreeMap;

use gpufs_compute::kernels::path_build::path_of;

use super::Filesystem;
use crate::error::FsResult;
use crate::units::{Ino, RecordIndex};
use crate::volume::MetadataScrub;

/// Records verified per hold of the volume lock.
const BATCH_RECORDS: usize = 128;
/// Bytes verified per hold of the volume lock.
const BATCH_BYTES: u64 = 8 << 20;

/// How far a scrub has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrubProgress {
    pub records_done: u64,
    pub records_total: u64,
    /// Stored bytes read (every copy).
    pub bytes_read: u64,
}

/// A file with records no copy of which is good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedFile {
    pub ino: u64,
    /// A path to it from the root (empty when it has no name: open and unlinked).
    pub path: Vec<u8>,
    /// Byte ranges `start..end` that read as EIO.
    pub ranges: Vec<(u64, u64)>,
}

/// What a scrub found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    pub metadata: MetadataScrub,
    pub progress: ScrubProgress,
    /// Damaged copies of records found.
    pub damaged_copies: u64,
    /// Of them, rewritten from a good copy.
    pub repaired_copies: u64,
    pub unrepaired: Vec<DamagedFile>,
    /// The block this scrub started from (0 unless it resumed an interrupted one).
    pub resumed_from: u64,
    /// False when `keep_going` stopped it; the next scrub resumes.
    pub finished: bool,
}

impl ScrubReport {
    /// Was anything found damaged (repaired or not)?
    pub fn found_damage(&self) -> bool {
        !self.metadata.damaged.is_empty()
            || !self.metadata.unrepaired.is_empty()
            || self.damaged_copies > 0
            || !self.unrepaired.is_empty()
    }

    /// Is anything left damaged?
    pub fn unrepaired_damage(&self) -> bool {
        !self.unrepaired.is_empty()
            || !self.metadata.unrepaired.is_empty()
            || (!self.metadata.damaged.is_empty() && !self.metadata.repaired)
            || self.repaired_copies < self.damaged_copies
    }
}

impl Filesystem {
    /// Scrubs the filesystem: metadata first, then every record from the block where an
    /// interrupted scrub stopped (or from the start with `restart`). `keep_going` is
    /// called after each batch with the progress; when it says stop, the scrub stops
    /// there and the next one resumes.
    pub fn scrub(
        &self,
        restart: bool,
        keep_going: &mut dyn FnMut(&ScrubProgress) -> bool,
    ) -> FsResult<ScrubReport> {
        let mut report = ScrubReport::default();
        let mut todo: Vec<(u64, Ino, RecordIndex)> = {
            let mut g = self.lock();
            if restart {
                g.vol.set_scrub_cursor(0);
            }
            report.resumed_from = g.vol.scrub_cursor();
            report.metadata = g.vol.scrub_metadata()?;
            let from = g.vol.scrub_cursor();
            g.vol
                .namespace()
                .all_extents()
                .filter(|(_, _, p)| p.block >= from)
                .map(|(ino, index, p)| (p.block, Ino::new(ino), RecordIndex::new(index)))
                .collect()
        };
        todo.sort_unstable();
        report.progress.records_total = todo.len() as u64;
        let mut lost: BTreeMap<Ino, Vec<(u64, u64)>> = BTreeMap::new();
        let mut buf = Vec::new();
        let mut at = 0;
        // A shared record (clones, dedup) is verified once: its other pointers follow
        // it in block order and take its result (the block, and whether it was lost).
        let mut last: Option<(u64, bool)> = None;
        while at < todo.len() {
            let mut g = self.lock();
            let geo = g.vol.geometry();
            let mut bytes = 0;
            let start = at;
            while at < todo.len() && at - start < BATCH_RECORDS && bytes < BATCH_BYTES {
                let (block, ino, index) = todo[at];
                at += 1;
                // The record may have been rewritten or dropped since the list was made.
                let Some(ptr) = g.vol.record(ino, index).copied() else {
                    continue;
                };
                if ptr.block != block {
                    continue;
                }
                if let Some((b, was_lost)) = last {
                    if b == block {
                        if was_lost {
                            let from = geo.start_of(index).get();
                            lost.entry(ino)
                                .or_default()
                                .push((from, from + u64::from(ptr.logical_len)));
                        }
                        continue;
                    }
                }
                last = Some((block, false));
                bytes += ptr.total_blocks() * gpufs_format::BLOCK_SIZE as u64;
                match g.vol.verify_record(&ptr, &mut buf) {
                    Ok(healing) if healing.bad.is_empty() => {}
                    Ok(healing) => {
                        report.damaged_copies += healing.bad.len() as u64;
                        if g.vol.heal(ino, index, &healing) {
                            report.repaired_copies += healing.bad.len() as u64;
                        }
                    }
                    Err(e) => {
                        tracing::error!(%ino, %index, "scrub: no good copy: {e:?}");
                        last = Some((block, true));
                        report.damaged_copies += ptr.runs().count() as u64;
                        let from = geo.start_of(index).get();
                        lost.entry(ino)
                            .or_default()
                            .push((from, from + u64::from(ptr.logical_len)));
                    }
                }
            }
            report.progress.records_done = at as u64;
            report.progress.bytes_read += bytes;
            g.vol.set_scrub_cursor(todo.get(at).map_or(0, |t| t.0));
            drop(g);
            if at < todo.len() && !keep_going(&report.progress) {
                report.unrepaired = self.named(lost);
                return Ok(report);
            }
        }
        self.lock().vol.set_scrub_cursor(0);
        keep_going(&report.progress);
        report.unrepaired = self.named(lost);
        report.finished = true;
        Ok(report)
    }

    /// The damaged files with a path each.
    fn named(&self, lost: BTreeMap<Ino, Vec<(u64, u64)>>) -> Vec<DamagedFile> {
        if lost.is_empty() {
            return Vec::new();
        }
        let g = self.lock();
        let ns = g.vol.namespace();
        let view = ns.view();
        let mut paths: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for (id, d) in ns.live_dirents() {
            if lost.contains_key(&Ino::new(d.ino)) && !paths.contains_key(&d.ino) {
                let mut p = Vec::new();
                path_of(&view, id, &mut p);
                paths.insert(d.ino, p);
            }
        }
        lost.into_iter()
            .map(|(ino, ranges)| DamagedFile {
                ino: u64::from(ino),
                path: paths.remove(&ino.get()).unwrap_or_default(),
                ranges,
            })
            .collect()
    }
}
