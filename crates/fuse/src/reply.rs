//! Translations between fuser and gpufs-core (attributes, file types, times, errnos)
//! and the replies every operation ends with: a success in the reply's own form, or
//! the errno of the failure.

use std::time::Duration;

use fuser::{
    Errno, FileAttr, FileType, Generation, INodeNo, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyWrite,
    ReplyXattr, Request, TimeOrNow,
};
use gpufs_core::fs::TimeSet;
use gpufs_core::time::{ns_to_system_time, system_time_ns};
use gpufs_core::{Attr, Caller, FsError};
use gpufs_format::FileKind;

/// How long the kernel may cache entries and attributes. The daemon has the image to
/// itself and every change goes through the kernel, which invalidates what each operation
/// touches (the inode, its parent directories), so cached copies do not go stale; only an
/// atime moved by a read shows up late.
pub(crate) const TTL: Duration = Duration::from_secs(60);

/// Virtual entries change with every query: the kernel must not cache them.
pub(crate) const NO_TTL: Duration = Duration::ZERO;

/// The errno of a failure; failures that mean damage or I/O trouble are logged too.
pub(crate) fn errno(e: &FsError) -> Errno {
    match e {
        FsError::Corrupt(_) | FsError::Format(_) | FsError::Io(_) => {
            tracing::error!("{e}");
        }
        _ => {}
    }
    Errno::from_i32(e.errno())
}

pub(crate) fn file_type(kind: FileKind) -> FileType {
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

pub(crate) fn file_attr(a: &Attr) -> FileAttr {
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

/// Attributes of inode `ino` of `kind` with every other field zero: the start of the
/// virtual entries' attributes, and (inode 0) a negative entry.
pub(crate) fn blank_attr(ino: u64, kind: FileKind) -> Attr {
    Attr {
        ino,
        generation: 0,
        kind,
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
    }
}

pub(crate) fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        umask: 0,
    }
}

pub(crate) fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(st) => TimeSet::At(system_time_ns(st)),
    }
}

/// A fuser reply, which can always end in an errno.
pub(crate) trait Fails {
    fn fail(self, e: Errno);
}

macro_rules! fails {
    ($($reply:ty),*) => {
        $(impl Fails for $reply {
            fn fail(self, e: Errno) {
                self.error(e)
            }
        })*
    };
}

fails!(
    ReplyAttr,
    ReplyCreate,
    ReplyData,
    ReplyDirectory,
    ReplyDirectoryPlus,
    ReplyEmpty,
    ReplyEntry,
    ReplyLseek,
    ReplyOpen,
    ReplyWrite,
    ReplyXattr
);

/// Sends what `ok` makes of a success, or the errno of a failure.
pub(crate) fn answer<R: Fails, T>(reply: R, r: Result<T, FsError>, ok: impl FnOnce(R, T)) {
    match r {
        Ok(v) => ok(reply, v),
        Err(e) => reply.fail(errno(&e)),
    }
}

/// An entry the kernel may cache for [`TTL`].
pub(crate) fn entry(reply: ReplyEntry, r: Result<Attr, FsError>) {
    answer(reply, r, |reply, a| {
        reply.entry(&TTL, &file_attr(&a), Generation(u64::from(a.generation)))
    });
}

/// Attributes the kernel may cache for `ttl`.
pub(crate) fn attr(reply: ReplyAttr, ttl: Duration, r: Result<Attr, FsError>) {
    answer(reply, r, |reply, a| reply.attr(&ttl, &file_attr(&a)));
}

pub(crate) fn empty(reply: ReplyEmpty, r: Result<(), FsError>) {
    answer(reply, r, |reply, ()| reply.ok());
}

pub(crate) fn data(reply: ReplyData, r: Result<Vec<u8>, FsError>) {
    answer(reply, r, |reply, d| reply.data(&d));
}

/// Answers a getxattr/listxattr: the size when asked for 0 bytes, ERANGE when too small.
pub(crate) fn xattr(reply: ReplyXattr, size: u32, r: Result<Vec<u8>, FsError>) {
    answer(reply, r, |reply, v| {
        if size == 0 {
            reply.size(v.len() as u32)
        } else if v.len() > size as usize {
            reply.error(Errno::ERANGE)
        } else {
            reply.data(&v)
        }
    });
}

/// Sends a filled directory listing, or the error that stopped it.
pub(crate) fn listing(reply: ReplyDirectory, r: Result<(), FsError>) {
    answer(reply, r, |reply, ()| reply.ok());
}

/// Sends a filled directory listing with attributes, or the error that stopped it.
pub(crate) fn listing_plus(reply: ReplyDirectoryPlus, r: Result<(), FsError>) {
    answer(reply, r, |reply, ()| reply.ok());
}
