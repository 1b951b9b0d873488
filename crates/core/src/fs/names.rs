//! Namespace operations: lookup, create, link, unlink, rename, readdir.

use gpufs_format::journal::SYMLINK_MAX;
use gpufs_format::{FileKind, InodeRecord, JournalOp, ROOT_INO};

use super::{check_name, ino32, now, Attr, Caller, DirEntry, Filesystem, Inner, LINK_MAX};
use crate::error::{FsError, FsResult};

/// How `rename` treats an existing target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameMode {
    /// Replace it (POSIX rename).
    Replace,
    /// Fail with EEXIST (RENAME_NOREPLACE).
    NoReplace,
    /// Swap the two entries (RENAME_EXCHANGE).
    Exchange,
}

impl Inner {
    /// Looks a name up; returns the dirent's target inode.
    pub(crate) fn child(&self, parent: u32, name: &[u8]) -> FsResult<u32> {
        self.dir_inode(parent)?;
        if name.len() > gpufs_format::NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let id = self.vol.ns.lookup(parent, name).ok_or(FsError::NotFound)?;
        Ok(self.vol.ns.dirent(id).ino)
    }

    /// Creates an inode of `kind` named `name` in `parent`; returns its number and record.
    pub(crate) fn create_node(
        &mut self,
        parent: u32,
        name: &[u8],
        kind: FileKind,
        mode: u32,
        rdev: u32,
        caller: Caller,
    ) -> FsResult<(u32, InodeRecord)> {
        self.writable()?;
        check_name(name)?;
        let prec = self.dir_inode(parent)?;
        if prec.nlink == 0 {
            return Err(FsError::NotFound);
        }
        if self.vol.ns.lookup(parent, name).is_some() {
            return Err(FsError::Exists);
        }
        if kind == FileKind::Directory && prec.nlink >= u32::MAX - 1 {
            return Err(FsError::TooManyLinks);
        }
        self.vol.ensure_space(1)?;
        let ino = self.vol.ns.next_free_ino().ok_or(FsError::NoSpace)?;
        let t = now();
        let mut perm = mode & 0o7777;
        let gid = if prec.mode & mode_bits_sgid() != 0 {
            if kind == FileKind::Directory {
                perm |= mode_bits_sgid();
            }
            prec.gid
        } else {
            caller.gid
        };
        let generation = self.vol.ns.raw_generation(ino);
        let rec = InodeRecord {
            mode: kind.mode_bits() | perm,
            uid: caller.uid,
            gid,
            nlink: if kind == FileKind::Directory { 2 } else { 1 },
            size: 0,
            atime_ns: t,
            mtime_ns: t,
            ctime_ns: t,
            rdev,
            generation,
            flags: 0,
            reserved: 0,
        };
        self.put(ino, rec)?;
        let cookie = self.vol.ns.next_cookie(parent);
        self.vol.apply(JournalOp::DirentPut {
            parent,
            ino,
            kind: kind as u8,
            cookie,
            name: name.to_vec(),
        })?;
        self.touch_dir(parent, t, i32::from(kind == FileKind::Directory))?;
        Ok((ino, rec))
    }

    /// Drops one link to `ino`; frees it when no link and no open handle remain.
    pub(crate) fn drop_link(&mut self, ino: u32, t: i64) -> FsResult<()> {
        let mut rec = self.inode(ino)?;
        let is_dir = rec.kind() == Some(FileKind::Directory);
        rec.nlink = if is_dir {
            0
        } else {
            rec.nlink.saturating_sub(1)
        };
        rec.ctime_ns = t;
        if rec.nlink == 0 && self.open.get(&ino).copied().unwrap_or(0) == 0 {
            return self.vol.apply(JournalOp::InodeFree { ino });
        }
        self.put(ino, rec)
    }

    /// Removes entry `name` (naming `ino`) from `parent` and drops the link it held;
    /// `parent_nlink` is -1 when the entry was a subdirectory.
    fn remove_entry(
        &mut self,
        parent: u32,
        name: &[u8],
        ino: u32,
        parent_nlink: i32,
    ) -> FsResult<()> {
        let t = now();
        self.vol.apply(JournalOp::DirentDel {
            parent,
            name: name.to_vec(),
        })?;
        self.drop_link(ino, t)?;
        self.touch_dir(parent, t, parent_nlink)?;
        self.maybe_commit()
    }

