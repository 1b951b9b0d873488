//! Namespace operations: lookup, create, link, unlink, rename, readdir.

use gpufs_format::journal::SYMLINK_MAX;
use gpufs_format::{FileKind, InodeRecord};

use super::acl;
use super::{check_name, now, Attr, Caller, DirEntry, Filesystem, Inner, LINK_MAX};
use crate::error::{FsError, FsResult};
use crate::units::Ino;

/// What a create makes: its kind, permission bits and device number.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewNode {
    pub(crate) kind: FileKind,
    pub(crate) mode: u32,
    pub(crate) rdev: u32,
}

/// One directory entry taking part in a rename: where it is, and what it names.
struct Named<'a> {
    parent: Ino,
    name: &'a [u8],
    ino: Ino,
    kind: FileKind,
}

/// How `rename` treats an existing target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameMode {
    /// Replace it (POSIX rename).
    Replace,
    /// Fail with EEXIST (RENAME_NOREPLACE).
    NoReplace,
    /// Swap the two entries (RENAME_EXCHANGE).
    Exchange,
    /// Replace it (unless `replace` is false: EEXIST) and leave a whiteout, a character
    /// device 0:0 owned by `owner`, at the old name (RENAME_WHITEOUT, as overlayfs asks
    /// of its upper layer), in the same transaction.
    Whiteout { replace: bool, owner: Caller },
}

impl Inner {
    /// Looks a name up; returns the dirent's target inode.
    pub(crate) fn child(&self, parent: Ino, name: &[u8]) -> FsResult<Ino> {
        self.dir_inode(parent)?;
        if name.len() > gpufs_format::NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let entry = self.vol.entry(parent, name).ok_or(FsError::NotFound)?;
        Ok(Ino::new(entry.ino))
    }

    /// Creates `node` named `name` in `parent`; returns its number and record.
    pub(crate) fn create_node(
        &mut self,
        parent: Ino,
        name: &[u8],
        node: NewNode,
        caller: Caller,
    ) -> FsResult<(Ino, InodeRecord)> {
        let NewNode { kind, mode, rdev } = node;
        self.writable()?;
        check_name(name)?;
        let prec = self.dir_inode(parent)?;
        if prec.nlink == 0 {
            return Err(FsError::NotFound);
        }
        if self.vol.entry(parent, name).is_some() {
            return Err(FsError::Exists);
        }
        self.not_immutable(parent)?;
        if kind == FileKind::Directory && prec.nlink >= u32::MAX - 1 {
            return Err(FsError::TooManyLinks);
        }
        self.vol.ensure_space(1)?;
        let ino = self.vol.free_ino()?;
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
        let (perm, acls) = self.inherited_acls(parent, kind, perm, caller.umask)?;
        let generation = self.vol.namespace().raw_generation(ino.get());
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
            // Properties are inherited at creation.
            flags: prec.flags & gpufs_format::props::INHERITED_FLAGS,
            prealloc_blocks: 0,
        };
        self.put(ino, rec)?;
        for (acl_name, value) in acls {
            self.vol.set_xattr(ino, acl_name, &value)?;
        }
        self.vol.add_entry(parent, name, ino, kind)?;
        self.touch_dir(parent, t, i32::from(kind == FileKind::Directory))?;
        Ok((ino, rec))
    }

    /// The permission bits and ACLs of a node of `kind` created in `parent` with `perm`:
    /// with a default ACL there, an access ACL inherited from it and masked by `perm`
    /// (a directory also inherits the default ACL itself); without one, `perm` less the
    /// umask. Symlinks have neither.
    fn inherited_acls(
        &self,
        parent: Ino,
        kind: FileKind,
        perm: u32,
        umask: u32,
    ) -> FsResult<(u32, acl::NewXattrs)> {
        if kind == FileKind::Symlink {
            return Ok((perm, Vec::new()));
        }
        let default = self.xattr(parent, acl::DEFAULT);
        let Some((bytes, mut inherited)) =
            default.and_then(|b| acl::Acl::decode(&b).ok().flatten().map(|a| (b, a)))
        else {
            return Ok((perm & !(umask & 0o777), Vec::new()));
        };
        let bits = inherited.create_masked(perm);
        let mut acls = Vec::new();
        if !inherited.mode_bits().1 {
            acls.push((acl::ACCESS, inherited.encode()));
        }
        if kind == FileKind::Directory {
            acls.push((acl::DEFAULT, bytes));
        }
        Ok(((perm & !0o777) | bits, acls))
    }

    /// Drops one link to `ino`; frees it when no link and no open handle remain.
    pub(crate) fn drop_link(&mut self, ino: Ino, t: i64) -> FsResult<()> {
        let mut rec = self.inode(ino)?;
        let is_dir = rec.kind() == Some(FileKind::Directory);
        rec.nlink = if is_dir {
            0
        } else {
            rec.nlink.saturating_sub(1)
        };
        rec.ctime_ns = t;
        if rec.nlink == 0 && self.open.get(&ino).copied().unwrap_or(0) == 0 {
            return self.vol.free_inode(ino);
        }
        self.put(ino, rec)
    }

    /// Removes entry `name` (naming `ino`) from `parent` and drops the link it held;
    /// `parent_nlink` is -1 when the entry was a subdirectory.
    fn remove_entry(
        &mut self,
        parent: Ino,
        name: &[u8],
        ino: Ino,
        parent_nlink: i32,
    ) -> FsResult<()> {
        self.not_frozen(parent)?;
        self.not_frozen(ino)?;
        let t = now();
        self.vol.remove_entry(parent, name)?;
        self.drop_link(ino, t)?;
        self.touch_dir(parent, t, parent_nlink)?;
        self.maybe_commit()
    }

    /// True when `dir` is `ancestor` or lies below it.
    fn is_within(&self, mut dir: Ino, ancestor: Ino) -> bool {
        loop {
            if dir == ancestor {
                return true;
            }
            if dir == Ino::ROOT {
                return false;
            }
            dir = self.parent_of_dir(dir);
        }
    }

    /// Parent directory of a directory (the root is its own parent).
    pub(crate) fn parent_of_dir(&self, dir: Ino) -> Ino {
        Ino::new(self.vol.namespace().parent_of_dir(dir.get()))
    }
}

