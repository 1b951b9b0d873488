//! Converting the namespace to and from a checkpoint image.

use std::collections::HashMap;

use gpufs_compute::index::TOMBSTONE;
use gpufs_compute::view::entry_head;
use gpufs_format::checkpoint::{CheckpointImage, ExtentEntry};
use gpufs_format::{name_hash, DirentRecord, FileKind, InodeRecord, JournalOp, NAME_MAX, ROOT_INO};

use super::index::DirentIndex;
use super::{DirList, Namespace, FIRST_COOKIE};
use crate::error::{FsError, FsResult};

/// The name of entry `d` in `names`, already checked by [`entry_name`].
fn name_at<'a>(names: &'a [u8], d: &DirentRecord) -> &'a [u8] {
    let start = d.name_offset as usize;
    let name = names.get(start..start + usize::from(d.name_len));
    debug_assert!(name.is_some());
    name.unwrap_or_default()
}

/// The name of entry `d` in `names`, checked (inside the arena, a valid name).
fn entry_name<'a>(names: &'a [u8], d: &DirentRecord) -> FsResult<&'a [u8]> {
    let start = d.name_offset as usize;
    let name = names
        .get(start..start.saturating_add(usize::from(d.name_len)))
        .ok_or_else(|| FsError::corrupt("entry name outside the name arena"))?;
    if name.is_empty() || name.len() > NAME_MAX || name.contains(&b'/') || name.contains(&0) {
        return Err(FsError::corrupt(format!(
            "invalid entry name {:?} in {}",
            String::from_utf8_lossy(name),
            d.parent
        )));
    }
    Ok(name)
}

