//! The FUSE adapter: `fuser::Filesystem` calls translated into `gpufs_core` calls, errors
//! into errnos. No filesystem logic lives here. [`Daemon`] serves a mount: this adapter,
//! and the control socket the `gpufs` front asks (`control/`).
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod caller;
mod control;
mod daemon;
mod flags_ioctl;
mod readahead;
mod reply;
mod search_dir;
mod snapshot_dir;
mod workers;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileHandle, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use gpufs_compute::LazyCompute;
use gpufs_core::fs::{RenameMode, SetAttr};
use gpufs_core::time::system_time_ns;
use gpufs_core::{Caller, Filesystem, FsError};
use gpufs_format::{FileKind, BLOCK_SIZE};
use reply::{answer, blank_attr, caller, file_attr, file_type, time_set, NO_TTL, TTL};
use search_dir::{is_virtual, SearchDir};
use snapshot_dir::is_snapshot;

pub use daemon::{Daemon, MountConfig};
pub use fuser::SessionUnmounter;

/// `fuser::Filesystem` over a gpufs [`Filesystem`], plus the virtual search directory.
pub struct GpufsFuse {
    fs: Arc<Filesystem>,
    compute: Arc<LazyCompute>,
    search: SearchDir,
    /// The kernel's write-back cache was asked for (`--kernel-writeback`).
    want_writeback_cache: bool,
    /// The kernel caches writes (FUSE_WRITEBACK_CACHE was granted at init).
    writeback_cache: bool,
}

impl GpufsFuse {
    /// The adapter for `fs`; with `writeback_cache`, the kernel caches writes.
    pub fn new(fs: Arc<Filesystem>, compute: Arc<LazyCompute>, writeback_cache: bool) -> Self {
        GpufsFuse {
            fs,
            compute,
            search: SearchDir::default(),
            want_writeback_cache: writeback_cache,
            writeback_cache: false,
        }
    }