fn mode_bits_sgid() -> u32 {
    0o2000
}

impl Filesystem {
    /// The inode `name` in directory `parent` names. The kernel asks for "." and ".."
    /// only to turn a file handle back into an inode it no longer holds: "." is `parent`
    /// itself (of any kind; a freed slot is `NotFound`, a reused one differs in
    /// generation), ".." a directory's parent.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let g = self.lock();
        let parent = Ino::from_kernel(parent)?;
        let ino = match name {
            b"." => {
                g.inode(parent)?;
                parent
            }
            b".." => {
                g.dir_inode(parent)?;
                g.parent_of_dir(parent)
            }
            _ => g.child(parent, name)?,
        };
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
        let node = NewNode { kind, mode, rdev };
        self.make_node(parent, name, node, caller, false)
    }

    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32, caller: Caller) -> FsResult<Attr> {
        let node = NewNode {
            kind: FileKind::Directory,
            mode,
            rdev: 0,
        };
        self.make_node(parent, name, node, caller, false)
    }

    /// Creates `node` as `name` in `parent` and returns its attributes; with `open`,
    /// the new node counts one open handle (create(2) opens the file it makes).
    pub(crate) fn make_node(
        &self,
        parent: u64,
        name: &[u8],
        node: NewNode,
        caller: Caller,
        open: bool,
    ) -> FsResult<Attr> {
        let mut g = self.lock();
        let (ino, rec) = g.create_node(Ino::from_kernel(parent)?, name, node, caller)?;
        if open {
            *g.open.entry(ino).or_insert(0) += 1;
        }
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
        let node = NewNode {
            kind: FileKind::Symlink,
            mode: 0o777,
            rdev: 0,
        };
        let (ino, mut rec) = g.create_node(Ino::from_kernel(parent)?, name, node, caller)?;
        rec.size = target.len() as u64;
        g.put(ino, rec)?;
        g.vol.set_symlink(ino, target)?;
        g.maybe_commit()?;
        Ok(g.attr(ino, &rec))
    }

    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let g = self.lock();
        let ino = Ino::from_kernel(ino)?;
        let rec = g.inode(ino)?;
        if rec.kind() != Some(FileKind::Symlink) {
            return Err(FsError::Invalid("not a symlink"));
        }
        g.vol
            .namespace()
            .symlink(ino.get())
            .map(|t| t.to_vec())
            .ok_or_else(|| FsError::corrupt(format!("symlink {ino} has no target")))
    }

    /// Adds a hard link `newparent/newname` to `ino`.
    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        let mut g = self.lock();
        g.writable()?;
        let (ino, newparent) = (Ino::from_kernel(ino)?, Ino::from_kernel(newparent)?);
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
        if g.vol.entry(newparent, newname).is_some() {
            return Err(FsError::Exists);
        }
        if rec.nlink == 0 {
            return Err(FsError::NotFound);
        }
        if rec.nlink >= LINK_MAX {
            return Err(FsError::TooManyLinks);
        }
        g.not_frozen(ino)?;
        g.not_immutable(newparent)?;
        g.vol.ensure_space(1)?;
        let t = now();
        rec.nlink += 1;
        rec.ctime_ns = t;
        g.put(ino, rec)?;
        g.vol.add_entry(newparent, newname, ino, kind)?;
        g.touch_dir(newparent, t, 0)?;
        g.maybe_commit()?;
        Ok(g.attr(ino, &rec))
    }

    pub fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let mut g = self.lock();
        g.writable()?;
        let parent = Ino::from_kernel(parent)?;
        let ino = g.child(parent, name)?;
        if g.inode(ino)?.kind() == Some(FileKind::Directory) {
            return Err(FsError::IsDir);
        }
        g.remove_entry(parent, name, ino, 0)
    }

    pub fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let mut g = self.lock();
        g.writable()?;
        let parent = Ino::from_kernel(parent)?;
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
        if !g.vol.namespace().is_empty_dir(ino.get()) {
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
        let (parent, newparent) = (Ino::from_kernel(parent)?, Ino::from_kernel(newparent)?);
        check_name(newname)?;
        if name.len() > gpufs_format::NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let src = g.child(parent, name)?;
        g.dir_inode(newparent)?;
        let src_kind = g.inode(src)?.kind().unwrap_or(FileKind::Regular);
        let src_is_dir = src_kind == FileKind::Directory;
        let dst = g.vol.entry(newparent, newname).map(|d| Ino::new(d.ino));
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
        // Nothing immutable or append-only is moved or replaced, no entry leaves such a
        // directory, and none enters an immutable one.
        g.not_frozen(src)?;
        g.not_frozen(parent)?;
        g.not_immutable(newparent)?;
        if let Some(dst) = dst {
            g.not_frozen(dst)?;
        }
        let t = now();
        let from = Named {
            parent,
            name,
            ino: src,
            kind: src_kind,
        };
        if mode == RenameMode::Exchange {
            let dst = dst.ok_or(FsError::NotFound)?;
            let dst_kind = g.inode(dst)?.kind().unwrap_or(FileKind::Regular);
            if dst_kind == FileKind::Directory && g.is_within(parent, dst) {
                return Err(FsError::Invalid("exchange of a directory into itself"));
            }
            let to = Named {
                parent: newparent,
                name: newname,
                ino: dst,
                kind: dst_kind,
            };
            return g.exchange(&from, &to, t);
        }
        let whiteout = match mode {
            RenameMode::Whiteout { owner, .. } => Some(owner),
            _ => None,
        };
        if let Some(dst) = dst {
            let no_replace = matches!(
                mode,
                RenameMode::NoReplace | RenameMode::Whiteout { replace: false, .. }
            );
            if no_replace {
                return Err(FsError::Exists);
            }
            if dst == src && whiteout.is_none() {
                return Ok(());
            }
        }
        if whiteout.is_some() {
            // Room for the whiteout first: the rename must not happen without it.
            g.vol.ensure_space(1)?;
        }
        if let Some(dst) = dst.filter(|d| *d != src) {
            g.unlink_replaced(newparent, newname, dst, src_is_dir, t)?;
        }
        g.move_entry(&from, newparent, newname, t)?;
        if let Some(owner) = whiteout {
            let node = NewNode {
                kind: FileKind::CharDevice,
                mode: FileKind::CharDevice.mode_bits(),
                rdev: 0,
            };
            g.create_node(parent, name, node, owner)?;
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
        g.list_dir(Ino::from_kernel(dir)?, offset, |e| Ok(emit(e)))
    }

    /// Like [`Filesystem::readdir`], with each entry's attributes.
    pub fn readdirplus(
        &self,
        dir: u64,
        offset: u64,
        mut emit: impl FnMut(DirEntry<'_>, &Attr) -> bool,
    ) -> FsResult<()> {
        let g = self.lock();
        g.list_dir(Ino::from_kernel(dir)?, offset, |e| {
            let ino = Ino::from_kernel(e.ino)?;
            let a = g.attr(ino, &g.inode(ino)?);
            Ok(emit(e, &a))
        })
    }
}

impl Inner {
    /// Hands `emit` the entries of directory `dir` after `offset`: "." (cookie 1),
    /// ".." (2), then the directory's own in cookie order, until `emit` returns
    /// `true` (its buffer is full).
    fn list_dir(
        &self,
        dir: Ino,
        offset: u64,
        mut emit: impl FnMut(DirEntry<'_>) -> FsResult<bool>,
    ) -> FsResult<()> {
        self.dir_inode(dir)?;
        let parent = u64::from(self.parent_of_dir(dir));
        if super::emit_dots(u64::from(dir), parent, offset, &mut emit)? {
            return Ok(());
        }
        let ns = self.vol.namespace();
        for (cookie, id) in ns.entries_after(dir.get(), offset.max(2)) {
            let d = ns.dirent(id);
            let entry = DirEntry {
                cookie,
                ino: u64::from(d.ino),
                kind: FileKind::from_u8(d.kind).unwrap_or(FileKind::Regular),
                name: ns.name_bytes(d),
            };
            if emit(entry)? {
                break;
            }
        }
        Ok(())
    }
}

impl Inner {
    /// Removes the entry `newname` in `newparent` that a rename replaces (naming
    /// `dst`), after checking that `dst` may be replaced by the source.
    fn unlink_replaced(
        &mut self,
        newparent: Ino,
        newname: &[u8],
        dst: Ino,
        src_is_dir: bool,
        t: i64,
    ) -> FsResult<()> {
        let dst_is_dir = self.inode(dst)?.kind() == Some(FileKind::Directory);
        match (src_is_dir, dst_is_dir) {
            (true, false) => return Err(FsError::NotDir),
            (false, true) => return Err(FsError::IsDir),
            (true, true) if !self.vol.namespace().is_empty_dir(dst.get()) => {
                return Err(FsError::NotEmpty)
            }
            _ => {}
        }
        self.vol.remove_entry(newparent, newname)?;
        self.drop_link(dst, t)?;
        if dst_is_dir {
            self.touch_dir(newparent, t, -1)?;
        }
        Ok(())
    }

    /// Moves entry `from` to `newname` in `newparent` (free now). Within one directory
    /// the entry keeps its readdir position, so a listing running beside renames sees
    /// each entry once (under its old name or its new one), never again and again; moved
    /// to another directory it goes after every entry there.
    fn move_entry(
        &mut self,
        from: &Named<'_>,
        newparent: Ino,
        newname: &[u8],
        t: i64,
    ) -> FsResult<()> {
        let cookie = if newparent == from.parent {
            Some(self.cookie_of(from.parent, from.name)?)
        } else {
            None
        };
        self.vol.remove_entry(from.parent, from.name)?;
        match cookie {
            Some(c) => self
                .vol
                .put_entry(newparent, newname, from.ino, from.kind, c)?,
            None => self
                .vol
                .add_entry(newparent, newname, from.ino, from.kind)?,
        }
        self.touch_ctime(from.ino, t)?;
        let moved_dir = from.kind == FileKind::Directory && from.parent != newparent;
        self.touch_dir(from.parent, t, if moved_dir { -1 } else { 0 })?;
        if from.parent != newparent {
            self.touch_dir(newparent, t, i32::from(moved_dir))?;
        }
        Ok(())
    }

    /// Swaps the inodes two entries name (RENAME_EXCHANGE); each name keeps its
    /// readdir position.
    fn exchange(&mut self, a: &Named<'_>, b: &Named<'_>, t: i64) -> FsResult<()> {
        if a.ino == b.ino {
            return Ok(());
        }
        let c_a = self.cookie_of(a.parent, a.name)?;
        let c_b = self.cookie_of(b.parent, b.name)?;
        for e in [a, b] {
            self.vol.remove_entry(e.parent, e.name)?;
        }
        self.vol.put_entry(a.parent, a.name, b.ino, b.kind, c_a)?;
        self.vol.put_entry(b.parent, b.name, a.ino, a.kind, c_b)?;
        self.touch_ctime(a.ino, t)?;
        self.touch_ctime(b.ino, t)?;
        let d_a = i32::from(a.kind == FileKind::Directory);
        let d_b = i32::from(b.kind == FileKind::Directory);
        if a.parent == b.parent {
            self.touch_dir(a.parent, t, 0)?;
        } else {
            self.touch_dir(a.parent, t, d_b - d_a)?;
            self.touch_dir(b.parent, t, d_a - d_b)?;
        }
        self.maybe_commit()
    }

    fn cookie_of(&self, parent: Ino, name: &[u8]) -> FsResult<u64> {
        let entry = self.vol.entry(parent, name).ok_or(FsError::NotFound)?;
        Ok(entry.cookie)
    }
}
