//! Snapshots read as directories: a snapshot's namespace, loaded from its checkpoint on
//! first use, answers lookups, attributes, listings, links, xattrs and reads, with the
//! permissions of the original; its records are read through the volume (verified,
//! from any good copy). Nothing in it can change.

use std::sync::Arc;

use gpufs_format::{FileKind, InodeRecord};

use gpufs_compute::Compute;

use super::search::{SearchQuery, SearchResults};
use super::{Attr, Caller, DirEntry, Filesystem};
use crate::error::{FsError, FsResult};
use crate::namespace::Namespace;
use crate::units::FileOffset;

/// Views kept loaded at once (each holds a whole namespace in memory).
const MAX_VIEWS: usize = 4;

/// One snapshot's namespace, read-only.
pub struct SnapshotView {
    pub id: u64,
    pub(crate) ns: Namespace,
    /// What identifies each segment of its namespace (what `diff` may pass over).
    pub(crate) segments: crate::volume::SegmentIds,
    record_size: u32,
}

impl Filesystem {
    /// (id, name) of every snapshot, oldest first.
    pub fn snapshot_names(&self) -> Vec<(u64, Vec<u8>)> {
        self.lock()
            .vol
            .snapshot_records()
            .iter()
            .map(|s| (s.id, s.name().to_vec()))
            .collect()
    }

    /// The view of snapshot `id`, loaded on first use.
    pub fn snapshot_view(&self, id: u64) -> FsResult<Arc<SnapshotView>> {
        let mut g = self.lock();
        let rec = g
            .vol
            .snapshot_records()
            .iter()
            .find(|s| s.id == id)
            .copied()
            .ok_or(FsError::NotFound)?;
        if let Some(v) = g.views.iter().find(|v| v.id == id) {
            return Ok(v.clone());
        }
        let (mut ns, segments) = g.vol.snapshot_namespace_and_segments(&rec)?;
        // Directory paths ready, for searches of it.
        ns.prepare_dir_tree();
        let view = Arc::new(SnapshotView {
            id,
            ns,
            segments,
            record_size: g.vol.record_size(),
        });
        if g.views.len() >= MAX_VIEWS {
            g.views.remove(0);
        }
        g.views.push(view.clone());
        Ok(view)
    }

    /// Reads `size` bytes at `offset` of file `ino` of `view`.
    pub fn snapshot_read(
        &self,
        view: &SnapshotView,
        ino: u64,
        offset: u64,
        size: u32,
    ) -> FsResult<Vec<u8>> {
        let ino = view.ino(ino)?;
        let rec = view.inode(ino)?;
        match rec.kind() {
            Some(FileKind::Regular) => {}
            Some(FileKind::Directory) => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("not a regular file")),
        }
        if offset >= rec.size || size == 0 {
            return Ok(Vec::new());
        }
        let end = rec.size.min(offset + u64::from(size));
        let mut out = vec![0u8; (end - offset) as usize];
        let mut g = self.lock();
        let spans = g
            .vol
            .geometry()
            .spans(FileOffset::new(offset), FileOffset::new(end));
        for span in spans {
            let Some(ptr) = view.ns.extent(ino, span.index.get()).copied() else {
                continue;
            };
            let bytes = g.vol.read_ptr(&ptr)?;
            let hi = span.end().min(bytes.len());
            if span.offset < hi {
                let dst = span.at as usize;
                out[dst..dst + hi - span.offset].copy_from_slice(&bytes[span.offset..hi]);
            }
        }
        Ok(out)
    }

    /// Entries of snapshot `name` matching `q` that `caller` may see, as they were (the
    /// CPU kernels over the snapshot's namespace; the compute layer's device copy is the
    /// live namespace's). `q.under` does not apply to a snapshot.
    pub fn search_snapshot(
        &self,
        name: &[u8],
        q: &SearchQuery,
        caller: Caller,
        groups: &[u32],
    ) -> FsResult<SearchResults> {
        if q.under.is_some() {
            return Err(FsError::BadQuery(
                "--under names a directory of the live filesystem, not of a snapshot".into(),
            ));
        }
        let id = self.lock().vol.snapshot(name)?.id;
        let view = self.snapshot_view(id)?;
        super::search::search_in(&Compute::cpu_only(), q, &view.ns, caller, groups)
    }

    /// Drops the loaded views of snapshots that no longer exist.
    pub(crate) fn forget_views(&self) {
        let mut g = self.lock();
        let live: Vec<u64> = g.vol.snapshot_records().iter().map(|s| s.id).collect();
        g.views.retain(|v| live.contains(&v.id));
    }
}

