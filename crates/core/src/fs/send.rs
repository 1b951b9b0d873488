//! `gpufs send`: a snapshot as a replication stream, whole or as the changes from an
//! older one. Files are matched by inode number and generation (as `gpufs diff` does);
//! a record is sent when its pointer differs from the base's (a record rewritten is a new
//! pointer), so an incremental stream carries the records that changed plus the
//! metadata that changed. Finding them compares the checkpoint segments whose identity
//! differs between the two snapshots, as `gpufs diff` does (no I/O beyond loading them);
//! the stream is O(change). Naming the base takes a fingerprint of each namespace
//! (O(files)).
//!
//! Order of the ops, so that each applies to the state the ones before it left: entries
//! that go, inodes that go (a number reused is freed first), inodes that come or
//! change (a shorter size cuts the file), symlink targets, entries that come, xattrs,
//! then data.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use gpufs_format::send::{SendOp, StreamBase, StreamHeader};
use gpufs_format::{FileKind, InodeRecord, RecordPtr};

use super::diff::{dirents_in, inodes_in, with_parents_of};
use super::stream::StreamWriter;
use super::{Filesystem, SnapshotView};
use crate::error::{FsError, FsResult};
use crate::namespace::Namespace;

/// What a send wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendSummary {
    pub frames: u64,
    pub bytes: u64,
    /// Bytes of file data among them.
    pub data_bytes: u64,
    /// Inodes created or changed.
    pub inodes: u64,
}

/// One record to send: file, index, where it lies.
type RecordToSend = (u32, u64, RecordPtr);

/// The attributes a stream carries (a reservation is the sender's own).
fn sent(rec: &InodeRecord) -> InodeRecord {
    InodeRecord {
        prealloc_blocks: 0,
        ..*rec
    }
}

/// Inode `ino` of `ns` as a stream carries it: live and named (a file unlinked while
/// open lives on with no link until its last close, and a mount frees it: no stream
/// carries it, and a fingerprint leaves it out).
fn carried(ns: &Namespace, ino: u32) -> Option<&InodeRecord> {
    ns.inode(ino).filter(|r| r.nlink > 0)
}

/// The changes from `old` (nothing: a full stream) to `new`, by kind.
struct Plan<'a> {
    old: Option<&'a Namespace>,
    new: &'a Namespace,
    /// Inodes of `old` that are gone or another file in `new`.
    gone: HashSet<u32>,
    /// The slot ranges in which the two may differ (`None`: anywhere, or a full stream).
    only: Option<Vec<(u32, u32)>>,
}

/// Inode `ino` (`r` in `old`) is in `new` as the same file: carried, with the same
/// generation, kind and (a symlink) target. A rollback can hand one generation of a
/// slot to two files on the two sides of it; what their kind or target tells apart
/// is told apart, and the rest (files, directories) compare field by field anyway.
fn one_file(old: &Namespace, new: &Namespace, ino: u32, r: &InodeRecord) -> bool {
    carried(new, ino).is_some_and(|n| {
        n.generation == r.generation && n.kind() == r.kind() && old.symlink(ino) == new.symlink(ino)
    })
}

impl<'a> Plan<'a> {
    /// The plan from `old` to `new`, which differ only in the slot ranges `only`.
    fn new(old: Option<&'a Namespace>, new: &'a Namespace, only: Option<&[(u32, u32)]>) -> Self {
        // Entries naming a slot that holds another file on the other side may lie in
        // directories of unchanged segments: theirs are compared too.
        let only = old.zip(only).map(|(o, ranges)| {
            let other = |ino: u32| {
                carried(o, ino)
                    .is_some_and(|r| new.inode(ino).is_some() && !one_file(o, new, ino, r))
            };
            with_parents_of(o, ranges, other)
        });
        let gone = old.map_or_else(HashSet::new, |o| {
            inodes_in(o, only.as_deref())
                .filter(|(ino, _)| carried(o, *ino).is_some())
                .filter(|(ino, r)| !one_file(o, new, *ino, r))
                .map(|(ino, _)| ino)
                .collect()
        });
        Plan {
            old,
            new,
            gone,
            only,
        }
    }

