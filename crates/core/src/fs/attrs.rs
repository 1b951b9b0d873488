//! Attributes: getattr/setattr, extended attributes, statfs, access.

use gpufs_format::journal::{XATTR_NAME_MAX, XATTR_VALUE_MAX};
use gpufs_format::{FileKind, InodeRecord, BLOCK_SIZE, NAME_MAX};

use super::acl;
use super::{now, Attr, Caller, Filesystem, Inner, MAX_FILE_SIZE};
use crate::error::{FsError, FsResult};
use crate::units::Ino;

/// A time to set: the current time, or a given one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(i64),
}

/// The changes of one setattr call; `None` leaves a field alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    pub ctime: Option<i64>,
}

/// What `statfs` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

pub const XATTR_CREATE: i32 = 1;
pub const XATTR_REPLACE: i32 = 2;

fn check_xattr_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() {
        return Err(FsError::Invalid("empty attribute name"));
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(FsError::Range);
    }
    let known = [&b"user."[..], b"trusted.", b"security."];
    let acl = name == acl::ACCESS || name == acl::DEFAULT;
    if !acl
        && !known
            .iter()
            .any(|p| name.starts_with(p) && name.len() > p.len())
    {
        return Err(FsError::NotSupported);
    }
    Ok(())
}

/// `mode` without set-user-ID, and without set-group-ID when group-executable (a
/// set-group-ID bit without group execute marks mandatory locking and stays).
fn without_setid(mode: u32) -> u32 {
    let mut m = mode & !0o4000;
    if m & 0o010 != 0 {
        m &= !0o2000;
    }
    m
}

/// The extended attribute holding file capabilities, dropped with the set-id bits.
const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// `mode` after `caller` (without CAP_FSETID) changed the file's data — a write,
/// truncation, fallocate or hole punch — as Linux decides it: set-user-ID dropped;
/// set-group-ID dropped when the file is group-executable, or when the caller is not
/// in the file's group `gid` (its primary group, or one of `groups`); root counts as a
/// member.
fn after_unprivileged_change(mode: u32, gid: u32, caller: Caller, groups: &[u32]) -> u32 {
    let member = caller.uid == 0 || caller.gid == gid || groups.contains(&gid);
    let mut m = mode & !0o4000;
    if m & 0o010 != 0 || !member {
        m &= !0o2000;
    }
    m
}