impl std::fmt::Debug for SnapshotView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotView")
            .field("id", &self.id)
            .field("inodes", &self.ns.live_inodes())
            .finish()
    }
}

impl SnapshotView {
    fn ino(&self, ino: u64) -> FsResult<u32> {
        u32::try_from(ino).map_err(|_| FsError::NotFound)
    }

    fn inode(&self, ino: u32) -> FsResult<InodeRecord> {
        self.ns
            .inode(ino)
            .filter(|r| r.is_live())
            .copied()
            .ok_or(FsError::NotFound)
    }

    fn dir(&self, ino: u32) -> FsResult<InodeRecord> {
        let rec = self.inode(ino)?;
        if rec.kind() != Some(FileKind::Directory) {
            return Err(FsError::NotDir);
        }
        Ok(rec)
    }

    fn attr(&self, ino: u32, rec: &InodeRecord) -> Attr {
        let stored: u64 = self
            .ns
            .extents(ino)
            .iter()
            .map(|(_, p)| p.total_blocks())
            .sum();
        super::attr_of(u64::from(ino), rec, stored, self.record_size)
    }

    /// Attributes of `ino` (numbers as in the snapshot).
    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let ino = self.ino(ino)?;
        Ok(self.attr(ino, &self.inode(ino)?))
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let parent = self.ino(parent)?;
        self.dir(parent)?;
        let ino = match name {
            b"." => parent,
            b".." => self.ns.parent_of_dir(parent),
            _ => {
                if name.len() > gpufs_format::NAME_MAX {
                    return Err(FsError::NameTooLong);
                }
                let id = self.ns.lookup(parent, name).ok_or(FsError::NotFound)?;
                self.ns.dirent(id).ino
            }
        };
        Ok(self.attr(ino, &self.inode(ino)?))
    }

    /// Entries of `dir` after `offset`, "." and ".." first, as the live readdir.
    pub fn readdir(
        &self,
        dir: u64,
        offset: u64,
        mut emit: impl FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()> {
        let dir = self.ino(dir)?;
        self.dir(dir)?;
        let parent = u64::from(self.ns.parent_of_dir(dir));
        if super::emit_dots(u64::from(dir), parent, offset, &mut |e| Ok(emit(e)))? {
            return Ok(());
        }
        for (cookie, id) in self.ns.entries_after(dir, offset.max(2)) {
            let d = self.ns.dirent(id);
            let entry = DirEntry {
                cookie,
                ino: u64::from(d.ino),
                kind: FileKind::from_u8(d.kind).unwrap_or(FileKind::Regular),
                name: self.ns.name_bytes(d),
            };
            if emit(entry) {
                break;
            }
        }
        Ok(())
    }

    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let ino = self.ino(ino)?;
        if self.inode(ino)?.kind() != Some(FileKind::Symlink) {
            return Err(FsError::Invalid("not a symlink"));
        }
        self.ns
            .symlink(ino)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| FsError::corrupt(format!("symlink {ino} has no target")))
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let ino = self.ino(ino)?;
        self.inode(ino)?;
        self.ns
            .xattrs(ino)
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or(FsError::NoData)
    }

    /// Names, each followed by a NUL.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let ino = self.ino(ino)?;
        self.inode(ino)?;
        let mut out = Vec::new();
        for (n, _) in self.ns.xattrs(ino) {
            out.extend_from_slice(n);
            out.push(0);
        }
        Ok(out)
    }
}
