//! Applying one journal op to the namespace. The only place the namespace changes.

use gpufs_format::{
    name_hash, DirentRecord, FileKind, InodeRecord, JournalOp, RecordPtr, NAME_MAX,
};

use gpufs_compute::view::{entry_head, NO_ENTRY};

use super::{DirList, Namespace, FIRST_COOKIE};
use crate::error::{FsError, FsResult};

/// Space a change takes or gives back, in blocks of the data area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceChange {
    Claim { block: u64, count: u64 },
    Free { block: u64, count: u64 },
}

fn bad(detail: String) -> FsError {
    FsError::corrupt(detail)
}

impl Namespace {
    /// Applies `op`, appending the space it claims or frees to `space`. Fails (leaving
    /// the namespace unchanged) when the op does not fit the current state: on replay
    /// that means a corrupted journal.
    pub fn apply(&mut self, op: &JournalOp, space: &mut Vec<SpaceChange>) -> FsResult<()> {
        self.segment_dirty
            .segments
            .insert(super::segments::segment_of(op));
        match op {
            JournalOp::InodePut { ino, rec } => self.put_inode(*ino, rec),
            JournalOp::InodeFree { ino } => self.free_inode(*ino, space),
            JournalOp::DirentPut {
                parent,
                ino,
                kind,
                cookie,
                name,
            } => self.put_dirent(*parent, *ino, *kind, *cookie, name),
            JournalOp::DirentDel { parent, name } => self.del_dirent(*parent, name),
            JournalOp::ExtentPut { ino, index, ptr } => {
                self.put_extent(*ino, *index, ptr, false, space)
            }
            JournalOp::ExtentShare { ino, index, ptr } => {
                self.put_extent(*ino, *index, ptr, true, space)
            }
            JournalOp::ExtentDrop { ino, from, to } => self.drop_extents(*ino, *from, *to, space),
            JournalOp::XattrPut { ino, name, value } => self.put_xattr(*ino, name, value),
            JournalOp::XattrDel { ino, name } => self.del_xattr(*ino, name),
            JournalOp::SymlinkPut { ino, target } => {
                self.live(*ino)?;
                self.symlinks.insert(*ino, target.clone());
                Ok(())
            }
        }
    }