impl Filesystem {
    /// Drops what a change of the file's data by an unprivileged process must drop
    /// (the kernel asks with FUSE_WRITE_KILL_SUIDGID on a write; the FUSE adapter asks
    /// before a truncation, fallocate or copy by another user): set-user-ID,
    /// set-group-ID as [`after_unprivileged_change`] says, and file capabilities.
    /// `groups` are the caller's supplementary groups.
    pub fn kill_privileges(&self, ino: u64, caller: Caller, groups: &[u32]) -> FsResult<()> {
        let mut g = self.lock();
        g.writable()?;
        let ino = Ino::from_kernel(ino)?;
        let rec = g.inode(ino)?;
        let mode = after_unprivileged_change(rec.mode, rec.gid, caller, groups);
        if mode != rec.mode {
            g.put(
                ino,
                InodeRecord {
                    mode,
                    ctime_ns: now(),
                    ..rec
                },
            )?;
        }
        if g.has_xattr(ino, CAPABILITY_XATTR) {
            g.vol.remove_xattr(ino, CAPABILITY_XATTR)?;
            g.changed_xattrs(ino)?;
        }
        Ok(())
    }

    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let g = self.lock();
        let ino = Ino::from_kernel(ino)?;
        let rec = g.inode(ino)?;
        Ok(g.attr(ino, &rec))
    }

    pub fn setattr(&self, ino: u64, set: &SetAttr, caller: Caller) -> FsResult<Attr> {
        let mut g = self.lock();
        g.writable()?;
        let ino = Ino::from_kernel(ino)?;
        let mut rec = g.inode(ino)?;
        let changes = set.size.is_some()
            || set.mode.is_some()
            || set.uid.is_some()
            || set.gid.is_some()
            || set.atime.is_some()
            || set.mtime.is_some();
        if changes {
            g.not_frozen(ino)?;
        }
        let t = now();
        let is_dir = rec.kind() == Some(FileKind::Directory);
        if let Some(size) = set.size {
            match rec.kind() {
                Some(FileKind::Regular) => {}
                Some(FileKind::Directory) => return Err(FsError::IsDir),
                _ => return Err(FsError::Invalid("truncate of a special file")),
            }
            if size > MAX_FILE_SIZE {
                return Err(FsError::FileTooBig);
            }
            if size != rec.size {
                g.truncate_data(ino, size, rec.size)?;
                g.vol.trim_prealloc(ino, size)?;
            }
            rec = InodeRecord {
                size,
                mtime_ns: t,
                ..g.inode(ino)?
            };
            // Truncation by an unprivileged caller drops set-user-ID, and set-group-ID
            // on a group-executable file, as Linux does (the mount handles this itself:
            // FUSE_HANDLE_KILLPRIV_V2; the FUSE adapter also calls `kill_privileges`
            // first, which knows the caller's groups for a set-group-ID file without
            // group execute).
            if caller.uid != 0 {
                rec.mode = without_setid(rec.mode);
            }
        }
        if let Some(mode) = set.mode {
            rec.mode = (rec.mode & !0o7777) | (mode & 0o7777);
            g.chmod_acl(ino, rec.mode)?;
        }
        let owner_change =
            set.uid.is_some_and(|u| u != rec.uid) || set.gid.is_some_and(|g| g != rec.gid);
        if let Some(uid) = set.uid {
            rec.uid = uid;
        }
        if let Some(gid) = set.gid {
            rec.gid = gid;
        }
        if (set.uid.is_some() || set.gid.is_some()) && !is_dir && set.mode.is_none() {
            // Linux: a change of owner or group drops set-user-ID, and set-group-ID on a
            // group-executable file, for every caller.
            if owner_change || caller.uid != 0 {
                rec.mode = without_setid(rec.mode);
            }
        }
        match set.atime {
            Some(TimeSet::Now) => rec.atime_ns = t,
            Some(TimeSet::At(v)) => rec.atime_ns = v,
            None => {}
        }
        match set.mtime {
            Some(TimeSet::Now) => rec.mtime_ns = t,
            Some(TimeSet::At(v)) => rec.mtime_ns = v,
            None => {}
        }
        rec.ctime_ns = set.ctime.unwrap_or(t);
        g.put(ino, rec)?;
        g.debug_check_size(ino, rec.size);
        g.maybe_commit()?;
        Ok(g.attr(ino, &rec))
    }

    pub fn statfs(&self) -> StatFs {
        let g = self.lock();
        let free = g.vol.available_blocks();
        let files_max = u64::from(u32::MAX - 2);
        StatFs {
            blocks: g.vol.data_blocks(),
            bfree: free,
            bavail: free,
            files: files_max,
            ffree: files_max - g.vol.namespace().live_inodes(),
            bsize: BLOCK_SIZE as u32,
            namelen: NAME_MAX as u32,
            frsize: BLOCK_SIZE as u32,
        }
    }

    /// Makes everything durable (fsync, fdatasync, fsyncdir, syncfs).
    pub fn fsync(&self, _ino: u64) -> FsResult<()> {
        self.sync()
    }

    /// Permission check for access(2): `mask` of R_OK=4, W_OK=2, X_OK=1.
    pub fn access(&self, ino: u64, mask: i32, caller: Caller, groups: &[u32]) -> FsResult<()> {
        let g = self.lock();
        let rec = g.inode(Ino::from_kernel(ino)?)?;
        if mask & 2 != 0 && g.vol.is_read_only() {
            return Err(FsError::ReadOnly);
        }
        let mask = (mask & 7) as u32;
        if mask == 0 {
            return Ok(());
        }
        if caller.uid == 0 {
            // Root may do anything but execute a file no one may execute.
            let any_x = rec.mode & 0o111 != 0 || rec.kind() == Some(FileKind::Directory);
            return if mask & 1 != 0 && !any_x {
                Err(FsError::Access)
            } else {
                Ok(())
            };
        }
        let bits = if caller.uid == rec.uid {
            (rec.mode >> 6) & 7
        } else if caller.gid == rec.gid || groups.contains(&rec.gid) {
            (rec.mode >> 3) & 7
        } else {
            rec.mode & 7
        };
        if bits & mask == mask {
            Ok(())
        } else {
            Err(FsError::Access)
        }
    }

    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32) -> FsResult<()> {
        check_xattr_name(name)?;
        if value.len() > XATTR_VALUE_MAX {
            return Err(FsError::TooBig);
        }
        let mut g = self.lock();
        g.writable()?;
        let ino = Ino::from_kernel(ino)?;
        let rec = g.inode(ino)?;
        if name.starts_with(b"user.")
            && !matches!(
                rec.kind(),
                Some(FileKind::Regular) | Some(FileKind::Directory)
            )
        {
            return Err(FsError::NotPermitted);
        }
        let exists = g.has_xattr(ino, name);
        if flags & XATTR_CREATE != 0 && exists {
            return Err(FsError::Exists);
        }
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(FsError::NoData);
        }
        g.not_frozen(ino)?;
        g.vol.ensure_space(1)?;
        if name == acl::ACCESS || name == acl::DEFAULT {
            return g.set_acl(ino, rec, name, value);
        }
        g.vol.set_xattr(ino, name, value)?;
        g.changed_xattrs(ino)
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        if name.len() > XATTR_NAME_MAX {
            return Err(FsError::Range);
        }
        let g = self.lock();
        let ino = Ino::from_kernel(ino)?;
        g.inode(ino)?;
        g.xattr(ino, name).ok_or(FsError::NoData)
    }

    /// Names, each followed by a NUL, as listxattr(2) returns them.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let g = self.lock();
        let ino = Ino::from_kernel(ino)?;
        g.inode(ino)?;
        let mut out = Vec::new();
        for (n, _) in g.vol.namespace().xattrs(ino.get()) {
            out.extend_from_slice(n);
            out.push(0);
        }
        Ok(out)
    }

    pub fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        if name.len() > XATTR_NAME_MAX {
            return Err(FsError::Range);
        }
        let mut g = self.lock();
        g.writable()?;
        let ino = Ino::from_kernel(ino)?;
        g.inode(ino)?;
        if !g.has_xattr(ino, name) {
            return Err(FsError::NoData);
        }
        g.not_frozen(ino)?;
        g.vol.remove_xattr(ino, name)?;
        g.changed_xattrs(ino)
    }
}

