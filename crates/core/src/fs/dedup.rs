//! Offline deduplication (`gpufs dedup PATH...`): the records of the files under the
//! given paths are hashed (the hash a pointer carries where dedup was on, else BLAKE3 of
//! the record's logical bytes, read and verified), grouped by hash, and every record of
//! a group is made to share one of them. Before each share both records are read again
//! under the volume lock and compared byte for byte, and the pointer must still be the
//! one that was hashed: a file that changed meanwhile is left as it is. The lock is
//! taken one batch at a time, so the filesystem stays in use. Works on any gpufs
//! filesystem, whatever the `dedup` property says.

use std::collections::HashMap;

use gpufs_compute::kernels::blake3::{hash_one, Blake3Mode};
use gpufs_format::{FileKind, RecordPtr};

use super::{Filesystem, Inner};
use crate::error::FsResult;
use crate::units::{Ino, RecordIndex};

/// Records hashed (or compared and shared) per hold of the volume lock.
const BATCH_RECORDS: usize = 128;

/// How far a dedup has come: records hashed, then records compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupProgress {
    pub records_done: u64,
    pub records_total: u64,
    /// Logical bytes read to hash records that carried no hash.
    pub bytes_hashed: u64,
}

/// What a dedup did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupReport {
    pub files: u64,
    pub records: u64,
    /// Records that now share another record instead of holding their own.
    pub shared: u64,
    /// Records left alone because their file changed while the dedup ran.
    pub changed: u64,
    /// Bytes of the device given back (used space before minus after).
    pub bytes_reclaimed: u64,
    pub progress: DedupProgress,
}

/// One record seen by the hashing pass.
#[derive(Clone, Copy)]
struct Seen {
    ino: Ino,
    index: RecordIndex,
    ptr: RecordPtr,
}

impl Inner {
    /// Every regular file at or below `roots`, each once.
    pub(super) fn files_under(&self, roots: &[Ino]) -> Vec<Ino> {
        let ns = self.vol.namespace();
        let mut files = Vec::new();
        let mut stack: Vec<u32> = roots.iter().map(|i| i.get()).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            match ns.inode(ino).and_then(|r| r.kind()) {
                Some(FileKind::Regular) => files.push(Ino::new(ino)),
                Some(FileKind::Directory) => stack.extend(
                    ns.entries_after(ino, 0)
                        .map(|(_, id)| ns.dirent(id).ino)
                        .collect::<Vec<_>>(),
                ),
                _ => {}
            }
        }
        files.sort_unstable();
        files
    }

    /// The logical bytes of a record, when `seen` is still what it holds.
    fn current_bytes(&mut self, seen: &Seen) -> FsResult<Option<std::sync::Arc<Vec<u8>>>> {
        if self.vol.record(seen.ino, seen.index) != Some(&seen.ptr) {
            return Ok(None);
        }
        self.vol.read_record(seen.ino, seen.index)
    }
}

/// The key records are grouped by: the first 16 bytes of their BLAKE3.
fn group_key(hash: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(&hash[..16]);
    k
}

impl Filesystem {
    /// Device bytes (every copy, whole blocks) of the records of the files at or below
    /// `dir` that more than one pointer refers to (clones, dedup), each record counted
    /// once: how much of `du`'s physical size is shared.
    pub fn shared_bytes_under(&self, dir: u64) -> FsResult<u64> {
        let g = self.lock();
        let dir = Ino::from_kernel(dir)?;
        g.inode(dir)?;
        let shared = g.vol.namespace().shared_records();
        let mut seen = std::collections::HashSet::new();
        let mut bytes = 0u64;
        for f in g.files_under(&[dir]) {
            for (_, p) in g.vol.records(f) {
                if shared.contains_key(&p.block) && seen.insert(p.block) {
                    bytes += p.total_blocks() * gpufs_format::BLOCK_SIZE as u64;
                }
            }
        }
        Ok(bytes)
    }

