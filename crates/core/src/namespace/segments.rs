//! The namespace cut into checkpoint segments by inode range (format version 7,
//! `gpufs_format::segments`): what each segment holds, and which segments changed since
//! the last checkpoint took them, so that a checkpoint encodes only those.

use gpufs_format::checkpoint::{CheckpointImage, ExtentEntry};
use gpufs_format::segments::SEGMENT_SLOTS;
use gpufs_format::JournalOp;

use super::Namespace;

/// The segments changed since the last [`Namespace::take_segment_dirty`]: every one
/// (`all`: a namespace that was never checkpointed as it is, e.g. just loaded or
/// replaced), or those listed.
#[derive(Clone, Debug, Default)]
pub struct SegmentDirty {
    pub all: bool,
    pub segments: hashbrown::HashSet<u32>,
}

impl SegmentDirty {
    /// Did segment `index` change?
    pub fn contains(&self, index: u32) -> bool {
        self.all || self.segments.contains(&index)
    }
}

/// The segment holding what `op` changes: everything an op touches is keyed by its
/// inode, and an entry by its directory.
pub(super) fn segment_of(op: &JournalOp) -> u32 {
    let ino = match op {
        JournalOp::InodePut { ino, .. }
        | JournalOp::InodeFree { ino }
        | JournalOp::ExtentPut { ino, .. }
        | JournalOp::ExtentShare { ino, .. }
        | JournalOp::ExtentDrop { ino, .. }
        | JournalOp::XattrPut { ino, .. }
        | JournalOp::XattrDel { ino, .. }
        | JournalOp::SymlinkPut { ino, .. } => *ino,
        JournalOp::DirentPut { parent, .. } | JournalOp::DirentDel { parent, .. } => *parent,
    };
    ino / SEGMENT_SLOTS
}

impl Namespace {
    /// Which segments changed since the last [`Namespace::take_segment_dirty`].
    pub fn segment_dirty(&self) -> &SegmentDirty {
        &self.segment_dirty
    }

    /// Which segments changed since the last call (and forgets them).
    pub fn take_segment_dirty(&mut self) -> SegmentDirty {
        std::mem::take(&mut self.segment_dirty)
    }

    /// The slot range of every segment, in order: `SEGMENT_SLOTS` each, the last up to
    /// the table's end.
    pub fn segment_ranges(&self) -> Vec<(u32, u32)> {
        let slots = self.inodes.len() as u32;
        (0..slots.div_ceil(SEGMENT_SLOTS))
            .map(|k| {
                let first = k.saturating_mul(SEGMENT_SLOTS);
                (first, first.saturating_add(SEGMENT_SLOTS).min(slots))
            })
            .collect()
    }