impl Inner {
    /// Sets the access or default ACL of `ino` (record `rec`) from its xattr form. An
    /// access ACL sets the mode's permission bits, and is kept only when the mode cannot
    /// say all of it; a default ACL only on a directory; an empty ACL removes it.
    fn set_acl(&mut self, ino: Ino, rec: InodeRecord, name: &[u8], value: &[u8]) -> FsResult<()> {
        let parsed = acl::Acl::decode(value)?;
        let keep = match (&parsed, name == acl::ACCESS) {
            (Some(a), true) => {
                let (bits, equivalent) = a.mode_bits();
                let mode = (rec.mode & !0o777) | bits;
                if mode != rec.mode {
                    self.put(ino, InodeRecord { mode, ..rec })?;
                }
                !equivalent
            }
            (Some(_), false) => {
                if rec.kind() != Some(FileKind::Directory) {
                    return Err(FsError::Access);
                }
                true
            }
            (None, _) => false,
        };
        if keep {
            self.vol.set_xattr(ino, name, value)?;
        } else if self.has_xattr(ino, name) {
            self.vol.remove_xattr(ino, name)?;
        }
        self.changed_xattrs(ino)
    }

    /// After a chmod of `ino` to `mode`: its access ACL, if any, takes the new owner,
    /// mask (or group) and other permissions.
    fn chmod_acl(&mut self, ino: Ino, mode: u32) -> FsResult<()> {
        let stored = self.xattr(ino, acl::ACCESS);
        let Some(mut a) = stored.and_then(|v| acl::Acl::decode(&v).ok().flatten()) else {
            return Ok(());
        };
        a.chmod(mode);
        self.vol.set_xattr(ino, acl::ACCESS, &a.encode())
    }

    /// The value of extended attribute `name` of `ino`, if set.
    pub(crate) fn xattr(&self, ino: Ino, name: &[u8]) -> Option<Vec<u8>> {
        let xattrs = self.vol.namespace().xattrs(ino.get());
        xattrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn has_xattr(&self, ino: Ino, name: &[u8]) -> bool {
        let xattrs = self.vol.namespace().xattrs(ino.get());
        xattrs.iter().any(|(n, _)| n == name)
    }

    /// After a change of `ino`'s extended attributes: its ctime moves, and the change
    /// may be committed.
    fn changed_xattrs(&mut self, ino: Ino) -> FsResult<()> {
        self.touch_ctime(ino, now())?;
        self.maybe_commit()
    }
}
