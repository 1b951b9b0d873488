//! Scrub of a mounted filesystem (`gpufs scrub`): every copy of the metadata, then every
//! copy of every data record in disk order — the live filesystem's and those only
//! snapshots still hold — verified; a bad copy with a good one beside it is rewritten
//! from it, and a record with no good copy is reported with its file's path (under
//! `/.gpufs/snapshots/NAME` for a snapshot's) and the bytes lost. The volume lock is taken one batch at a time, so the
//! filesystem stays in use; an interrupted scrub resumes at the block where it stopped,
//! after a remount too (the superblock keeps the block).

use std::collections::{BTreeMap, HashSet};

use gpufs_compute::kernels::path_build::path_of;
use gpufs_format::RecordPtr;

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

/// A record to verify: the live filesystem's (found again by file and index, since it
/// may move while the scrub runs), or one only snapshot `snapshot` holds (it cannot
/// move: verified while that snapshot exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    Live(Ino, RecordIndex),
    Kept {
        snapshot: u64,
        ino: u32,
        index: u64,
        ptr: RecordPtr,
    },
}

/// Byte ranges lost in one file.
type Ranges = Vec<(u64, u64)>;
/// Lost ranges by file: live files by inode, snapshot files by (snapshot, inode).
type Lost = BTreeMap<(Option<u64>, u32), Ranges>;

impl Filesystem {
    /// The records only snapshots hold (no live pointer names their block), from `from`
    /// on, each once: loaded from every snapshot's namespace (one at a time).
    fn kept_records(&self, from: u64, live: &HashSet<u64>) -> Vec<(u64, Item)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (id, _) in self.snapshot_names() {
            // A snapshot whose checkpoint cannot be read: the metadata scrub reports it.
            let Ok(view) = self.snapshot_view(id) else {
                continue;
            };
            for (ino, index, ptr) in view.ns.all_extents() {
                if ptr.block >= from && !live.contains(&ptr.block) && seen.insert(ptr.block) {
                    let item = Item::Kept {
                        snapshot: id,
                        ino,
                        index,
                        ptr: *ptr,
                    };
                    out.push((ptr.block, item));
                }
            }
        }
        out
    }

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
        let (from, mut todo, live) = {
            let mut g = self.lock();
            if restart {
                g.vol.set_scrub_cursor(0);
            }
            report.resumed_from = g.vol.scrub_cursor();
            report.metadata = g.vol.scrub_metadata()?;
            let from = g.vol.scrub_cursor();
            let ns = g.vol.namespace();
            let todo: Vec<(u64, Item)> = ns
                .all_extents()
                .filter(|(_, _, p)| p.block >= from)
                .map(|(ino, index, p)| {
                    let item = Item::Live(Ino::new(ino), RecordIndex::new(index));
                    (p.block, item)
                })
                .collect();
            let live: HashSet<u64> = ns.all_extents().map(|(_, _, p)| p.block).collect();
            (from, todo, live)
        };
        todo.extend(self.kept_records(from, &live));
        drop(live);
        todo.sort_by_key(|(block, _)| *block);
        report.progress.records_total = todo.len() as u64;
        let mut lost: Lost = BTreeMap::new();
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
                let (block, item) = todo[at];
                at += 1;
                let (ptr, owner, ino, index) = match item {
                    // The record may have been rewritten or dropped since the list was
                    // made.
                    Item::Live(ino, index) => match g.vol.record(ino, index).copied() {
                        Some(ptr) if ptr.block == block => (ptr, None, ino, index),
                        _ => continue,
                    },
                    // Its blocks are held while the snapshot exists, and only then.
                    Item::Kept {
                        snapshot,
                        ino,
                        index,
                        ptr,
                    } => {
                        if !g.vol.snapshot_records().iter().any(|s| s.id == snapshot) {
                            continue;
                        }
                        (ptr, Some(snapshot), Ino::new(ino), RecordIndex::new(index))
                    }
                };
                let range = || {
                    let from = geo.start_of(index).get();
                    (from, from + u64::from(ptr.logical_len))
                };
                if let Some((b, was_lost)) = last {
                    if b == block {
                        if was_lost {
                            lost.entry((owner, ino.get())).or_default().push(range());
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
                        tracing::error!(%ino, %index, ?owner, "scrub: no good copy: {e:?}");
                        last = Some((block, true));
                        report.damaged_copies += ptr.runs().count() as u64;
                        lost.entry((owner, ino.get())).or_default().push(range());
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

    /// The damaged files with a path each (a snapshot's under
    /// `/.gpufs/snapshots/NAME`).
    fn named(&self, lost: Lost) -> Vec<DamagedFile> {
        let mut out = Vec::new();
        let mut by_owner: BTreeMap<Option<u64>, Vec<(u32, Ranges)>> = BTreeMap::new();
        for ((owner, ino), ranges) in lost {
            by_owner.entry(owner).or_default().push((ino, ranges));
        }
        for (owner, files) in by_owner {
            let (prefix, paths) = match owner {
                None => {
                    let g = self.lock();
                    (Vec::new(), paths_of(g.vol.namespace(), &files))
                }
                Some(id) => {
                    let name = self
                        .snapshot_names()
                        .into_iter()
                        .find(|(i, _)| *i == id)
                        .map(|(_, n)| n)
                        .unwrap_or_default();
                    let mut prefix = b"/.gpufs/snapshots/".to_vec();
                    prefix.extend_from_slice(&name);
                    let paths = match self.snapshot_view(id) {
                        Ok(view) => paths_of(&view.ns, &files),
                        Err(_) => BTreeMap::new(),
                    };
                    (prefix, paths)
                }
            };
            let mut paths = paths;
            for (ino, ranges) in files {
                let path = paths.remove(&ino).map_or_else(Vec::new, |p| {
                    let mut whole = prefix.clone();
                    whole.extend_from_slice(&p);
                    whole
                });
                out.push(DamagedFile {
                    ino: u64::from(ino),
                    path,
                    ranges,
                });
            }
        }
        out
    }
}

/// A path to each of `files` in `ns`.
fn paths_of(ns: &crate::namespace::Namespace, files: &[(u32, Ranges)]) -> BTreeMap<u32, Vec<u8>> {
    let mut paths = BTreeMap::new();
    if files.is_empty() {
        return paths;
    }
    let want: HashSet<u32> = files.iter().map(|(i, _)| *i).collect();
    let view = ns.view();
    for (id, d) in ns.live_dirents() {
        if want.contains(&d.ino) && !paths.contains_key(&d.ino) {
            let mut p = Vec::new();
            path_of(&view, id, &mut p);
            paths.insert(d.ino, p);
        }
    }
    paths
}
