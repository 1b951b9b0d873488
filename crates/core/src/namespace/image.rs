//! Converting the namespace to and from a checkpoint image.

use std::collections::HashMap;

use gpufs_format::checkpoint::{CheckpointImage, ExtentEntry};
use gpufs_format::{DirentRecord, FileKind, InodeRecord, JournalOp};

use super::index::DirentIndex;
use super::{Namespace, SpaceChange};
use crate::error::{FsError, FsResult};

impl Namespace {
    /// The namespace as flat checkpoint arrays (dirents and names compacted), with
    /// `bitmap` as its allocation section. Entries go in (directory, cookie) order, the
    /// order a load keeps: a change to one directory changes the checkpoint pages of
    /// that directory's entries, whatever the table's order in memory.
    pub fn to_image(&self, bitmap: Vec<u8>) -> CheckpointImage {
        let mut live: Vec<&DirentRecord> = self.dirents.iter().filter(|d| d.is_live()).collect();
        live.sort_unstable_by_key(|d| (d.parent, d.cookie));
        let mut dirents = Vec::with_capacity(live.len());
        let mut names = Vec::with_capacity(self.names.len() - self.dead_name_bytes);
        for d in live {
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
            ..CheckpointImage::default()
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
        ns.load_inodes(&img.inodes, &mut space)?;
        // Sized for every entry at once: no growth (each a rebuild) while loading, and
        // short probe chains.
        ns.index = DirentIndex::with_capacity(img.dirents.len());
        ns.load_dirents(&img.dirents, &img.names, &mut space)?;
        ns.load_extents(&img.extents)?;
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

    /// Puts every live inode of an image and keeps the generation of every slot.
    fn load_inodes(
        &mut self,
        inodes: &[InodeRecord],
        space: &mut Vec<SpaceChange>,
    ) -> FsResult<()> {
        let mut generations = vec![0u32; inodes.len()];
        for (ino, rec) in inodes.iter().enumerate().skip(1) {
            generations[ino] = rec.generation;
            if rec.is_live() {
                self.apply(
                    &JournalOp::InodePut {
                        ino: ino as u32,
                        rec: *rec,
                    },
                    space,
                )?;
            }
        }
        self.inodes.resize(inodes.len().max(1), Default::default());
        for (ino, g) in generations.iter().enumerate() {
            self.inodes[ino].generation = *g;
        }
        Ok(())
    }

    /// Puts every entry of an image, each directory's in cookie order, so every list is
    /// built by appends (an image holds them in entry-slot order, which reused slots mix).
    fn load_dirents(
        &mut self,
        dirents: &[DirentRecord],
        names: &[u8],
        space: &mut Vec<SpaceChange>,
    ) -> FsResult<()> {
        let key = |d: &DirentRecord| (d.parent, d.cookie);
        let mut order: Vec<usize> = (0..dirents.len()).collect();
        if dirents.windows(2).any(|w| key(&w[0]) > key(&w[1])) {
            order.sort_unstable_by_key(|&i| key(&dirents[i]));
        }
        for d in order.iter().map(|&i| &dirents[i]) {
            let start = d.name_offset as usize;
            let name = names
                .get(start..start.saturating_add(d.name_len as usize))
                .ok_or_else(|| FsError::corrupt("entry name outside the name arena"))?;
            self.apply(
                &JournalOp::DirentPut {
                    parent: d.parent,
                    ino: d.ino,
                    kind: d.kind,
                    cookie: d.cookie,
                    name: name.to_vec(),
                },
                space,
            )?;
        }
        Ok(())
    }

    /// Puts every record pointer of an image, refusing one of a non-file or a record
    /// index stored twice.
    fn load_extents(&mut self, extents: &[ExtentEntry]) -> FsResult<()> {
        for e in extents {
            if self.inode(e.ino).and_then(|r| r.kind()) != Some(FileKind::Regular) {
                return Err(FsError::corrupt(format!(
                    "records of inode {} which is not a live file",
                    e.ino
                )));
            }
            self.extents
                .entry(e.ino)
                .or_default()
                .push((e.index, e.ptr));
            self.account(e.ino, &e.ptr, true);
        }
        self.extent_entries = extents.len() as u64;
        self.shared = count_shared(extents.iter().map(|e| e.ptr.block));
        for v in self.extents.values_mut() {
            v.sort_unstable_by_key(|(i, _)| *i);
            if v.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(FsError::corrupt("record index stored twice"));
            }
        }
        Ok(())
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

/// References beyond the first to each record referred to more than once, from the
/// first block of every pointer.
pub(crate) fn count_shared(blocks: impl Iterator<Item = u64>) -> HashMap<u64, u32> {
    let mut all: Vec<u64> = blocks.collect();
    all.sort_unstable();
    let mut shared = HashMap::new();
    for w in all.windows(2) {
        if w[0] == w[1] {
            *shared.entry(w[0]).or_insert(0) += 1;
        }
    }
    shared
}