    /// What segment `first..end` holds: those inode slots; the entries of the directories
    /// among them, by directory then cookie, with their names (offsets from this
    /// segment's arena); their records by index, xattrs by name and symlink targets.
    /// The segments of [`Namespace::segment_ranges`] together make [`Namespace::to_image`].
    pub fn segment_image(&self, first: u32, end: u32) -> CheckpointImage {
        debug_assert!(first < end && end as usize <= self.inodes.len());
        let mut img = CheckpointImage {
            inodes: self.inodes[first as usize..end as usize].to_vec(),
            ..CheckpointImage::default()
        };
        for ino in first..end {
            if let Some(list) = self.dirs.get(&ino) {
                for (_, id) in list.entries.after(0) {
                    let d = self.dirents[id as usize];
                    img.dirents.push(gpufs_format::DirentRecord {
                        name_offset: img.names.len() as u64,
                        ..d
                    });
                    img.names.extend_from_slice(self.name_bytes(&d));
                }
            }
            if let Some(records) = self.extents.get(&ino) {
                img.extents
                    .extend(records.iter().map(|(index, ptr)| ExtentEntry {
                        ino,
                        reserved: 0,
                        index: *index,
                        ptr: *ptr,
                    }));
            }
            if let Some(list) = self.xattrs.get(&ino) {
                let at = img.xattrs.len();
                img.xattrs
                    .extend(list.iter().map(|(n, v)| (ino, n.clone(), v.clone())));
                img.xattrs[at..].sort();
            }
            if let Some(target) = self.symlinks.get(&ino) {
                img.symlinks.push((ino, target.clone()));
            }
        }
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpufs_format::segments::encode_segment;
    use gpufs_format::{FileKind, InodeRecord, RecordPtr};

    fn rec(kind: FileKind) -> InodeRecord {
        InodeRecord {
            mode: kind.mode_bits() | 0o755,
            nlink: 1,
            ..Default::default()
        }
    }

    fn encode_all(ns: &Namespace) -> Vec<Vec<u8>> {
        ns.segment_ranges()
            .iter()
            .map(|&(f, e)| encode_segment(f, e, &ns.segment_image(f, e)))
            .collect()
    }

    /// Random creates, unlinks, renames, records, xattrs and symlinks over several
    /// segments: every round, the segments together decode to the whole image, and every
    /// segment whose encoding changed was marked (a change missed would keep stale pages).
    #[test]
    fn segments_make_the_image_and_every_change_marks_its_segment() {
        let mut ns = Namespace::empty();
        let mut sp = Vec::new();
        ns.apply(
            &JournalOp::InodePut {
                ino: 1,
                rec: rec(FileKind::Directory),
            },
            &mut sp,
        )
        .unwrap();
        let mut seed = 99u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        let mut dirs = vec![1u32];
        let mut files: Vec<(u32, Vec<u8>, u32)> = Vec::new();
        ns.take_segment_dirty();
        let mut before = encode_all(&ns);
        for round in 0..12 {
            let creates = if round < 8 { 400 } else { 20 };
            for i in 0..creates {
                let parent = dirs[next() as usize % dirs.len()];
                let kind = match next() % 8 {
                    0 => FileKind::Directory,
                    1 => FileKind::Symlink,
                    _ => FileKind::Regular,
                };
                let ino = ns.next_free_ino().unwrap();
                let name = format!("e{round}-{i}").into_bytes();
                let cookie = ns.next_cookie(parent);
                for op in [
                    JournalOp::InodePut {
                        ino,
                        rec: rec(kind),
                    },
                    JournalOp::DirentPut {
                        parent,
                        ino,
                        kind: kind as u8,
                        cookie,
                        name: name.clone(),
                    },
                ] {
                    ns.apply(&op, &mut sp).unwrap();
                }
                match kind {
                    FileKind::Directory => dirs.push(ino),
                    FileKind::Symlink => ns
                        .apply(
                            &JournalOp::SymlinkPut {
                                ino,
                                target: b"/t".to_vec(),
                            },
                            &mut sp,
                        )
                        .unwrap(),
                    _ => {
                        let ptr = RecordPtr {
                            block: 1000 + u64::from(ino),
                            logical_len: 4096,
                            phys_len: 4096,
                            ..Default::default()
                        };
                        ns.apply(&JournalOp::ExtentPut { ino, index: 0, ptr }, &mut sp)
                            .unwrap();
                        files.push((parent, name, ino));
                    }
                }
            }
            for _ in 0..30 {
                if files.is_empty() {
                    break;
                }
                let k = next() as usize % files.len();
                let (parent, name, ino) = files[k].clone();
                match next() % 4 {
                    0 => {
                        files.swap_remove(k);
                        ns.apply(&JournalOp::DirentDel { parent, name }, &mut sp)
                            .unwrap();
                        ns.apply(&JournalOp::InodeFree { ino }, &mut sp).unwrap();
                    }
                    1 => {
                        // A rename into another directory.
                        let to = dirs[next() as usize % dirs.len()];
                        let new = format!("r{round}-{k}").into_bytes();
                        if ns.lookup(to, &new).is_some() {
                            continue;
                        }
                        let cookie = ns.next_cookie(to);
                        ns.apply(&JournalOp::DirentDel { parent, name }, &mut sp)
                            .unwrap();
                        ns.apply(
                            &JournalOp::DirentPut {
                                parent: to,
                                ino,
                                kind: FileKind::Regular as u8,
                                cookie,
                                name: new.clone(),
                            },
                            &mut sp,
                        )
                        .unwrap();
                        files[k] = (to, new, ino);
                    }
                    2 => ns
                        .apply(
                            &JournalOp::XattrPut {
                                ino,
                                name: b"user.k".to_vec(),
                                value: vec![round as u8; 3],
                            },
                            &mut sp,
                        )
                        .unwrap(),
                    _ => ns
                        .apply(
                            &JournalOp::ExtentDrop {
                                ino,
                                from: 0,
                                to: 1,
                            },
                            &mut sp,
                        )
                        .unwrap(),
                }
            }
            if round % 4 == 3 {
                ns.compact_names();
            }
            let dirty = ns.take_segment_dirty();
            let after = encode_all(&ns);
            assert!(
                after.len() >= 3 || round < 5,
                "round {round}: {} segments",
                after.len()
            );
            for (k, seg) in after.iter().enumerate() {
                if before.get(k) != Some(seg) {
                    assert!(
                        dirty.contains(k as u32),
                        "round {round}: segment {k} unmarked"
                    );
                }
            }
            let head = CheckpointImage {
                bitmap: vec![7, 1],
                ..CheckpointImage::default()
            };
            let mut blob = encode_segment(0, 0, &head);
            blob.extend(after.concat());
            assert_eq!(
                CheckpointImage::decode(&blob).unwrap(),
                ns.to_image(vec![7, 1]),
                "round {round}"
            );
            before = after;
        }
    }
}