    /// Live inodes of `new` where the two may differ.
    fn new_inodes(&self) -> Box<dyn Iterator<Item = (u32, &InodeRecord)> + '_> {
        inodes_in(self.new, self.only.as_deref())
    }

    /// `ino` is the same file in both (so its entries, xattrs and records compare).
    fn same_file(&self, ino: u32) -> bool {
        self.old.is_some_and(|o| carried(o, ino).is_some()) && !self.gone.contains(&ino)
    }

    /// Entry `id` of `a` is in `b` as it is (same parent file, name, inode, cookie).
    fn entry_kept(&self, a: &Namespace, b: &Namespace, id: u32) -> bool {
        let d = a.dirent(id);
        if !self.same_file(d.parent) || !self.same_file(d.ino) {
            return false;
        }
        b.lookup(d.parent, a.name_bytes(d)).is_some_and(|e| {
            let e = b.dirent(e);
            (e.ino, e.kind, e.cookie) == (d.ino, d.kind, d.cookie)
        })
    }

    fn unlinks(&self) -> Vec<SendOp> {
        let Some(old) = self.old else {
            return Vec::new();
        };
        dirents_in(old, self.only.as_deref())
            .filter(|(id, _)| !self.entry_kept(old, self.new, *id))
            .map(|(_, d)| SendOp::Unlink {
                parent: d.parent,
                name: old.name_bytes(d).to_vec(),
            })
            .collect()
    }

    fn frees(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.gone.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// Inodes to put: new ones, and those whose attributes changed.
    fn inodes(&self) -> Vec<u32> {
        self.new_inodes()
            .filter(|(ino, _)| carried(self.new, *ino).is_some())
            .filter(|(ino, r)| {
                !self.same_file(*ino)
                    || self
                        .old
                        .and_then(|o| o.inode(*ino))
                        .is_none_or(|o| sent(o) != sent(r))
            })
            .map(|(ino, _)| ino)
            .collect()
    }

    fn entries(&self) -> impl Iterator<Item = u32> + '_ {
        dirents_in(self.new, self.only.as_deref())
            .filter(|(id, _)| {
                self.old
                    .is_none_or(|old| !self.entry_kept(self.new, old, *id))
            })
            .map(|(id, _)| id)
    }

    /// Xattr ops of `ino`: names gone, then names set or changed.
    fn xattrs(&self, ino: u32) -> Vec<SendOp> {
        let now = self.new.xattrs(ino);
        let before = match self.old {
            Some(o) if self.same_file(ino) => o.xattrs(ino),
            _ => &[],
        };
        let mut ops: Vec<SendOp> = before
            .iter()
            .filter(|(n, _)| !now.iter().any(|(m, _)| m == n))
            .map(|(n, _)| SendOp::XattrDel {
                ino,
                name: n.clone(),
            })
            .collect();
        ops.extend(
            now.iter()
                .filter(|x| !before.contains(x))
                .map(|(n, v)| SendOp::Xattr {
                    ino,
                    name: n.clone(),
                    value: v.clone(),
                }),
        );
        ops
    }

    /// Records of file `ino` to send, and indices the base stored that are holes now
    /// (within the size: what lies past it the size cut).
    fn records(&self, ino: u32, record_size: u64) -> (Vec<RecordToSend>, Vec<u64>) {
        let now = self.new.extents(ino);
        let before = match self.old {
            Some(o) if self.same_file(ino) => o.extents(ino),
            _ => &[],
        };
        let send = now
            .iter()
            .filter(|(i, p)| {
                before
                    .binary_search_by_key(i, |(j, _)| *j)
                    .map_or(true, |k| before[k].1 != *p)
            })
            .map(|(i, p)| (ino, *i, *p))
            .collect();
        let size = self.new.inode(ino).map_or(0, |r| r.size);
        let holes = before
            .iter()
            .filter(|(i, _)| now.binary_search_by_key(i, |(j, _)| *j).is_err())
            .map(|(i, _)| *i)
            .filter(|i| i.saturating_mul(record_size) < size)
            .collect();
        (send, holes)
    }
}