    /// True when `dir` is `ancestor` or lies below it.
    fn is_within(&self, mut dir: u32, ancestor: u32) -> bool {
        loop {
            if dir == ancestor {
                return true;
            }
            if dir == ROOT_INO {
                return false;
            }
            dir = self.vol.ns.parent_of_dir(dir);
        }
    }
}

fn mode_bits_sgid() -> u32 {
    0o2000
}

impl Filesystem {
    pub fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let g = self.lock();
        let ino = g.child(ino32(parent)?, name)?;
        let rec = g.inode(ino)?;
        Ok(g.attr(ino, &rec))
    }

    /// Creates a regular file, fifo, socket or device node.
    pub fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        caller: Caller,
    ) -> FsResult<Attr> {
        let kind = FileKind::from_mode(mode).unwrap_or(FileKind::Regular);
        if kind == FileKind::Directory || kind == FileKind::Symlink {
            return Err(FsError::Invalid("mknod of a directory or symlink"));
        }
        let rdev = match kind {
            FileKind::CharDevice | FileKind::BlockDevice => rdev,
            _ => 0,
        };
        let mut g = self.lock();
        let (ino, rec) = g.create_node(ino32(parent)?, name, kind, mode, rdev, caller)?;
        g.maybe_commit()?;
        Ok(g.attr(ino, &rec))
    }

    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32, caller: Caller) -> FsResult<Attr> {
        let mut g = self.lock();
        let (ino, rec) =
            g.create_node(ino32(parent)?, name, FileKind::Directory, mode, 0, caller)?;
        g.maybe_commit()?;
        Ok(g.attr(ino, &rec))
    }

    pub fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        caller: Caller,
    ) -> FsResult<Attr> {
        if target.is_empty() {
            return Err(FsError::NotFound);
        }
        if target.len() > SYMLINK_MAX {
            return Err(FsError::NameTooLong);
        }
        let mut g = self.lock();
        let (ino, mut rec) =
            g.create_node(ino32(parent)?, name, FileKind::Symlink, 0o777, 0, caller)?;
        rec.size = target.len() as u64;
        g.put(ino, rec)?;
        g.vol.apply(JournalOp::SymlinkPut {
            ino,
            target: target.to_vec(),
        })?;
        g.maybe_commit()?;
        Ok(g.attr(ino, &rec))
    }

    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let g = self.lock();
        let ino = ino32(ino)?;
        let rec = g.inode(ino)?;
        if rec.kind() != Some(FileKind::Symlink) {
            return Err(FsError::Invalid("not a symlink"));
        }
        g.vol
            .ns
            .symlink(ino)
            .map(|t| t.to_vec())
            .ok_or_else(|| FsError::corrupt(format!("symlink {ino} has no target")))
    }

    /// Adds a hard link `newparent/newname` to `ino`.
    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        let mut g = self.lock();
        g.writable()?;
        let (ino, newparent) = (ino32(ino)?, ino32(newparent)?);
        check_name(newname)?;
        let mut rec = g.inode(ino)?;
        let kind = rec.kind().unwrap_or(FileKind::Regular);
        if kind == FileKind::Directory {
            return Err(FsError::NotPermitted);
        }
        let prec = g.dir_inode(newparent)?;
        if prec.nlink == 0 {
            return Err(FsError::NotFound);
        }
        if g.vol.ns.lookup(newparent, newname).is_some() {
            return Err(FsError::Exists);
        }
        if rec.nlink == 0 {
            return Err(FsError::NotFound);
        }
        if rec.nlink >= LINK_MAX {
            return Err(FsError::TooManyLinks);
        }
        g.vol.ensure_space(1)?;
        let t = now();
        rec.nlink += 1;
        rec.ctime_ns = t;
        g.put(ino, rec)?;
        let cookie = g.vol.ns.next_cookie(newparent);
        g.vol.apply(JournalOp::DirentPut {
            parent: newparent,
            ino,
            kind: kind as u8,
            cookie,
            name: newname.to_vec(),
        })?;
        g.touch_dir(newparent, t, 0)?;
        g.maybe_commit()?;
        Ok(g.attr(ino, &rec))
    }

    pub fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let mut g = self.lock();
        g.writable()?;
        let parent = ino32(parent)?;
        let ino = g.child(parent, name)?;
        if g.inode(ino)?.kind() == Some(FileKind::Directory) {
            return Err(FsError::IsDir);
        }
        g.remove_entry(parent, name, ino, 0)
    }

    pub fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let mut g = self.lock();
        g.writable()?;
        let parent = ino32(parent)?;
        if name == b"." {
            return Err(FsError::Invalid("rmdir of ."));
        }
        if name == b".." {
            return Err(FsError::NotEmpty);
        }
        let ino = g.child(parent, name)?;
        if g.inode(ino)?.kind() != Some(FileKind::Directory) {
            return Err(FsError::NotDir);
        }
        if !g.vol.ns.is_empty_dir(ino) {
            return Err(FsError::NotEmpty);
        }
        g.remove_entry(parent, name, ino, -1)
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        mode: RenameMode,
    ) -> FsResult<()> {
        let mut g = self.lock();
        g.writable()?;
        let (parent, newparent) = (ino32(parent)?, ino32(newparent)?);
        check_name(newname)?;
        if name.len() > gpufs_format::NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let src = g.child(parent, name)?;
        g.dir_inode(newparent)?;
        let src_kind = g.inode(src)?.kind().unwrap_or(FileKind::Regular);
        let src_is_dir = src_kind == FileKind::Directory;
        let dst = g
            .vol
            .ns
            .lookup(newparent, newname)
            .map(|id| g.vol.ns.dirent(id).ino);
        if parent == newparent && name == newname {
            return if mode == RenameMode::NoReplace {
                Err(FsError::Exists)
            } else {
                Ok(())
            };
        }
        // A directory may not move below itself.
        if src_is_dir && g.is_within(newparent, src) {
            return Err(FsError::Invalid("rename of a directory into itself"));
        }
        let t = now();
        if mode == RenameMode::Exchange {
            let dst = dst.ok_or(FsError::NotFound)?;
            let dst_kind = g.inode(dst)?.kind().unwrap_or(FileKind::Regular);
            if dst_kind == FileKind::Directory && g.is_within(parent, dst) {
                return Err(FsError::Invalid("exchange of a directory into itself"));
            }
            return g.exchange(
                parent, name, src, src_kind, newparent, newname, dst, dst_kind, t,
            );
        }
        if let Some(dst) = dst {
            if mode == RenameMode::NoReplace {
                return Err(FsError::Exists);
            }
            if dst == src {
                return Ok(());
            }
            let dst_is_dir = g.inode(dst)?.kind() == Some(FileKind::Directory);
            match (src_is_dir, dst_is_dir) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if !g.vol.ns.is_empty_dir(dst) => return Err(FsError::NotEmpty),
                _ => {}
            }
            g.vol.apply(JournalOp::DirentDel {
                parent: newparent,
                name: newname.to_vec(),
            })?;
            g.drop_link(dst, t)?;
            if dst_is_dir {
                g.touch_dir(newparent, t, -1)?;
            }
        }
        g.vol.apply(JournalOp::DirentDel {
            parent,
            name: name.to_vec(),
        })?;
        let cookie = g.vol.ns.next_cookie(newparent);
        g.vol.apply(JournalOp::DirentPut {
            parent: newparent,
            ino: src,
            kind: src_kind as u8,
            cookie,
            name: newname.to_vec(),
        })?;
        let mut rec = g.inode(src)?;
        rec.ctime_ns = t;
        g.put(src, rec)?;
        let moved_dir = src_is_dir && parent != newparent;
        g.touch_dir(parent, t, if moved_dir { -1 } else { 0 })?;
        if parent != newparent {
            g.touch_dir(newparent, t, i32::from(moved_dir))?;
        }
        g.maybe_commit()
    }

    /// Lists `dir` after `offset` (0: from the start; "." and ".." come first). The
    /// callback returns `true` when its buffer is full.
    pub fn readdir(
        &self,
        dir: u64,
        offset: u64,
        mut emit: impl FnMut(DirEntry<'_>) -> bool,
    ) -> FsResult<()> {
        let g = self.lock();
        let dir = ino32(dir)?;
        g.dir_inode(dir)?;
        if offset < 1
            && emit(DirEntry {
                cookie: 1,
                ino: u64::from(dir),
                kind: FileKind::Directory,
                name: b".",
            })
        {
            return Ok(());
        }
        if offset < 2 {
            let parent = g.vol.ns.parent_of_dir(dir);
            if emit(DirEntry {
                cookie: 2,
                ino: u64::from(parent),
                kind: FileKind::Directory,
                name: b"..",
            }) {
                return Ok(());
            }
        }
        for (cookie, id) in g.vol.ns.entries_after(dir, offset.max(2)) {
            let d = g.vol.ns.dirent(id);
            let entry = DirEntry {
                cookie,
                ino: u64::from(d.ino),
                kind: FileKind::from_u8(d.kind).unwrap_or(FileKind::Regular),
                name: g.vol.ns.name_bytes(d),
            };
            if emit(entry) {
                break;
            }
        }
        Ok(())
    }

    /// Like [`Filesystem::readdir`], with each entry's attributes.
    pub fn readdirplus(
        &self,
        dir: u64,
        offset: u64,
        mut emit: impl FnMut(DirEntry<'_>, &Attr) -> bool,
    ) -> FsResult<()> {
        let g = self.lock();
        let dir = ino32(dir)?;
        let drec = g.dir_inode(dir)?;
        if offset < 1 {
            let a = g.attr(dir, &drec);
            if emit(
                DirEntry {
                    cookie: 1,
                    ino: u64::from(dir),
                    kind: FileKind::Directory,
                    name: b".",
                },
                &a,
            ) {
                return Ok(());
            }
        }
        if offset < 2 {
            let parent = g.vol.ns.parent_of_dir(dir);
            let a = g.attr(parent, &g.inode(parent)?);
            if emit(
                DirEntry {
                    cookie: 2,
                    ino: u64::from(parent),
                    kind: FileKind::Directory,
                    name: b"..",
                },
                &a,
            ) {
                return Ok(());
            }
        }
        for (cookie, id) in g.vol.ns.entries_after(dir, offset.max(2)) {
            let d = g.vol.ns.dirent(id);
            let rec = g.inode(d.ino)?;
            let a = g.attr(d.ino, &rec);
            let entry = DirEntry {
                cookie,
                ino: u64::from(d.ino),
                kind: FileKind::from_u8(d.kind).unwrap_or(FileKind::Regular),
                name: g.vol.ns.name_bytes(d),
            };
            if emit(entry, &a) {
                break;
            }
        }
        Ok(())
    }
}

impl Inner {
    #[allow(clippy::too_many_arguments)]
    fn exchange(
        &mut self,
        parent: u32,
        name: &[u8],
        src: u32,
        src_kind: FileKind,
        newparent: u32,
        newname: &[u8],
        dst: u32,
        dst_kind: FileKind,
        t: i64,
    ) -> FsResult<()> {
        if src == dst {
            return Ok(());
        }
        let c_src = self.cookie_of(parent, name)?;
        let c_dst = self.cookie_of(newparent, newname)?;
        for (p, n) in [(parent, name), (newparent, newname)] {
            self.vol.apply(JournalOp::DirentDel {
                parent: p,
                name: n.to_vec(),
            })?;
        }
        self.vol.apply(JournalOp::DirentPut {
            parent,
            ino: dst,
            kind: dst_kind as u8,
            cookie: c_src,
            name: name.to_vec(),
        })?;
        self.vol.apply(JournalOp::DirentPut {
            parent: newparent,
            ino: src,
            kind: src_kind as u8,
            cookie: c_dst,
            name: newname.to_vec(),
        })?;
        for ino in [src, dst] {
            let mut rec = self.inode(ino)?;
            rec.ctime_ns = t;
            self.put(ino, rec)?;
        }
        let d_src = i32::from(src_kind == FileKind::Directory);
        let d_dst = i32::from(dst_kind == FileKind::Directory);
        if parent == newparent {
            self.touch_dir(parent, t, 0)?;
        } else {
            self.touch_dir(parent, t, d_dst - d_src)?;
            self.touch_dir(newparent, t, d_src - d_dst)?;
        }
        self.maybe_commit()
    }

    fn cookie_of(&self, parent: u32, name: &[u8]) -> FsResult<u64> {
        let id = self.vol.ns.lookup(parent, name).ok_or(FsError::NotFound)?;
        Ok(self.vol.ns.dirent(id).cookie)
    }
}
