//! Inode flags as `chattr`/`lsattr` see them (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS):
//! immutable (`+i`) and append-only (`+a`), stored in the inode's flags (format v4) and
//! enforced here, as ext4 enforces them, since the kernel leaves a FUSE inode's flags to
//! the daemon.

use gpufs_format::props::{APPEND_FLAG, IMMUTABLE_FLAG};
use gpufs_format::InodeRecord;

use super::{now, Caller, Filesystem, Inner};
use crate::error::{FsError, FsResult};
use crate::units::Ino;

/// FS_IMMUTABLE_FL, as `chattr +i` sets it.
pub const FS_IMMUTABLE_FL: u32 = 0x10;
/// FS_APPEND_FL, as `chattr +a` sets it.
pub const FS_APPEND_FL: u32 = 0x20;

impl Filesystem {
    /// The inode's flags in FS_IOC_GETFLAGS form.
    pub fn attr_flags(&self, ino: u64) -> FsResult<u32> {
        let g = self.lock();
        let rec = g.inode(Ino::from_kernel(ino)?)?;
        let mut out = 0;
        if rec.flags & IMMUTABLE_FLAG != 0 {
            out |= FS_IMMUTABLE_FL;
        }
        if rec.flags & APPEND_FLAG != 0 {
            out |= FS_APPEND_FL;
        }
        Ok(out)
    }

    /// Sets the inode's flags from FS_IOC_SETFLAGS form: only immutable and append-only
    /// are kept (others: EOPNOTSUPP), and only root changes them (EPERM), as without
    /// CAP_LINUX_IMMUTABLE.
    pub fn set_attr_flags(&self, ino: u64, flags: u32, caller: Caller) -> FsResult<()> {
        if flags & !(FS_IMMUTABLE_FL | FS_APPEND_FL) != 0 {
            return Err(FsError::NotSupported);
        }
        let mut g = self.lock();
        g.writable()?;
        let ino = Ino::from_kernel(ino)?;
        let rec = g.inode(ino)?;
        let mut want = rec.flags & !(IMMUTABLE_FLAG | APPEND_FLAG);
        if flags & FS_IMMUTABLE_FL != 0 {
            want |= IMMUTABLE_FLAG;
        }
        if flags & FS_APPEND_FL != 0 {
            want |= APPEND_FLAG;
        }
        if want == rec.flags {
            return Ok(());
        }
        if caller.uid != 0 {
            return Err(FsError::NotPermitted);
        }
        g.put(
            ino,
            InodeRecord {
                flags: want,
                ctime_ns: now(),
                ..rec
            },
        )?;
        g.maybe_commit()
    }

    /// Refuses to open `ino` for writing when it is immutable, or append-only and the
    /// open is not O_APPEND (EPERM).
    pub fn check_open_for_write(&self, ino: u64, append: bool) -> FsResult<()> {
        let g = self.lock();
        let rec = g.inode(Ino::from_kernel(ino)?)?;
        if rec.flags & IMMUTABLE_FLAG != 0 || (rec.flags & APPEND_FLAG != 0 && !append) {
            return Err(FsError::NotPermitted);
        }
        Ok(())
    }
}

impl Inner {
    /// EPERM when `ino` is immutable.
    pub(crate) fn not_immutable(&self, ino: Ino) -> FsResult<()> {
        if self.inode(ino)?.flags & IMMUTABLE_FLAG != 0 {
            return Err(FsError::NotPermitted);
        }
        Ok(())
    }

    /// EPERM when `ino` is immutable or append-only: what may not be removed, renamed,
    /// truncated, have attributes set, or (a directory) lose entries.
    pub(crate) fn not_frozen(&self, ino: Ino) -> FsResult<()> {
        if self.inode(ino)?.flags & (IMMUTABLE_FLAG | APPEND_FLAG) != 0 {
            return Err(FsError::NotPermitted);
        }
        Ok(())
    }

    /// A write of `ino` at `offset`: EPERM when immutable, or append-only and not at
    /// the end of the file.
    pub(crate) fn may_write_at(&self, ino: Ino, offset: u64) -> FsResult<()> {
        let rec = self.inode(ino)?;
        if rec.flags & IMMUTABLE_FLAG != 0 || (rec.flags & APPEND_FLAG != 0 && offset != rec.size) {
            return Err(FsError::NotPermitted);
        }
        Ok(())
    }
}