impl Filesystem {
    /// Writes snapshot `name` to `out` as a stream: whole, or with `from` the changes
    /// since snapshot `from`. `progress(bytes written, data bytes in all)` is called now
    /// and then; it returns false to stop (the stream is then left without its end).
    pub fn send(
        &self,
        name: &[u8],
        from: Option<&[u8]>,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> FsResult<SendSummary> {
        let (rec, base_rec, uuid, record_size) = {
            let g = self.lock();
            let rec = g.vol.snapshot(name)?;
            let base = from.map(|f| g.vol.snapshot(f)).transpose()?;
            let sb = g.vol.superblock();
            (rec, base, sb.uuid, u64::from(sb.record_size))
        };
        let view = self.snapshot_view(rec.id)?;
        let base_view: Option<Arc<SnapshotView>> =
            base_rec.map(|b| self.snapshot_view(b.id)).transpose()?;
        let only = base_view.as_deref().map(|b| {
            let slots = b.ns.inode_slots().max(view.ns.inode_slots());
            b.segments.differing(&view.segments, slots)
        });
        let plan = Plan::new(
            base_view.as_deref().map(|v| &v.ns),
            &view.ns,
            only.as_deref(),
        );
        let new = &view.ns;

        let mut files = Vec::new();
        let mut holes = Vec::new();
        for (ino, r) in plan.new_inodes() {
            if r.kind() == Some(FileKind::Regular) && r.nlink > 0 {
                let (send, gone) = plan.records(ino, record_size);
                files.extend(send);
                holes.extend(gone.into_iter().map(|i| (ino, i)));
            }
        }
        let data_bytes: u64 = files.iter().map(|(_, _, p)| u64::from(p.logical_len)).sum();

        let base = match (&base_rec, &base_view) {
            (Some(b), Some(v)) => Some(StreamBase {
                name: b.name().to_vec(),
                created_ns: b.created_ns,
                fingerprint: v.ns.fingerprint(),
            }),
            _ => None,
        };
        let mut header = StreamHeader::new(name, base.as_ref())
            .ok_or_else(|| FsError::BadQuery("invalid snapshot name".into()))?;
        header.record_size = record_size as u32;
        header.source_uuid = uuid;
        header.created_ns = rec.created_ns;
        header.fingerprint = new.fingerprint();
        header.inodes = new.live_inodes();
        header.data_bytes = data_bytes;

        let mut w = StreamWriter::new(out, &header)?;
        let mut summary = SendSummary {
            data_bytes,
            ..Default::default()
        };
        for op in plan.unlinks() {
            w.op(&op)?;
        }
        for ino in plan.frees() {
            w.op(&SendOp::Free { ino })?;
        }
        let puts = plan.inodes();
        summary.inodes = puts.len() as u64;
        for &ino in &puts {
            if let Some(r) = new.inode(ino) {
                w.op(&SendOp::Inode { ino, rec: sent(r) })?;
            }
        }
        for &ino in &puts {
            let fresh = !plan.same_file(ino);
            if let (true, Some(target)) = (fresh, new.symlink(ino)) {
                w.op(&SendOp::Symlink {
                    ino,
                    target: target.to_vec(),
                })?;
            }
        }
        for id in plan.entries() {
            let d = new.dirent(id);
            w.op(&SendOp::Entry {
                parent: d.parent,
                ino: d.ino,
                kind: d.kind,
                cookie: d.cookie,
                name: new.name_bytes(d).to_vec(),
            })?;
        }
        for (ino, r) in plan.new_inodes() {
            if r.nlink == 0 {
                continue;
            }
            for op in plan.xattrs(ino) {
                w.op(&op)?;
            }
        }
        for (ino, index) in holes {
            let size = new.inode(ino).map_or(0, |r| r.size);
            let offset = index * record_size;
            let len = record_size.min(size - offset);
            w.op(&SendOp::Zero { ino, offset, len })?;
        }
        if !progress(w.bytes(), data_bytes) {
            return Err(FsError::Busy("the send was stopped".into()));
        }
        for (n, (ino, index, ptr)) in files.into_iter().enumerate() {
            let data = self.lock().vol.read_ptr(&ptr)?;
            let offset = index * record_size;
            let size = new.inode(ino).map_or(0, |r| r.size);
            // A record shorter than the file's span of it ends in zeros: sent as a
            // hole, so that what the receiver held there goes.
            let span = record_size.min(size.saturating_sub(offset));
            let tail = span.saturating_sub(data.len() as u64);
            w.op(&SendOp::Write {
                ino,
                offset,
                data: data.to_vec(),
            })?;
            if tail > 0 {
                w.op(&SendOp::Zero {
                    ino,
                    offset: offset + data.len() as u64,
                    len: tail,
                })?;
            }
            if n % 64 == 63 && !progress(w.bytes(), data_bytes) {
                return Err(FsError::Busy("the send was stopped".into()));
            }
        }
        let (frames, bytes) = w.finish()?;
        summary.frames = frames;
        summary.bytes = bytes;
        progress(bytes, data_bytes);
        Ok(summary)
    }
}