    /// Deduplicates the records of every file at or below `roots` (inode numbers).
    /// `keep_going` is called after each batch; when it says stop, the dedup stops there
    /// (what it shared stays shared).
    pub fn dedup(
        &self,
        roots: &[u64],
        keep_going: &mut dyn FnMut(&DedupProgress) -> bool,
    ) -> FsResult<DedupReport> {
        let mut report = DedupReport::default();
        let (work, used_before) = {
            let mut g = self.lock();
            g.writable()?;
            let roots: Vec<Ino> = roots
                .iter()
                .map(|&r| Ino::from_kernel(r))
                .collect::<FsResult<_>>()?;
            let files = g.files_under(&roots);
            for &f in &files {
                g.vol.flush_dirty_of(f)?;
            }
            let work: Vec<Seen> = files
                .iter()
                .flat_map(|&ino| {
                    g.vol.records(ino).iter().map(move |(i, p)| Seen {
                        ino,
                        index: RecordIndex::new(*i),
                        ptr: *p,
                    })
                })
                .collect();
            report.files = files.len() as u64;
            (work, g.vol.data_blocks() - g.vol.available_blocks())
        };
        report.records = work.len() as u64;
        report.progress.records_total = 2 * work.len() as u64;

        // Pass 1: group by hash.
        let mut groups: HashMap<[u8; 16], Vec<Seen>> = HashMap::new();
        for batch in work.chunks(BATCH_RECORDS) {
            let mut g = self.lock();
            for s in batch {
                let hash = match s.ptr.dedup_key() {
                    Some(k) => k,
                    None => match g.current_bytes(s)? {
                        Some(bytes) => {
                            report.progress.bytes_hashed += bytes.len() as u64;
                            group_key(&hash_one(&bytes, &Blake3Mode::Hash))
                        }
                        None => {
                            report.changed += 1;
                            continue;
                        }
                    },
                };
                groups.entry(hash).or_default().push(*s);
            }
            drop(g);
            report.progress.records_done += batch.len() as u64;
            if !keep_going(&report.progress) {
                return Ok(report);
            }
        }

        // Pass 2: in each group, every record shares the one with the most copies, and
        // among those the one shared most already (the first of equals).
        let mut pairs: Vec<(Seen, Seen)> = Vec::new();
        for members in groups.values_mut().filter(|m| m.len() > 1) {
            let mut refs: HashMap<u64, usize> = HashMap::new();
            for s in members.iter() {
                *refs.entry(s.ptr.block).or_default() += 1;
            }
            let rank = |s: &Seen| (s.ptr.runs().count(), refs[&s.ptr.block]);
            let mut keep = members[0];
            for s in members.iter().skip(1) {
                if rank(s) > rank(&keep) {
                    keep = *s;
                }
            }
            pairs.extend(
                members
                    .iter()
                    .filter(|s| s.ptr.block != keep.ptr.block)
                    .map(|s| (keep, *s)),
            );
        }
        report.progress.records_done = work.len() as u64 + (work.len() - pairs.len()) as u64;
        for batch in pairs.chunks(BATCH_RECORDS) {
            let mut g = self.lock();
            for (keep, other) in batch {
                let a = g.current_bytes(keep)?;
                let b = g.current_bytes(other)?;
                match (a, b) {
                    (Some(a), Some(b)) if a == b => {
                        g.vol.share_record(other.ino, other.index, keep.ptr)?;
                        report.shared += 1;
                    }
                    (Some(_), Some(_)) => {} // A hash collision of 16 bytes: not equal.
                    _ => report.changed += 1,
                }
            }
            g.maybe_commit()?;
            drop(g);
            report.progress.records_done += batch.len() as u64;
            if !keep_going(&report.progress) {
                break;
            }
        }
        let mut g = self.lock();
        g.vol.commit()?;
        let used_after = g.vol.data_blocks() - g.vol.available_blocks();
        report.bytes_reclaimed =
            used_before.saturating_sub(used_after) * gpufs_format::BLOCK_SIZE as u64;
        Ok(report)
    }
}
