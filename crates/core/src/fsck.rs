//! Offline consistency check: every checksum and every invariant of an image.
//!
//! It opens the image read-only (the journal is replayed in memory, nothing is written),
//! then checks: both superblock slots, the checkpoint's stored hashes and space
//! accounting, that every entry points at a live inode of its kind, link counts, that
//! every directory is reachable from the root, that no block is referenced twice or both
//! free and used, that record pointers fit their files, and the checksum of every record.

use std::collections::HashMap;
use std::sync::Arc;

use gpufs_format::{name_hash, FileKind, RecordPtr, ROOT_INO};

use crate::alloc::Allocator;
use crate::crypt::SealKeys;
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::records::RecordError;
use crate::units::{BlockNo, RecordIndex};
use crate::volume::{read_checkpoint, verify_checkpoint_copies, OpenOptions, Volume};

/// What fsck found.
#[derive(Clone, Debug, Default)]
pub struct FsckReport {
    /// Inconsistencies: anything here means the image is damaged.
    pub problems: Vec<String>,
    /// Conditions a read-write mount repairs by itself (a torn superblock slot, a journal
    /// to replay, orphaned inodes).
    pub warnings: Vec<String>,
    pub stats: FsckStats,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct FsckStats {
    pub inodes: u64,
    pub directories: u64,
    pub files: u64,
    pub records: u64,
    pub record_bytes: u64,
    pub used_blocks: u64,
    pub total_blocks: u64,
    pub replayed_transactions: u64,
    /// Pointers to records that another pointer refers to already (clones, dedup).
    pub shared_references: u64,
    /// Blocks fallocate reserved, over every file.
    pub prealloc_blocks: u64,
    /// Snapshots, each read and checked.
    pub snapshots: u64,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the image on `dev`.
pub fn check(dev: Arc<dyn Device>) -> FsResult<FsckReport> {
    check_with_progress(dev, None, &mut |_, _| {})
}

/// Like [`check`], calling `progress(done, total)` while verifying record checksums;
/// with a `holder` (this machine), an image another machine's marker says is mounted
/// there is refused ([`FsError::InUse`]): a filesystem changing under it cannot be
/// checked.
pub fn check_with_progress(
    dev: Arc<dyn Device>,
    holder: Option<gpufs_format::superblock::InUse>,
    progress: &mut dyn FnMut(u64, u64),
) -> FsResult<FsckReport> {
    check_with_keys(dev, None, holder, progress)
}

/// [`check_with_progress`] of an image that may be encrypted (`keys`: its keys).
pub fn check_with_keys(
    dev: Arc<dyn Device>,
    keys: Option<Arc<SealKeys>>,
    holder: Option<gpufs_format::superblock::InUse>,
    progress: &mut dyn FnMut(u64, u64),
) -> FsResult<FsckReport> {
    let mut report = FsckReport::default();
    let vol = match Volume::open_with_keys(
        dev.clone(),
        OpenOptions {
            read_only: true,
            holder,
            ..OpenOptions::default()
        },
        keys,
    ) {
        Ok(v) => v,
        Err(e @ (FsError::BadImage(_) | FsError::InUse(_) | FsError::Key(_))) => return Err(e),
        Err(e) => {
            report
                .problems
                .push(format!("cannot load the filesystem: {e}"));
            return Ok(report);
        }
    };
    report.warnings.extend(vol.notes().iter().cloned());
    report.stats.replayed_transactions = vol.counters().replayed_transactions;
    check_checkpoint_raw(dev.as_ref(), &vol, &mut report);
    check_namespace(&vol, &mut report);
    check_space(&vol, &mut report);
    check_records(&vol, &mut report, progress);
    Ok(report)
}

/// Stored name hashes and the superblock's space accounting, from the raw checkpoint.
fn check_checkpoint_raw(dev: &dyn Device, vol: &Volume, report: &mut FsckReport) {
    let sb = vol.superblock();
    let img = match read_checkpoint(dev, sb, vol.keys().map(|k| k.as_ref())) {
        Ok(img) => img,
        Err(e) => {
            report.problems.push(format!("checkpoint unreadable: {e}"));
            return;
        }
    };
    for d in &img.dirents {
        let s = d.name_offset as usize;
        if let Some(name) = img.names.get(s..s + d.name_len as usize) {
            if name_hash(d.parent, name) != d.name_hash {
                report.problems.push(format!(
                    "entry {:?} in directory {} has a wrong stored hash",
                    String::from_utf8_lossy(name),
                    d.parent
                ));
            }
        }
    }
    let bitmap_used = Allocator::from_bitmap(sb.allocatable_blocks(), &img.bitmap)
        .map(|a| a.used())
        .unwrap_or(0);
    let ckpt: u64 = vol.checkpoint_runs().iter().map(|r| r.1).sum::<u64>()
        + vol
            .snapshot_checkpoint_runs()
            .iter()
            .map(|r| r.1)
            .sum::<u64>()
        + held_at_checkpoint(&img);
    let fixed: u64 = vol.fixed_metadata_runs().iter().map(|r| r.1).sum();
    if bitmap_used + ckpt + fixed != sb.used_blocks {
        report.problems.push(format!(
            "space accounting: superblock says {} blocks used, the checkpoint's bitmap, its \
             own blocks, the snapshots' blocks, the journal's second copy and the far \
             superblock slot add up to {}",
            sb.used_blocks,
            bitmap_used + ckpt + fixed
        ));
    }
    for (root, problem) in verify_checkpoint_copies(dev, sb, vol.keys().map(|k| k.as_ref())) {
        let known = format!("checkpoint copy at block {root}");
        if report.warnings.iter().any(|w| w.contains(&known)) {
            continue;
        }
        if let Some(p) = problem {
            report.warnings.push(format!(
                "checkpoint copy at block {root} is damaged ({p}); the next read-write mount \
                 rewrites it from the other"
            ));
        }
    }
}

/// Blocks the checkpoint's snapshots held apart from its live records: the union of
/// their bitmaps less the live bitmap.
fn held_at_checkpoint(img: &gpufs_format::checkpoint::CheckpointImage) -> u64 {
    img.snapshot_union
        .iter()
        .zip(&img.bitmap)
        .map(|(u, b)| u64::from((u & !b).count_ones()))
        .sum()
}

fn check_namespace(vol: &Volume, report: &mut FsckReport) {
    let ns = vol.namespace();
    let p = &mut report.problems;
    match ns.inode(ROOT_INO).and_then(|r| r.kind()) {
        Some(FileKind::Directory) => {}
        _ => p.push("the root inode is missing or not a directory".into()),
    }
    let mut links: HashMap<u32, u32> = HashMap::new();
    let mut subdirs: HashMap<u32, u32> = HashMap::new();
    for (_, d) in ns.live_dirents() {
        *links.entry(d.ino).or_default() += 1;
        if d.kind == FileKind::Directory as u8 {
            *subdirs.entry(d.parent).or_default() += 1;
        }
    }
    for (ino, rec) in ns.live_inode_iter() {
        report.stats.inodes += 1;
        let n = links.get(&ino).copied().unwrap_or(0);
        match rec.kind() {
            Some(FileKind::Directory) => {
                report.stats.directories += 1;
                let want = 2 + subdirs.get(&ino).copied().unwrap_or(0);
                if rec.nlink != want {
                    p.push(format!(
                        "directory {ino} has link count {}, expected {want}",
                        rec.nlink
                    ));
                }
                if ino != ROOT_INO && n != 1 {
                    p.push(format!(
                        "directory {ino} is named by {n} entries, expected 1"
                    ));
                }
                if ino != ROOT_INO && !reaches_root(vol, ino) {
                    p.push(format!("directory {ino} is not reachable from the root"));
                }
            }
            kind => {
                if kind == Some(FileKind::Regular) {
                    report.stats.files += 1;
                }
                if n == 0 && rec.nlink == 0 {
                    report.warnings.push(format!(
                        "inode {ino} is an orphan (unlinked while open); a read-write mount \
                         reclaims it"
                    ));
                } else if rec.nlink != n {
                    p.push(format!(
                        "inode {ino} has link count {}, but {n} entries name it",
                        rec.nlink
                    ));
                }
                if kind == Some(FileKind::Symlink) {
                    match ns.symlink(ino) {
                        Some(t) if t.len() as u64 == rec.size => {}
                        Some(_) => p.push(format!("symlink {ino} size differs from its target")),
                        None => p.push(format!("symlink {ino} has no target")),
                    }
                }
            }
        }
    }
}

fn reaches_root(vol: &Volume, mut dir: u32) -> bool {
    let ns = vol.namespace();
    for _ in 0..=ns.live_inodes() {
        if dir == ROOT_INO {
            return true;
        }
        let Some(d) = ns.dir(dir) else {
            return false;
        };
        dir = d.parent;
    }
    false
}

/// The reference counts the volume keeps against the pointers a full walk found
/// (`walked`: by first block, the first pointer and how many refer to it).
fn check_shared(
    vol: &Volume,
    walked: &HashMap<u64, (u32, u64, RecordPtr, u32)>,
    report: &mut FsckReport,
) {
    let kept = vol.namespace().shared_records();
    for (&block, &(ino, index, _, refs)) in walked {
        report.stats.shared_references += u64::from(refs - 1);
        let counted = 1 + kept.get(&block).copied().unwrap_or(0);
        if counted != refs {
            report.problems.push(format!(
                "record at block {block} (inode {ino} record {index}) has {refs} references \
                 but its count says {counted}"
            ));
        }
    }
    for (&block, &extra) in kept {
        if !walked.contains_key(&block) {
            report.problems.push(format!(
                "record at block {block} counts {} references but no file refers to it",
                extra + 1
            ));
        }
    }
}

fn check_space(vol: &Volume, report: &mut FsckReport) {
    let total = vol.data_blocks();
    report.stats.total_blocks = total;
    let mut refs = Allocator::new(total);
    let mut claim = |what: String, block: u64, count: u64, report: &mut FsckReport| {
        let rel = match vol.relative(BlockNo::new(block), count) {
            Ok(r) => r,
            Err(_) => {
                report.problems.push(format!(
                    "{what}: blocks {block}+{count} outside the data area"
                ));
                return;
            }
        };
        if refs.claim(rel, count).is_err() {
            report.problems.push(format!(
                "{what}: blocks {block}+{count} are also used by something else"
            ));
        }
    };
    let ds = vol.superblock().data_start;
    for &(s, n) in vol.checkpoint_runs() {
        claim("checkpoint".into(), ds + s, n, report);
    }
    if let Some((s, n)) = vol.journal_copy_run() {
        claim("journal copy".into(), ds + s, n, report);
    }
    if let Some((s, n)) = vol.far_slot_run() {
        claim("far superblock slot".into(), ds + s, n, report);
    }
    // A shared record is claimed by its first pointer; every later one must be the same
    // pointer (a clone copies it whole) and counts as a reference.
    let mut first_ptr: HashMap<u64, (u32, u64, RecordPtr, u32)> = HashMap::new();
    for (ino, index, ptr) in vol.namespace().all_extents() {
        if let Some((i0, x0, p0, refs)) = first_ptr.get_mut(&ptr.block) {
            *refs += 1;
            if p0 != ptr {
                report.problems.push(format!(
                    "inode {ino} record {index} and inode {i0} record {x0} point at block {} \
                     with different pointers",
                    ptr.block
                ));
            }
            continue;
        }
        first_ptr.insert(ptr.block, (ino, index, *ptr, 1));
        for (copy, (block, count)) in ptr.runs().enumerate() {
            let what = match copy {
                0 => format!("inode {ino} record {index}"),
                _ => format!("inode {ino} record {index} (second copy)"),
            };
            claim(what, block, count, report);
        }
    }
    check_shared(vol, &first_ptr, report);
    // What snapshots hold: their checkpoints, and the data blocks only they use.
    for (s, n) in vol.snapshot_checkpoint_runs() {
        claim("snapshot checkpoint".into(), ds + s, n, report);
    }
    for (s, n) in vol.held_runs() {
        claim("blocks held for snapshots".into(), ds + s, n, report);
    }
    crate::fsck_snapshots::check(vol, report);
    let mut leaked = 0u64;
    let mut free_but_used = 0u64;
    for b in 0..total {
        match (vol.allocator().is_used(b), refs.is_used(b)) {
            (true, false) => leaked += 1,
            (false, true) => free_but_used += 1,
            _ => {}
        }
    }
    if free_but_used > 0 {
        report.problems.push(format!(
            "{free_but_used} blocks are in use but marked free in the allocation bitmap"
        ));
    }
    if leaked > 0 {
        report.problems.push(format!(
            "{leaked} blocks are marked used but nothing refers to them"
        ));
    }
    report.stats.used_blocks = refs.used();
    // What fallocate reserved must fit in what is free: writes were promised it.
    let reserved = vol.namespace().prealloc_blocks();
    report.stats.prealloc_blocks = reserved;
    let free = report.stats.total_blocks.saturating_sub(refs.used());
    if reserved > free {
        report.problems.push(format!(
            "fallocate reservations hold {reserved} blocks but only {free} are free"
        ));
    }
}

fn check_records(vol: &Volume, report: &mut FsckReport, progress: &mut dyn FnMut(u64, u64)) {
    let ns = vol.namespace();
    let mut all: Vec<(u32, u64, RecordPtr)> =
        ns.all_extents().map(|(i, x, p)| (i, x, *p)).collect();
    all.sort_unstable_by_key(|(_, _, p)| p.block);
    let total = all.len() as u64;
    let mut buf = Vec::new();
    for (done, (ino, index, ptr)) in all.iter().enumerate() {
        if done % 1024 == 0 {
            progress(done as u64, total);
        }
        let Some(rec) = ns.inode(*ino) else {
            continue;
        };
        let what = format!("inode {ino} record {index}");
        if check_record_fits(vol, &what, RecordIndex::new(*index), ptr, rec.size, report) {
            check_record_bytes(vol, &what, ptr, &mut buf, report);
        }
    }
    progress(total, total);
}

/// Does the record's length fit a record, and its data the file? False when its
/// length is out of range (its bytes are not worth reading).
fn check_record_fits(
    vol: &Volume,
    what: &str,
    index: RecordIndex,
    ptr: &RecordPtr,
    size: u64,
    report: &mut FsckReport,
) -> bool {
    let geo = vol.geometry();
    if u64::from(ptr.logical_len) > geo.record_size() || ptr.logical_len == 0 {
        report
            .problems
            .push(format!("{what}: length {} out of range", ptr.logical_len));
        return false;
    }
    if geo.data_end(index, ptr.logical_len).get() > size {
        report
            .problems
            .push(format!("{what}: stores bytes past the file size {size}"));
    }
    true
}

/// Reads the record through the volume's read path and reports why it fails.
fn check_record_bytes(
    vol: &Volume,
    what: &str,
    ptr: &RecordPtr,
    buf: &mut Vec<u8>,
    report: &mut FsckReport,
) {
    let problem = match vol.verify_record(ptr, buf) {
        Ok(healing) => {
            report.stats.records += 1;
            report.stats.record_bytes += u64::from(ptr.logical_len);
            for (block, _) in healing.bad {
                report.warnings.push(format!(
                    "{what}: the copy at block {block} is damaged, the other is good; a read \
                     or gpufs scrub rewrites it"
                ));
            }
            return;
        }
        Err(RecordError::UnknownFlags(_)) => format!("{what}: unknown flags {:#x}", ptr.flags),
        Err(RecordError::Length { logical, phys }) => {
            format!("{what}: stores {phys} bytes for {logical} without a compression flag")
        }
        Err(RecordError::Decode(why)) => format!("{what}: does not decompress: {why}"),
        Err(RecordError::Forged) => format!("{what}: fails authentication (changed on disk)"),
        Err(RecordError::NoKey) => format!("{what}: encrypted, and fsck has no key"),
        // Blocks outside the data area are reported by the space check.
        Err(RecordError::OutsideArea(_)) => return,
        Err(RecordError::Unreadable(e)) => format!("{what}: unreadable: {e}"),
        Err(RecordError::Checksum { stored, computed }) => {
            format!("{what}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
        }
    };
    report.problems.push(problem);
}