    /// Hands `add` the entries of virtual directory `ino` after `offset`, as the asking
    /// process may see them: the cookie of each and its (ino, kind, name), until `add`
    /// says the reply is full.
    fn virtual_listing(
        &self,
        req: &Request,
        ino: u64,
        offset: u64,
        mut add: impl FnMut(u64, (u64, FileKind, &[u8])) -> bool,
    ) -> Result<(), FsError> {
        let (who, groups) = asker(req);
        let entries = self
            .search
            .listing(&self.fs, &self.compute, ino, (who, &groups))?;
        for (i, (e_ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if add(i as u64 + 1, (*e_ino, *kind, name)) {
                break;
            }
        }
        Ok(())
    }
}

/// The caller of a request that creates a node, with its umask: the kernel leaves the
/// umask to the daemon (FUSE_DONT_MASK), which applies it unless a default ACL is
/// inherited.
fn creator(req: &Request, umask: u32) -> Caller {
    Caller {
        umask: umask & 0o777,
        ..caller(req)
    }
}

/// The caller of `req` and its supplementary groups (for permission checks the kernel
/// does not make).
fn asker(req: &Request) -> (Caller, Vec<u32>) {
    (caller(req), caller::supplementary_groups(req.pid()))
}

impl fuser::Filesystem for GpufsFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let readdirplus = InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO;
        if let Err(unsupported) = config.add_capabilities(readdirplus) {
            tracing::info!("kernel lacks FUSE capabilities {unsupported:?}");
        }
        // POSIX ACLs: the kernel enforces and caches them (system.posix_acl_* xattrs);
        // the daemon keeps them in step with the mode and applies the umask itself, so
        // that an inherited default ACL replaces it.
        let acl = InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK;
        if let Err(unsupported) = config.add_capabilities(acl) {
            tracing::info!("kernel lacks {unsupported:?}: no POSIX ACLs");
        }
        // File handles survive (name_to_handle_at/open_by_handle_at, NFS export): for a
        // handle whose inode the kernel no longer holds, it looks up "." in the handle's
        // inode (and ".." for a directory's parent), checked against the inode's
        // generation, which changes when the slot is reused.
        if let Err(unsupported) = config.add_capabilities(InitFlags::FUSE_EXPORT_SUPPORT) {
            tracing::info!("kernel lacks {unsupported:?}: file handles go stale");
        }
        // The daemon drops set-id bits and file capabilities itself on write and
        // truncate (KILLPRIV_V2), so that the kernel does not ask for security.capability
        // before every write (a round trip each).
        if let Err(unsupported) = config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2) {
            tracing::info!("kernel lacks {unsupported:?}: it checks capabilities on every write");
        }
        // With `--kernel-writeback`, the kernel's page cache absorbs writes and sends them
        // in batches of pages; a full disk is then reported at fsync or close, not by the
        // write itself, so it is the user's choice.
        if self.want_writeback_cache {
            self.writeback_cache = match config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE) {
                Ok(()) => true,
                Err(unsupported) => {
                    tracing::warn!("kernel lacks {unsupported:?}: writes go through one by one");
                    false
                }
            };
        }
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(e) = self.fs.close() {
            tracing::error!("final checkpoint failed: {e}");
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if is_virtual(parent.0) || (parent.0 == 1 && name.as_bytes() == search_dir::DIR_NAME) {
            let (who, groups) = asker(req);
            let r = self.search.lookup(
                &self.fs,
                &self.compute,
                parent.0,
                name.as_bytes(),
                (who, &groups),
            );
            return answer(reply, r, |reply, a| {
                reply.entry(&NO_TTL, &file_attr(&a), Generation(0))
            });
        }
        match self.fs.lookup(parent.0, name.as_bytes()) {
            // A negative entry (inode 0) that the kernel may cache for TTL: every create
            // of this name goes through the kernel, which then replaces it. Saves a round
            // trip each time a program probes a missing name (PATH, imports, lock files).
            Err(FsError::NotFound) => {
                let none = blank_attr(0, FileKind::Regular);
                reply.entry(&TTL, &file_attr(&none), Generation(0));
            }
            r => reply::entry(reply, r),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if is_virtual(ino.0) {
            return reply::attr(reply, NO_TTL, self.search.getattr(&self.fs, ino.0));
        }
        reply::attr(reply, TTL, self.fs.getattr(ino.0));
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            ctime: ctime.map(system_time_ns),
        };
        // A truncation by another user drops set-id bits as a write does.
        let killed = if size.is_some() && req.uid() != 0 {
            let (who, groups) = asker(req);
            self.fs.kill_privileges(ino.0, who, &groups)
        } else {
            Ok(())
        };
        let set_done = killed.and_then(|()| self.fs.setattr(ino.0, &set, caller(req)));
        reply::attr(reply, TTL, set_done);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        if is_virtual(ino.0) {
            return reply::data(reply, self.search.readlink(&self.fs, ino.0));
        }
        reply::data(reply, self.fs.readlink(ino.0));
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        reply::entry(
            reply,
            self.fs
                .mknod(parent.0, name.as_bytes(), mode, rdev, creator(req, umask)),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        reply::entry(
            reply,
            self.fs
                .mkdir(parent.0, name.as_bytes(), mode, creator(req, umask)),
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply::empty(reply, self.fs.unlink(parent.0, name.as_bytes()));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply::empty(reply, self.fs.rmdir(parent.0, name.as_bytes()));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        reply::entry(
            reply,
            self.fs.symlink(
                parent.0,
                link_name.as_bytes(),
                target.as_os_str().as_bytes(),
                caller(req),
            ),
        );
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mode = if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                return reply.error(Errno::EINVAL);
            }
            RenameMode::Whiteout {
                replace: !flags.contains(RenameFlags::RENAME_NOREPLACE),
                owner: caller(req),
            }
        } else if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            return reply.error(Errno::EINVAL);
        };
        reply::empty(
            reply,
            self.fs.rename(
                parent.0,
                name.as_bytes(),
                newparent.0,
                newname.as_bytes(),
                mode,
            ),
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply::entry(reply, self.fs.link(ino.0, newparent.0, newname.as_bytes()));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let writing = flags.acc_mode() != OpenAccMode::O_RDONLY;
        if is_virtual(ino.0) {
            let r = if writing {
                Err(FsError::ReadOnly)
            } else {
                Ok(())
            };
            return answer(reply, r, |reply, ()| {
                reply.opened(FileHandle(0), FopenFlags::empty())
            });
        }
        let truncate = flags.0 & libc::O_TRUNC != 0 && writing;
        let allowed = if writing || truncate {
            self.fs
                .check_open_for_write(ino.0, flags.0 & libc::O_APPEND != 0)
        } else {
            Ok(())
        };
        let opened = allowed.and_then(|()| self.fs.open(ino.0, truncate));
        answer(reply, opened, |reply, ()| {
            reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if is_snapshot(ino.0) {
            return reply::data(reply, snapshot_dir::read(&self.fs, ino.0, offset, size));
        }
        reply::data(reply, self.fs.read(ino.0, offset, size));
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let killed = if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            let (who, groups) = asker(req);
            self.fs.kill_privileges(ino.0, who, &groups)
        } else {
            Ok(())
        };
        let written = killed.and_then(|()| self.fs.write(ino.0, offset, data));
        answer(reply, written, |reply, n| reply.written(n));
    }

    // `flush` is left to fuser's default (ENOSYS): the kernel then stops sending FLUSH
    // on every close. Durability comes from fsync, and close has nothing to write.

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if is_virtual(ino.0) {
            return reply.ok();
        }
        reply::empty(reply, self.fs.release(ino.0));
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if is_virtual(ino.0) {
            return reply.ok();
        }
        reply::empty(reply, self.fs.fsync(ino.0));
    }

    /// A directory handle holds its inode like a file handle: a directory removed (or
    /// renamed over) while open keeps answering `fstat` (nlink 0) until its last close.
    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if is_virtual(ino.0) {
            return reply.opened(FileHandle(0), FopenFlags::empty());
        }
        answer(reply, self.fs.open(ino.0, false), |reply, ()| {
            reply.opened(FileHandle(0), FopenFlags::empty())
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        if is_virtual(ino.0) {
            return reply.ok();
        }
        reply::empty(reply, self.fs.release(ino.0));
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if is_snapshot(ino.0) {
            let r = snapshot_dir::readdir(&self.fs, ino.0, offset, false, |c, i, k, n, _| {
                reply.add(INodeNo(i), c, file_type(k), OsStr::from_bytes(n))
            });
            return reply::listing(reply, r);
        }
        if is_virtual(ino.0) {
            let r = self.virtual_listing(req, ino.0, offset, |cookie, (e_ino, kind, name)| {
                reply.add(
                    INodeNo(e_ino),
                    cookie,
                    file_type(kind),
                    OsStr::from_bytes(name),
                )
            });
            return reply::listing(reply, r);
        }
        let r = self.fs.readdir(ino.0, offset, |e| {
            reply.add(
                INodeNo(e.ino),
                e.cookie,
                file_type(e.kind),
                OsStr::from_bytes(e.name),
            )
        });
        reply::listing(reply, r);
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        if is_snapshot(ino.0) {
            let r = snapshot_dir::readdir(&self.fs, ino.0, offset, true, |c, i, _, n, a| {
                let a = file_attr(a.unwrap_or(&blank_attr(i, FileKind::Regular)));
                reply.add(
                    INodeNo(i),
                    c,
                    OsStr::from_bytes(n),
                    &NO_TTL,
                    &a,
                    Generation(0),
                )
            });
            return reply::listing_plus(reply, r);
        }
        if is_virtual(ino.0) {
            let r = self.virtual_listing(req, ino.0, offset, |cookie, (e_ino, _, name)| {
                let Ok(a) = self.search.getattr(&self.fs, e_ino) else {
                    return false;
                };
                reply.add(
                    INodeNo(e_ino),
                    cookie,
                    OsStr::from_bytes(name),
                    &NO_TTL,
                    &file_attr(&a),
                    Generation(0),
                )
            });
            return reply::listing_plus(reply, r);
        }
        let r = self.fs.readdirplus(ino.0, offset, |e, a| {
            reply.add(
                INodeNo(e.ino),
                e.cookie,
                OsStr::from_bytes(e.name),
                &TTL,
                &file_attr(a),
                Generation(u64::from(a.generation)),
            )
        });
        reply::listing_plus(reply, r);
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.fsync(req, ino, fh, datasync, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply::empty(
            reply,
            self.fs.setxattr(ino.0, name.as_bytes(), value, flags),
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if is_snapshot(ino.0) {
            let r = snapshot_dir::getxattr(&self.fs, ino.0, name.as_bytes());
            return reply::xattr(reply, size, r);
        }
        if is_virtual(ino.0) {
            return reply.error(Errno::from_i32(libc::ENODATA));
        }
        reply::xattr(reply, size, self.fs.getxattr(ino.0, name.as_bytes()));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if is_snapshot(ino.0) {
            return reply::xattr(reply, size, snapshot_dir::listxattr(&self.fs, ino.0));
        }
        if is_virtual(ino.0) {
            return reply::xattr(reply, size, Ok(Vec::new()));
        }
        reply::xattr(reply, size, self.fs.listxattr(ino.0));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply::empty(reply, self.fs.removexattr(ino.0, name.as_bytes()));
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if is_virtual(ino.0) {
            let r = if mask.bits() & 2 != 0 {
                Err(FsError::ReadOnly)
            } else {
                Ok(())
            };
            return reply::empty(reply, r);
        }
        let (who, groups) = asker(req);
        reply::empty(reply, self.fs.access(ino.0, mask.bits(), who, &groups));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self
            .fs
            .create(parent.0, name.as_bytes(), mode, creator(req, umask));
        answer(reply, r, |reply, a| {
            reply.created(
                &TTL,
                &file_attr(&a),
                Generation(u64::from(a.generation)),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            )
        });
    }

    /// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (`lsattr`, `chattr +i`, `+a`); the kernel
    /// sends them with a 4-byte argument. Anything else: ENOTTY, as a filesystem
    /// without the ioctl answers.
    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        match flags_ioctl::answer(&self.fs, caller(req), ino.0, cmd, in_data, out_size) {
            Ok(out) => reply.ioctl(0, &out),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Preallocation and hole punching by another user drop set-id bits as a write
        // does (the kernel does not ask for it here).
        let killed = if req.uid() != 0 {
            let (who, groups) = asker(req);
            self.fs.kill_privileges(ino.0, who, &groups)
        } else {
            Ok(())
        };
        let done = killed.and_then(|()| self.fs.fallocate(ino.0, offset, length, mode));
        reply::empty(reply, done);
    }

    /// Copies between files of this filesystem share whole records where the offsets
    /// line up (a `cp` of a large file takes no new space); the rest is copied as bytes.
    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        if !flags.is_empty() {
            reply.error(Errno::EINVAL);
            return;
        }
        // From a snapshot: as from another filesystem (cp then copies bytes).
        if is_virtual(ino_in.0) || is_virtual(ino_out.0) {
            return reply.error(Errno::EXDEV);
        }
        // The reply counts bytes in 32 bits: the kernel asks again for the rest.
        let len = len.min(u64::from(u32::MAX) & !(BLOCK_SIZE as u64 - 1));
        // A copy is a write: an unprivileged writer drops the set-id bits.
        let killed = if req.uid() != 0 {
            let (who, groups) = asker(req);
            self.fs.kill_privileges(ino_out.0, who, &groups)
        } else {
            Ok(())
        };
        let copied = killed.and_then(|()| {
            self.fs
                .copy_file_range(ino_in.0, offset_in, ino_out.0, offset_out, len)
        });
        answer(reply, copied, |reply, done| {
            reply.written(done.bytes as u32)
        });
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        // Only SEEK_DATA and SEEK_HOLE reach the daemon. With the kernel's write-back
        // cache, pages written but not yet sent here make the daemon's view of where data
        // and holes are (and where the file ends) older than the kernel's, and an answer
        // from it could skip data that is there. ENOSYS makes the kernel answer from its
        // own size for good: data from any offset inside the file, the one hole at its
        // end (POSIX allows reporting holes as data); ENXIO at or past the end.
        if self.writeback_cache {
            return reply.error(Errno::ENOSYS);
        }
        let Ok(off) = u64::try_from(offset) else {
            return reply.error(Errno::ENXIO);
        };
        if is_snapshot(ino.0) {
            // A snapshot's file is all data up to its size.
            let size = snapshot_dir::getattr(&self.fs, ino.0).map(|a| a.size);
            let found = size.and_then(|n| match (off < n, whence == libc::SEEK_HOLE) {
                (false, _) => Err(FsError::NoSuchOffset),
                (true, hole) => Ok(if hole { n } else { off }),
            });
            return answer(reply, found, |reply, pos| reply.offset(pos as i64));
        }
        answer(reply, self.fs.lseek(ino.0, off, whence), |reply, pos| {
            reply.offset(pos as i64)
        });
    }
}
