//! `MOUNT/.gpufs/snapshots/NAME/`: every snapshot as a read-only directory tree, with
//! the permissions of the original (the kernel checks them: `default_permissions`).
//! A snapshot's inode `i` is `SNAP_BASE | id << 32 | i` to the kernel; writes there reach
//! the core with such a number and fail with EROFS.

use gpufs_core::{Attr, Filesystem, FsError};
use gpufs_format::FileKind;

/// Inode numbers at and above this are snapshots' (`.gpufs/search` stays below).
pub const SNAP_BASE: u64 = 1 << 48;
/// Snapshot ids that fit the numbering.
const MAX_ID: u64 = (1 << 15) - 1;

pub fn is_snapshot(ino: u64) -> bool {
    ino >= SNAP_BASE
}

fn join(id: u64, ino: u64) -> u64 {
    SNAP_BASE | (id << 32) | ino
}

fn split(ino: u64) -> (u64, u64) {
    ((ino - SNAP_BASE) >> 32, ino & 0xffff_ffff)
}

fn in_snapshot(id: u64, a: Attr) -> Attr {
    Attr {
        ino: join(id, a.ino),
        ..a
    }
}

/// Lookup of `name` in `.gpufs/snapshots` (the root of that snapshot).
pub fn lookup_snapshot(fs: &Filesystem, name: &[u8]) -> Result<Attr, FsError> {
    let (id, _) = fs
        .snapshot_names()
        .into_iter()
        .find(|(_, n)| n == name)
        .ok_or(FsError::NotFound)?;
    if id > MAX_ID {
        return Err(FsError::NotFound);
    }
    Ok(in_snapshot(id, fs.snapshot_view(id)?.getattr(1)?))
}

/// The snapshots as entries of `.gpufs/snapshots`: (ino, name).
pub fn snapshot_entries(fs: &Filesystem) -> Vec<(u64, Vec<u8>)> {
    fs.snapshot_names()
        .into_iter()
        .filter(|(id, _)| *id <= MAX_ID)
        .map(|(id, name)| (join(id, 1), name))
        .collect()
}

pub fn lookup(fs: &Filesystem, parent: u64, name: &[u8]) -> Result<Attr, FsError> {
    let (id, p) = split(parent);
    Ok(in_snapshot(id, fs.snapshot_view(id)?.lookup(p, name)?))
}

pub fn getattr(fs: &Filesystem, ino: u64) -> Result<Attr, FsError> {
    let (id, i) = split(ino);
    Ok(in_snapshot(id, fs.snapshot_view(id)?.getattr(i)?))
}

pub fn readlink(fs: &Filesystem, ino: u64) -> Result<Vec<u8>, FsError> {
    let (id, i) = split(ino);
    fs.snapshot_view(id)?.readlink(i)
}

pub fn read(fs: &Filesystem, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
    let (id, i) = split(ino);
    let view = fs.snapshot_view(id)?;
    fs.snapshot_read(&view, i, offset, size)
}

pub fn getxattr(fs: &Filesystem, ino: u64, name: &[u8]) -> Result<Vec<u8>, FsError> {
    let (id, i) = split(ino);
    fs.snapshot_view(id)?.getxattr(i, name)
}

pub fn listxattr(fs: &Filesystem, ino: u64) -> Result<Vec<u8>, FsError> {
    let (id, i) = split(ino);
    fs.snapshot_view(id)?.listxattr(i)
}

/// Hands `emit` the entries of snapshot directory `dir` after `offset` as (cookie, ino,
/// kind, name, attributes when `plus`), until it returns true.
pub fn readdir(
    fs: &Filesystem,
    dir: u64,
    offset: u64,
    plus: bool,
    mut emit: impl FnMut(u64, u64, FileKind, &[u8], Option<&Attr>) -> bool,
) -> Result<(), FsError> {
    let (id, d) = split(dir);
    let view = fs.snapshot_view(id)?;
    let mut failed = None;
    view.readdir(d, offset, |e| {
        let attr = if plus {
            match view.getattr(e.ino) {
                Ok(a) => Some(in_snapshot(id, a)),
                Err(err) => {
                    failed = Some(err);
                    return true;
                }
            }
        } else {
            None
        };
        emit(e.cookie, join(id, e.ino), e.kind, e.name, attr.as_ref())
    })?;
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_above_every_other() {
        for (id, ino) in [(1, 1), (MAX_ID, u64::from(u32::MAX)), (7, 12345)] {
            let n = join(id, ino);
            assert!(is_snapshot(n) && n > (1 << 40));
            assert_eq!(split(n), (id, ino));
        }
        assert!(!is_snapshot(1 << 40));
    }
}