    /// Points record `index` of file `ino` at `ptr`, releasing the record it replaces.
    /// A new record (`shared` false) claims its blocks; a shared one (`shared`: a record
    /// other pointers refer to already) gains a reference instead.
    fn put_extent(
        &mut self,
        ino: u32,
        index: u64,
        ptr: &RecordPtr,
        shared: bool,
        space: &mut Vec<SpaceChange>,
    ) -> FsResult<()> {
        self.live_file(ino)?;
        if shared {
            *self.shared.entry(ptr.block).or_insert(0) += 1;
        } else {
            debug_assert!(!self.shared.contains_key(&ptr.block), "{ptr:?}");
            for (block, count) in ptr.runs() {
                space.push(SpaceChange::Claim { block, count });
            }
        }
        let v = self.extents.entry(ino).or_default();
        let replaced = match v.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(p) => Some(std::mem::replace(&mut v[p].1, *ptr)),
            Err(p) => {
                v.insert(p, (index, *ptr));
                self.extent_entries += 1;
                None
            }
        };
        debug_assert!(
            v.windows(2).all(|w| w[0].0 < w[1].0),
            "record map of {ino} not strictly ascending"
        );
        if let Some(old) = replaced {
            self.release(&old, space);
            self.account(ino, &old, false);
        }
        self.account(ino, ptr, true);
        Ok(())
    }

    /// Drops one reference to the record `ptr`: its blocks are freed with the last.
    fn release(&mut self, ptr: &RecordPtr, space: &mut Vec<SpaceChange>) {
        if let Some(extra) = self.shared.get_mut(&ptr.block) {
            debug_assert!(*extra > 0);
            *extra -= 1;
            if *extra == 0 {
                self.shared.remove(&ptr.block);
            }
            return;
        }
        for (block, count) in ptr.runs() {
            space.push(SpaceChange::Free { block, count });
        }
    }

    /// Drops the records `from..to` of file `ino`, freeing their blocks.
    fn drop_extents(
        &mut self,
        ino: u32,
        from: u64,
        to: u64,
        space: &mut Vec<SpaceChange>,
    ) -> FsResult<()> {
        self.live_file(ino)?;
        let mut dropped = Vec::new();
        if let Some(v) = self.extents.get_mut(&ino) {
            let lo = v.partition_point(|(i, _)| *i < from);
            let hi = v.partition_point(|(i, _)| *i < to).max(lo);
            debug_assert!(self.extent_entries >= (hi - lo) as u64);
            self.extent_entries -= (hi - lo) as u64;
            dropped.extend(v.drain(lo..hi).map(|(_, p)| p));
            if v.is_empty() {
                self.extents.remove(&ino);
            }
        }
        for p in &dropped {
            self.release(p, space);
            self.account(ino, p, false);
        }
        Ok(())
    }

    fn put_xattr(&mut self, ino: u32, name: &[u8], value: &[u8]) -> FsResult<()> {
        self.live(ino)?;
        let v = self.xattrs.entry(ino).or_default();
        match v.iter_mut().find(|(n, _)| n.as_slice() == name) {
            Some(slot) => {
                self.xattr_bytes -= slot.1.len() as u64;
                slot.1.clear();
                slot.1.extend_from_slice(value);
                self.xattr_bytes += value.len() as u64;
            }
            None => {
                v.push((name.to_vec(), value.to_vec()));
                self.xattr_bytes += (12 + name.len() + value.len()) as u64;
            }
        }
        Ok(())
    }

    fn del_xattr(&mut self, ino: u32, name: &[u8]) -> FsResult<()> {
        self.live(ino)?;
        let v = self.xattrs.get_mut(&ino);
        let pos = v
            .as_ref()
            .and_then(|v| v.iter().position(|(n, _)| n.as_slice() == name));
        match (v, pos) {
            (Some(v), Some(p)) => {
                let (n, val) = v.swap_remove(p);
                debug_assert!(self.xattr_bytes >= (12 + n.len() + val.len()) as u64);
                self.xattr_bytes -= (12 + n.len() + val.len()) as u64;
                if v.is_empty() {
                    self.xattrs.remove(&ino);
                }
                Ok(())
            }
            _ => Err(bad(format!("xattr removal of a missing name on {ino}"))),
        }
    }

    fn live(&self, ino: u32) -> FsResult<&InodeRecord> {
        self.inode(ino)
            .ok_or_else(|| bad(format!("op on free inode {ino}")))
    }

    fn live_file(&self, ino: u32) -> FsResult<()> {
        match self.live(ino)?.kind() {
            Some(FileKind::Regular) => Ok(()),
            _ => Err(bad(format!("records on non-file inode {ino}"))),
        }
    }

    fn put_inode(&mut self, ino: u32, rec: &InodeRecord) -> FsResult<()> {
        let kind = rec
            .kind()
            .ok_or_else(|| bad(format!("inode {ino} with invalid mode {:o}", rec.mode)))?;
        if ino == 0 || ino == u32::MAX {
            return Err(bad(format!("inode number {ino} is reserved")));
        }
        let slot = ino as usize;
        if slot >= self.inodes.len() {
            if slot > self.inodes.len() + (1 << 24) {
                return Err(bad(format!("inode number {ino} far past the table")));
            }
            let old_len = self.inodes.len() as u64;
            self.inodes.resize(slot + 1, InodeRecord::default());
            self.dirty.inodes.mark(old_len, slot as u64 + 1);
        }
        if slot >= self.allocated.len() {
            let old_len = self.allocated.len() as u64;
            self.allocated.resize(slot + 1, 0);
            self.dirty.allocated.mark(old_len, slot as u64 + 1);
        }
        if slot >= self.dir_entry.len() {
            let old_len = self.dir_entry.len() as u64;
            self.dir_entry.resize(slot + 1, NO_ENTRY);
            self.dirty.dir_entry.mark(old_len, slot as u64 + 1);
        }
        let old = self.inodes[slot];
        if old.is_live() && old.kind() != Some(kind) {
            return Err(bad(format!("inode {ino} changed kind")));
        }
        if !old.is_live() {
            self.live_inodes += 1;
            if kind == FileKind::Directory {
                self.dirs.insert(
                    ino,
                    DirList {
                        parent: if ino == gpufs_format::ROOT_INO {
                            ino
                        } else {
                            0
                        },
                        entries: Default::default(),
                        next_cookie: FIRST_COOKIE,
                    },
                );
            }
        }
        if old.is_live() {
            self.prealloc_blocks -= u64::from(old.prealloc_blocks);
        }
        self.prealloc_blocks += u64::from(rec.prealloc_blocks);
        self.inodes[slot] = *rec;
        self.dirty.inodes.mark(slot as u64, slot as u64 + 1);
        Ok(())
    }

    fn free_inode(&mut self, ino: u32, space: &mut Vec<SpaceChange>) -> FsResult<()> {
        self.live(ino)?;
        if !self.is_empty_dir(ino) {
            return Err(bad(format!("freeing non-empty directory {ino}")));
        }
        if let Some(v) = self.extents.remove(&ino) {
            self.extent_entries -= v.len() as u64;
            for (_, p) in v {
                self.release(&p, space);
            }
        }
        if let Some(v) = self.xattrs.remove(&ino) {
            let bytes: usize = v.iter().map(|(n, val)| 12 + n.len() + val.len()).sum();
            self.xattr_bytes -= bytes as u64;
        }
        self.symlinks.remove(&ino);
        self.dirs.remove(&ino);
        let gen = self.inodes[ino as usize].generation;
        self.prealloc_blocks -= u64::from(self.inodes[ino as usize].prealloc_blocks);
        self.inodes[ino as usize] = InodeRecord {
            generation: gen.wrapping_add(1),
            ..Default::default()
        };
        self.live_inodes -= 1;
        self.free_inodes.push(ino);
        let slot = ino as usize;
        self.dirty.inodes.mark(slot as u64, slot as u64 + 1);
        if let Some(a) = self.allocated.get_mut(slot) {
            *a = 0;
            self.dirty.allocated.mark(slot as u64, slot as u64 + 1);
        }
        Ok(())
    }

    fn put_dirent(
        &mut self,
        parent: u32,
        ino: u32,
        kind: u8,
        cookie: u64,
        name: &[u8],
    ) -> FsResult<()> {
        self.check_new_dirent(parent, ino, kind, cookie, name)?;
        let h = name_hash(parent, name);
        let rec = DirentRecord {
            parent,
            ino,
            name_hash: h,
            name_len: name.len() as u8,
            kind,
            flags: 0,
            name_offset: self.names.len() as u64,
            cookie,
        };
        self.names.extend_from_slice(name);
        let id = match self.free_dirents.pop() {
            Some(id) => {
                self.dirents[id as usize] = rec;
                id
            }
            None => {
                self.dirents.push(rec);
                (self.dirents.len() - 1) as u32
            }
        };
        self.name_owners.push(rec.name_offset, id, rec.name_len);
        let dirents = &self.dirents;
        self.index.insert(h, id, |i| dirents[i as usize].name_hash);
        self.dirty.dirents.mark(u64::from(id), u64::from(id) + 1);
        let name_end = self.names.len() as u64;
        self.dirty
            .names
            .mark(name_end - name.len() as u64, name_end);
        self.link_in_parent(parent, ino, id, kind, cookie, name)
    }

    /// Refuses a `DirentPut` that does not fit the current state (on replay: a
    /// corrupted journal), before anything changes.
    fn check_new_dirent(
        &self,
        parent: u32,
        ino: u32,
        kind: u8,
        cookie: u64,
        name: &[u8],
    ) -> FsResult<()> {
        if name.is_empty() || name.len() > NAME_MAX || name.contains(&b'/') || name.contains(&0) {
            return Err(bad(format!(
                "invalid entry name {:?}",
                String::from_utf8_lossy(name)
            )));
        }
        if FileKind::from_u8(kind).is_none() {
            return Err(bad(format!("entry kind {kind}")));
        }
        if !self.dirs.contains_key(&parent) {
            return Err(bad(format!("entry in non-directory {parent}")));
        }
        let target_kind = self.live(ino)?.kind();
        if target_kind.map(|k| k as u8) != Some(kind) {
            return Err(bad(format!("entry kind {kind} differs from inode {ino}")));
        }
        if self.lookup(parent, name).is_some() {
            return Err(bad(format!("duplicate entry in directory {parent}")));
        }
        if cookie < FIRST_COOKIE
            || self
                .dirs
                .get(&parent)
                .is_some_and(|l| l.entries.contains(cookie))
        {
            return Err(bad(format!(
                "cookie {cookie} reserved or reused in {parent}"
            )));
        }
        Ok(())
    }

    /// Adds entry `id` to its parent's listing and, for a directory, records the entry
    /// that names it.
    fn link_in_parent(
        &mut self,
        parent: u32,
        ino: u32,
        id: u32,
        kind: u8,
        cookie: u64,
        name: &[u8],
    ) -> FsResult<()> {
        let list = self
            .dirs
            .get_mut(&parent)
            .ok_or_else(|| bad(format!("entry in non-directory {parent}")))?;
        list.entries.insert(cookie, id, entry_head(name, kind));
        list.next_cookie = list.next_cookie.max(cookie + 1);
        if kind == FileKind::Directory as u8 {
            self.dir_tree = None;
            if let Some(child) = self.dirs.get_mut(&ino) {
                child.parent = parent;
            }
            if let Some(slot) = self.dir_entry.get_mut(ino as usize) {
                *slot = id;
                self.dirty
                    .dir_entry
                    .mark(u64::from(ino), u64::from(ino) + 1);
            }
        }
        Ok(())
    }

    fn del_dirent(&mut self, parent: u32, name: &[u8]) -> FsResult<()> {
        let id = self
            .lookup(parent, name)
            .ok_or_else(|| bad(format!("removal of a missing entry in {parent}")))?;
        let d = self.dirents[id as usize];
        self.index.remove(d.name_hash, id);
        if d.kind == FileKind::Directory as u8 {
            self.dir_tree = None;
            if let Some(slot) = self.dir_entry.get_mut(d.ino as usize) {
                if *slot == id {
                    *slot = NO_ENTRY;
                    self.dirty
                        .dir_entry
                        .mark(u64::from(d.ino), u64::from(d.ino) + 1);
                }
            }
        }
        if let Some(list) = self.dirs.get_mut(&parent) {
            list.entries.remove(d.cookie);
        }
        self.dead_name_bytes += d.name_len as usize;
        self.dirents[id as usize] = DirentRecord::default();
        self.free_dirents.push(id);
        self.dirty.dirents.mark(u64::from(id), u64::from(id) + 1);
        Ok(())
    }
}