impl Namespace {
    /// The namespace as flat checkpoint arrays (dirents and names compacted), with
    /// `bitmap` as its allocation section. Entries go in (directory, cookie) order, the
    /// order a load keeps: a change to one directory changes the checkpoint pages of
    /// that directory's entries, whatever the table's order in memory. (Checkpoints write
    /// it in segments, [`Namespace::segment_image`]; this is what they make together.)
    #[cfg(test)]
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
    ///
    /// The tables are taken over in bulk rather than put entry by entry: the inode table
    /// as it is, the entries in (directory, cookie) order with their index built in one
    /// pass over its slots (a mount of a million files spends its time here).
    pub fn from_image(img: CheckpointImage) -> FsResult<(Namespace, Vec<u8>)> {
        let mut ns = Namespace::empty();
        if img.inodes.first().is_some_and(|r| r.is_live()) {
            return Err(FsError::corrupt("inode slot 0 is in use"));
        }
        let mut space = Vec::new();
        ns.load_inodes(img.inodes)?;
        ns.load_dirents(img.dirents, img.names)?;
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

    /// Takes over the inode table of an image (every slot's generation kept), checking
    /// each live inode's kind, and makes every directory's (empty) listing.
    fn load_inodes(&mut self, mut inodes: Vec<InodeRecord>) -> FsResult<()> {
        if inodes.len() > u32::MAX as usize {
            return Err(FsError::corrupt("inode table longer than inode numbers go"));
        }
        // A free slot keeps its generation only (whatever else an image holds there).
        for rec in inodes.iter_mut().filter(|r| !r.is_live()) {
            *rec = InodeRecord {
                generation: rec.generation,
                ..InodeRecord::default()
            };
        }
        let (mut live, mut prealloc) = (0u64, 0u64);
        for (ino, rec) in inodes
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, r)| r.is_live())
        {
            let kind = rec.kind().ok_or_else(|| {
                FsError::corrupt(format!("inode {ino} with invalid mode {:o}", rec.mode))
            })?;
            live += 1;
            prealloc += u64::from(rec.prealloc_blocks);
            if kind == FileKind::Directory {
                let ino = ino as u32;
                self.dirs.insert(
                    ino,
                    DirList {
                        parent: if ino == ROOT_INO { ino } else { 0 },
                        entries: Default::default(),
                        next_cookie: FIRST_COOKIE,
                    },
                );
            }
        }
        self.live_inodes = live;
        self.prealloc_blocks = prealloc;
        self.inodes = inodes;
        if self.inodes.is_empty() {
            self.inodes.push(InodeRecord::default());
        }
        Ok(())
    }

    /// Takes over the entries of an image, checking each against the inodes (a valid
    /// name inside the arena, a live target of the entry's kind in a live directory,
    /// one cookie and one name per entry in its directory), each directory's in cookie
    /// order, so every list is built by appends (an older image may hold them in
    /// entry-slot order).
    fn load_dirents(&mut self, mut dirents: Vec<DirentRecord>, mut names: Vec<u8>) -> FsResult<()> {
        let key = |d: &DirentRecord| (d.parent, d.cookie);
        if dirents.windows(2).any(|w| key(&w[0]) > key(&w[1])) {
            dirents.sort_unstable_by_key(key);
        }
        if dirents.len() >= TOMBSTONE as usize {
            return Err(FsError::corrupt("more entries than entry ids go"));
        }
        let mut arena_in_order = true;
        let mut next_free = 0u64;
        for d in &mut dirents {
            let name = entry_name(&names, d)?;
            let kind = FileKind::from_u8(d.kind)
                .ok_or_else(|| FsError::corrupt(format!("entry kind {}", d.kind)))?;
            let target = self.inode(d.ino).and_then(InodeRecord::kind);
            if target != Some(kind) {
                return Err(FsError::corrupt(format!(
                    "entry in {} names inode {}, not a live {kind:?}",
                    d.parent, d.ino
                )));
            }
            if d.cookie < FIRST_COOKIE {
                return Err(FsError::corrupt(format!("reserved cookie in {}", d.parent)));
            }
            d.name_hash = name_hash(d.parent, name);
            d.flags = 0;
            arena_in_order &= d.name_offset >= next_free;
            next_free = d.name_offset + u64::from(d.name_len);
        }
        if !arena_in_order {
            // Names in entry order, as the owners map wants them.
            let mut packed = Vec::with_capacity(names.len());
            for d in &mut dirents {
                let start = d.name_offset as usize;
                d.name_offset = packed.len() as u64;
                packed.extend_from_slice(&names[start..start + usize::from(d.name_len)]);
            }
            names = packed;
        }
        let mut child_dirs = Vec::new();
        let mut at = 0;
        while at < dirents.len() {
            let parent = dirents[at].parent;
            let list = self
                .dirs
                .get_mut(&parent)
                .ok_or_else(|| FsError::corrupt(format!("entry in non-directory {parent}")))?;
            let mut last_cookie = 0;
            while let Some(d) = dirents.get(at).filter(|d| d.parent == parent) {
                if d.cookie == last_cookie {
                    return Err(FsError::corrupt(format!(
                        "cookie {} reused in {parent}",
                        d.cookie
                    )));
                }
                last_cookie = d.cookie;
                let name = name_at(&names, d);
                list.entries
                    .insert(d.cookie, at as u32, entry_head(name, d.kind));
                list.next_cookie = list.next_cookie.max(d.cookie + 1);
                if d.kind == FileKind::Directory as u8 {
                    child_dirs.push((d.ino, parent, at as u32));
                }
                at += 1;
            }
        }
        for (dir, parent, id) in child_dirs {
            if let Some(l) = self.dirs.get_mut(&dir) {
                l.parent = parent;
            }
            if let Some(slot) = self.dir_entry.get_mut(dir as usize) {
                *slot = id;
            } else {
                self.dir_entry
                    .resize(dir as usize + 1, gpufs_compute::view::NO_ENTRY);
                self.dir_entry[dir as usize] = id;
            }
        }
        let hashes: Vec<u32> = dirents.iter().map(|d| d.name_hash).collect();
        let same_key = |a: u32, b: u32| {
            let (x, y) = (&dirents[a as usize], &dirents[b as usize]);
            x.parent == y.parent && name_at(&names, x) == name_at(&names, y)
        };
        self.index = DirentIndex::bulk(&hashes, same_key).map_err(|id| {
            FsError::corrupt(format!(
                "entry name twice in directory {}",
                dirents[id as usize].parent
            ))
        })?;
        self.name_owners.clear();
        let mut used = 0usize;
        for (id, d) in dirents.iter().enumerate() {
            self.name_owners.push(d.name_offset, id as u32, d.name_len);
            used += usize::from(d.name_len);
        }
        self.dead_name_bytes = names.len() - used;
        self.names = names;
        self.dirents = dirents;
        self.dir_tree = None;
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
