//! The FUSE adapter: `fuser::Filesystem` calls translated into `gpufs_core` calls, errors
//! into errnos. No filesystem logic lives here.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod caller;
pub mod search_dir;
pub mod workers;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use gpufs_compute::LazyCompute;
use gpufs_core::fs::{RenameMode, SetAttr, TimeSet};
use gpufs_core::time::{ns_to_system_time, system_time_ns};
use gpufs_core::{Attr, Caller, Filesystem, FsError};
use gpufs_format::FileKind;
use search_dir::{is_virtual, SearchDir};

pub use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};

/// How long the kernel may cache entries and attributes. The daemon has the image to
/// itself and every change goes through the kernel, which invalidates what each operation
/// touches (the inode, its parent directories), so cached copies do not go stale; only an
/// atime moved by a read shows up late.
const TTL: Duration = Duration::from_secs(60);

/// `fuser::Filesystem` over a gpufs [`Filesystem`], plus the virtual search directory.
pub struct GpufsFuse {
    fs: Arc<Filesystem>,
    compute: Arc<LazyCompute>,
    search: SearchDir,
}

impl GpufsFuse {
    pub fn new(fs: Arc<Filesystem>, compute: Arc<LazyCompute>) -> Self {
        GpufsFuse {
            fs,
            compute,
            search: SearchDir::default(),
        }
    }
}

/// Virtual entries change with every query: the kernel must not cache them.
const NO_TTL: Duration = Duration::ZERO;

fn errno(e: &FsError) -> Errno {
    match e {
        FsError::Corrupt(_) | FsError::Format(_) | FsError::Io(_) => {
            tracing::error!("{e}");
        }
        _ => {}
    }
    Errno::from_i32(e.errno())
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Regular => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: ns_to_system_time(a.atime_ns),
        mtime: ns_to_system_time(a.mtime_ns),
        ctime: ns_to_system_time(a.ctime_ns),
        crtime: ns_to_system_time(a.ctime_ns),
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(st) => TimeSet::At(system_time_ns(st)),
    }
}

fn reply_entry(reply: ReplyEntry, r: Result<Attr, FsError>) {
    match r {
        Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(u64::from(a.generation))),
        Err(e) => reply.error(errno(&e)),
    }
}

fn reply_empty(reply: ReplyEmpty, r: Result<(), FsError>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

/// Answers a getxattr/listxattr: the size when asked for 0 bytes, ERANGE when too small.
fn reply_xattr(reply: ReplyXattr, size: u32, r: Result<Vec<u8>, FsError>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(&e)),
    }
}

/// The two directory-listing replies, finished alike.
trait Listing {
    fn ok(self);
    fn error(self, e: Errno);
}

impl Listing for ReplyDirectory {
    fn ok(self) {
        ReplyDirectory::ok(self)
    }
    fn error(self, e: Errno) {
        ReplyDirectory::error(self, e)
    }
}

impl Listing for ReplyDirectoryPlus {
    fn ok(self) {
        ReplyDirectoryPlus::ok(self)
    }
    fn error(self, e: Errno) {
        ReplyDirectoryPlus::error(self, e)
    }
}

