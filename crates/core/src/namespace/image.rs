//! Converting the namespace to and from a checkpoint image.

use gpufs_format::checkpoint::{CheckpointImage, ExtentEntry};
use gpufs_format::{FileKind, JournalOp};

use super::Namespace;
use crate::error::{FsError, FsResult};

impl Namespace {
    /// The namespace as flat checkpoint arrays (dirents and names compacted), with
    /// `bitmap` as its allocation section.
    pub fn to_image(&self, bitmap: Vec<u8>) -> CheckpointImage {
        let mut dirents = Vec::with_capacity(self.dirents.len() - self.free_dirents.len());
        let mut names = Vec::with_capacity(self.names.len() - self.dead_name_bytes);
        for d in self.dirents.iter().filter(|d| d.is_live()) {
            let mut d2 = *d;
            d2.name_offset = names.len() as u64;
            names.extend_from_slice(self.name_bytes(d));
            dirents.push(d2);
        }
        let mut extents: Vec<ExtentEntry> = self
            .extents
            .iter()
            .flat_map(|(ino, v)| {
                v.iter().map(move |(index, ptr)| ExtentEntry {
                    ino: *ino,
                    reserved: 0,
                    index: *index,
                    ptr: *ptr,
                })
            })
            .collect();
        extents.sort_unstable_by_key(|e| (e.ino, e.index));
        let mut xattrs: Vec<(u32, Vec<u8>, Vec<u8>)> = self
            .all_xattrs()
            .map(|(i, n, v)| (i, n.to_vec(), v.to_vec()))
            .collect();
        xattrs.sort();
        let mut symlinks: Vec<(u32, Vec<u8>)> =
            self.all_symlinks().map(|(i, t)| (i, t.to_vec())).collect();
        symlinks.sort();
        CheckpointImage {
            inodes: self.inodes.clone(),
            dirents,
            names,
            extents,
            xattrs,
            symlinks,
            bitmap,
        }
    }

    /// Rebuilds a namespace from a checkpoint image, checking every reference.
    /// Returns the namespace and the image's bitmap.
    pub fn from_image(img: CheckpointImage) -> FsResult<(Namespace, Vec<u8>)> {
        let mut ns = Namespace::empty();
        if img.inodes.first().is_some_and(|r| r.is_live()) {
            return Err(FsError::corrupt("inode slot 0 is in use"));
        }
        let mut space = Vec::new();
        let mut generations = vec![0u32; img.inodes.len()];
        for (ino, rec) in img.inodes.iter().enumerate().skip(1) {
            generations[ino] = rec.generation;
            if rec.is_live() {
                ns.apply(
                    &JournalOp::InodePut {
                        ino: ino as u32,
                        rec: *rec,
                    },
                    &mut space,
                )?;
            }
        }
        ns.inodes
            .resize(img.inodes.len().max(1), Default::default());
        for (ino, g) in generations.iter().enumerate() {
            ns.inodes[ino].generation = *g;
        }
        // Each directory's entries put in cookie order, so every list is built by
        // appends (an image holds them in entry-slot order, which reused slots mix).
        let key = |d: &gpufs_format::DirentRecord| (d.parent, d.cookie);
        let mut order: Vec<usize> = (0..img.dirents.len()).collect();
        if img.dirents.windows(2).any(|w| key(&w[0]) > key(&w[1])) {
            order.sort_unstable_by_key(|&i| key(&img.dirents[i]));
        }
        for d in order.iter().map(|&i| &img.dirents[i]) {
            let start = d.name_offset as usize;
            let name = img
                .names
                .get(start..start.saturating_add(d.name_len as usize))
                .ok_or_else(|| FsError::corrupt("entry name outside the name arena"))?;
            ns.apply(
                &JournalOp::DirentPut {
                    parent: d.parent,
                    ino: d.ino,
                    kind: d.kind,
                    cookie: d.cookie,
                    name: name.to_vec(),
                },
                &mut space,
            )?;
        }
        for e in &img.extents {
            if ns.inode(e.ino).and_then(|r| r.kind()) != Some(FileKind::Regular) {
                return Err(FsError::corrupt(format!(
                    "records of inode {} which is not a live file",
                    e.ino
                )));
            }
            ns.extents.entry(e.ino).or_default().push((e.index, e.ptr));
            ns.account(e.ino, &e.ptr, true);
        }
        ns.extent_entries = img.extents.len() as u64;
        for v in ns.extents.values_mut() {
            v.sort_unstable_by_key(|(i, _)| *i);
            if v.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(FsError::corrupt("record index stored twice"));
            }
        }
        for (ino, name, value) in img.xattrs {
            ns.apply(&JournalOp::XattrPut { ino, name, value }, &mut space)?;
        }
        for (ino, target) in img.symlinks {
            ns.apply(&JournalOp::SymlinkPut { ino, target }, &mut space)?;
        }
        ns.rebuild_free_lists();
        ns.allocated.resize(ns.inodes.len(), 0);
        ns.dir_entry
            .resize(ns.inodes.len(), gpufs_compute::view::NO_ENTRY);
        ns.mark_all_dirty();
        Ok((ns, img.bitmap))
    }

    /// Recomputes the free inode list from the table (after load and replay).
    pub fn rebuild_free_lists(&mut self) {
        self.free_inodes = self
            .inodes
            .iter()
            .enumerate()
            .skip(1)
            .rev()
            .filter(|(_, r)| !r.is_live())
            .map(|(i, _)| i as u32)
            .collect();
    }
}