/// Sends a filled listing, or the error that stopped it.
fn reply_listing(reply: impl Listing, r: Result<(), FsError>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

impl fuser::Filesystem for GpufsFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let wanted = InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO;
        if let Err(unsupported) = config.add_capabilities(wanted) {
            tracing::info!("kernel lacks FUSE capabilities {unsupported:?}");
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
            let groups = caller::supplementary_groups(req.pid());
            let who = (caller(req), groups.as_slice());
            return match self
                .search
                .lookup(&self.fs, &self.compute, parent.0, name.as_bytes(), who)
            {
                Ok(a) => reply.entry(&NO_TTL, &file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno(&e)),
            };
        }
        match self.fs.lookup(parent.0, name.as_bytes()) {
            // A negative entry (inode 0) that the kernel may cache for TTL: every create
            // of this name goes through the kernel, which then replaces it. Saves a round
            // trip each time a program probes a missing name (PATH, imports, lock files).
            Err(FsError::NotFound) => {
                let none = Attr {
                    ino: 0,
                    generation: 0,
                    kind: FileKind::Regular,
                    perm: 0,
                    nlink: 0,
                    uid: 0,
                    gid: 0,
                    rdev: 0,
                    size: 0,
                    blocks: 0,
                    atime_ns: 0,
                    mtime_ns: 0,
                    ctime_ns: 0,
                    blksize: 0,
                };
                reply.entry(&TTL, &file_attr(&none), Generation(0));
            }
            r => reply_entry(reply, r),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if is_virtual(ino.0) {
            return match self.search.getattr(ino.0) {
                Ok(a) => reply.attr(&NO_TTL, &file_attr(&a)),
                Err(e) => reply.error(errno(&e)),
            };
        }
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
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
        match self.fs.setattr(ino.0, &set, caller(req)) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        if is_virtual(ino.0) {
            return match self.search.readlink(ino.0) {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(errno(&e)),
            };
        }
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        reply_entry(
            reply,
            self.fs
                .mknod(parent.0, name.as_bytes(), mode, rdev, caller(req)),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply_entry(
            reply,
            self.fs.mkdir(parent.0, name.as_bytes(), mode, caller(req)),
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.fs.unlink(parent.0, name.as_bytes()));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.fs.rmdir(parent.0, name.as_bytes()));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        reply_entry(
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
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            return reply.error(Errno::EINVAL);
        };
        reply_empty(
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
        reply_entry(reply, self.fs.link(ino.0, newparent.0, newname.as_bytes()));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let truncate = flags.0 & libc::O_TRUNC != 0 && flags.acc_mode() != OpenAccMode::O_RDONLY;
        match self.fs.open(ino.0, truncate) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(errno(&e)),
        }
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
        match self.fs.read(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.fs.write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(&e)),
        }
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
        reply_empty(reply, self.fs.release(ino.0));
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.fs.fsync(ino.0));
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if is_virtual(ino.0) {
            let groups = caller::supplementary_groups(req.pid());
            let r = self
                .search
                .listing(&self.fs, &self.compute, ino.0, (caller(req), &groups))
                .map(|entries| {
                    for (i, (e_ino, kind, name)) in entries.iter().enumerate().skip(offset as usize)
                    {
                        if reply.add(
                            INodeNo(*e_ino),
                            i as u64 + 1,
                            file_type(*kind),
                            OsStr::from_bytes(name),
                        ) {
                            break;
                        }
                    }
                });
            return reply_listing(reply, r);
        }
        let r = self.fs.readdir(ino.0, offset, |e| {
            reply.add(
                INodeNo(e.ino),
                e.cookie,
                file_type(e.kind),
                OsStr::from_bytes(e.name),
            )
        });
        reply_listing(reply, r);
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        if is_virtual(ino.0) {
            let groups = caller::supplementary_groups(req.pid());
            let r = self
                .search
                .listing(&self.fs, &self.compute, ino.0, (caller(req), &groups))
                .map(|entries| {
                    for (i, (e_ino, _, name)) in entries.iter().enumerate().skip(offset as usize) {
                        let Ok(a) = self.search.getattr(*e_ino) else {
                            continue;
                        };
                        if reply.add(
                            INodeNo(*e_ino),
                            i as u64 + 1,
                            OsStr::from_bytes(name),
                            &NO_TTL,
                            &file_attr(&a),
                            Generation(0),
                        ) {
                            break;
                        }
                    }
                });
            return reply_listing(reply, r);
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
        reply_listing(reply, r);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.fs.fsync(ino.0));
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
        reply_empty(
            reply,
            self.fs.setxattr(ino.0, name.as_bytes(), value, flags),
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if is_virtual(ino.0) {
            return reply.error(Errno::from_i32(libc::ENODATA));
        }
        reply_xattr(reply, size, self.fs.getxattr(ino.0, name.as_bytes()));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if is_virtual(ino.0) {
            return reply_xattr(reply, size, Ok(Vec::new()));
        }
        reply_xattr(reply, size, self.fs.listxattr(ino.0));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.fs.removexattr(ino.0, name.as_bytes()));
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if is_virtual(ino.0) {
            let r = if mask.bits() & 2 != 0 {
                Err(FsError::ReadOnly)
            } else {
                Ok(())
            };
            return reply_empty(reply, r);
        }
        let groups = caller::supplementary_groups(req.pid());
        reply_empty(
            reply,
            self.fs.access(ino.0, mask.bits(), caller(req), &groups),
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.fs.create(parent.0, name.as_bytes(), mode, caller(req)) {
            Ok(a) => reply.created(
                &TTL,
                &file_attr(&a),
                Generation(u64::from(a.generation)),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.fs.fallocate(ino.0, offset, length, mode));
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
        let Ok(off) = u64::try_from(offset) else {
            return reply.error(Errno::EINVAL);
        };
        match self.fs.lseek(ino.0, off, whence) {
            Ok(pos) => reply.offset(pos as i64),
            Err(e) => reply.error(errno(&e)),
        }
    }
}
