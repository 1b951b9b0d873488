//! POSIX behaviour of [`Filesystem`] on an in-memory [`FaultDevice`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gpufs_format::records::mode_bits::{S_IFCHR, S_IFDIR, S_IFIFO, S_IFREG};
use gpufs_format::FileKind;

use super::attrs::{XATTR_CREATE, XATTR_REPLACE};
use super::*;
use crate::device::{Device, FaultDevice, PowerCut};
use crate::volume::{mkfs, MkfsOptions};

const ROOT: u64 = 1;
const R: u64 = 64 * 1024;
const SEEK_DATA: i32 = 3;
const SEEK_HOLE: i32 = 4;
const USER: Caller = Caller {
    uid: 1000,
    gid: 100,
};

fn mount_image(image: Vec<u8>) -> (Arc<FaultDevice>, Filesystem) {
    let dev = Arc::new(FaultDevice::new(image));
    let d: Arc<dyn Device> = dev.clone();
    let fs = Filesystem::mount(d, OpenOptions::default()).unwrap();
    (dev, fs)
}

fn fresh_sized(bytes: usize) -> (Arc<FaultDevice>, Filesystem) {
    let dev = Arc::new(FaultDevice::new(vec![0u8; bytes]));
    let d: Arc<dyn Device> = dev.clone();
    mkfs(d.clone(), &MkfsOptions::default()).unwrap();
    let fs = Filesystem::mount(d, OpenOptions::default()).unwrap();
    (dev, fs)
}

fn fresh() -> (Arc<FaultDevice>, Filesystem) {
    fresh_sized(64 << 20)
}

/// Clean unmount, then a mount of what the device holds.
fn close_and_remount(dev: &FaultDevice, fs: Filesystem) -> (Arc<FaultDevice>, Filesystem) {
    fs.close().unwrap();
    drop(fs);
    mount_image(dev.volatile_image())
}

/// Deterministic, position-dependent bytes (never all zero).
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(u32::from(seed) * 7 + 1) as u8
                | 1
        })
        .collect()
}

/// Compares byte strings, reporting the first difference instead of both dumps.
#[track_caller]
fn same(got: impl AsRef<[u8]>, want: impl AsRef<[u8]>) {
    let (g, w) = (got.as_ref(), want.as_ref());
    if g != w {
        let at = g.iter().zip(w).position(|(a, b)| a != b);
        panic!(
            "bytes differ: got {} bytes, want {}; first difference at {:?} (got {:?}, want {:?})",
            g.len(),
            w.len(),
            at,
            at.map(|i| g[i]),
            at.map(|i| w[i])
        );
    }
}

fn read_all(fs: &Filesystem, ino: u64) -> Vec<u8> {
    let size = fs.getattr(ino).unwrap().size;
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let chunk = fs.read(ino, out.len() as u64, 1 << 20).unwrap();
        assert!(!chunk.is_empty(), "read returned nothing before EOF");
        out.extend_from_slice(&chunk);
    }
    assert_eq!(out.len() as u64, size);
    out
}

fn create_file(fs: &Filesystem, parent: u64, name: &[u8], data: &[u8]) -> u64 {
    let a = fs.create(parent, name, 0o644, Caller::ROOT).unwrap();
    if !data.is_empty() {
        assert_eq!(fs.write(a.ino, 0, data).unwrap() as usize, data.len());
    }
    fs.release(a.ino).unwrap();
    a.ino
}

/// (cookie, name, ino, kind) of every entry, "." and ".." included.
fn list(fs: &Filesystem, dir: u64) -> Vec<(u64, Vec<u8>, u64, FileKind)> {
    let mut out = Vec::new();
    fs.readdir(dir, 0, |e| {
        out.push((e.cookie, e.name.to_vec(), e.ino, e.kind));
        false
    })
    .unwrap();
    out
}

fn names(fs: &Filesystem, dir: u64) -> BTreeSet<Vec<u8>> {
    list(fs, dir)
        .into_iter()
        .map(|(_, n, _, _)| n)
        .filter(|n| n != b"." && n != b"..")
        .collect()
}

fn dotdot(fs: &Filesystem, dir: u64) -> u64 {
    let l = list(fs, dir);
    assert_eq!(l[1].1, b"..");
    l[1].2
}

fn set_size(fs: &Filesystem, ino: u64, size: u64) {
    let set = SetAttr {
        size: Some(size),
        ..Default::default()
    };
    assert_eq!(fs.setattr(ino, &set, Caller::ROOT).unwrap().size, size);
}

fn xattr_names(fs: &Filesystem, ino: u64) -> BTreeSet<Vec<u8>> {
    let raw = fs.listxattr(ino).unwrap();
    assert!(raw.is_empty() || raw.last() == Some(&0));
    raw.split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| n.to_vec())
        .collect()
}

#[test]
fn create_lookup_getattr() {
    let (_dev, fs) = fresh();
    let root = fs.getattr(ROOT).unwrap();
    assert_eq!(root.kind, FileKind::Directory);
    assert_eq!(root.nlink, 2);
    assert_eq!(root.perm, 0o755);

    let a = fs.create(ROOT, b"a", 0o640, USER).unwrap();
    assert_eq!(a.kind, FileKind::Regular);
    assert_eq!(a.perm, 0o640);
    assert_eq!((a.uid, a.gid), (1000, 100));
    assert_eq!(a.nlink, 1);
    assert_eq!(a.size, 0);
    assert_eq!(a.blocks, 0);
    assert_eq!(a.blksize, R as u32);
    assert_ne!(a.ino, ROOT);
    assert_eq!(fs.lookup(ROOT, b"a").unwrap(), a);
    assert_eq!(fs.getattr(a.ino).unwrap(), a);
    assert!(matches!(fs.lookup(ROOT, b"b"), Err(FsError::NotFound)));
    assert!(matches!(
        fs.create(ROOT, b"a", 0o644, USER),
        Err(FsError::Exists)
    ));
    // A file is no parent.
    assert!(matches!(fs.lookup(a.ino, b"x"), Err(FsError::NotDir)));
    assert!(matches!(
        fs.create(a.ino, b"x", 0o644, USER),
        Err(FsError::NotDir)
    ));
    assert!(matches!(fs.getattr(9999), Err(FsError::NotFound)));
    for bad in [&b"."[..], b"..", b"", b"a/b", b"a\0b"] {
        assert!(
            matches!(fs.create(ROOT, bad, 0o644, USER), Err(FsError::Invalid(_))),
            "{bad:?}"
        );
    }
    let d = fs.mkdir(ROOT, b"d", 0o750, USER).unwrap();
    assert_eq!(d.kind, FileKind::Directory);
    assert_eq!(d.nlink, 2);
    assert_eq!(d.perm, 0o750);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    assert_eq!(
        names(&fs, ROOT),
        BTreeSet::from([b"a".to_vec(), b"d".to_vec()])
    );
    assert_eq!(dotdot(&fs, d.ino), ROOT);
    assert_eq!(dotdot(&fs, ROOT), ROOT);
}

#[test]
fn write_and_read_across_record_boundaries() {
    let (_dev, fs) = fresh();
    let ino = fs.create(ROOT, b"f", 0o644, Caller::ROOT).unwrap().ino;
    let mut model = Vec::new();
    fn apply(model: &mut Vec<u8>, off: u64, data: &[u8]) {
        let end = off as usize + data.len();
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(data);
    }

    // Straddles the boundary of records 0 and 1, leaving a hole before it.
    let d1 = pattern(1, 100);
    assert_eq!(fs.write(ino, R - 50, &d1).unwrap(), 100);
    apply(&mut model, R - 50, &d1);
    assert_eq!(fs.getattr(ino).unwrap().size, R + 50);
    let got = fs.read(ino, 0, (2 * R) as u32).unwrap();
    assert_eq!(got.len() as u64, R + 50);
    assert!(got[..(R - 50) as usize].iter().all(|b| *b == 0));
    assert_eq!(&got[(R - 50) as usize..], &d1[..]);

    // Several whole and partial records at an odd offset.
    let d2 = pattern(2, (3 * R + 17) as usize);
    assert_eq!(fs.write(ino, 10, &d2).unwrap() as usize, d2.len());
    apply(&mut model, 10, &d2);
    // Overwrite in the middle, crossing a boundary.
    let d3 = pattern(3, 1000);
    fs.write(ino, 2 * R - 500, &d3).unwrap();
    apply(&mut model, 2 * R - 500, &d3);
    // A far write leaves a sparse hole of whole records.
    let d4 = pattern(4, 70_000);
    fs.write(ino, 10 * R + 5, &d4).unwrap();
    apply(&mut model, 10 * R + 5, &d4);

    assert_eq!(fs.getattr(ino).unwrap().size, model.len() as u64);
    same(read_all(&fs, ino), &model);
    // Reads at odd offsets and sizes.
    for (off, len) in [
        (0u64, 1u32),
        (R - 1, 2),
        (R + 7, 65_536),
        (3 * R, 200_000),
        (5 * R, 10),
    ] {
        let got = fs.read(ino, off, len).unwrap();
        let end = (off + u64::from(len)).min(model.len() as u64) as usize;
        assert_eq!(got, &model[off as usize..end], "read at {off}+{len}");
    }
    // The hole (records 4..10) reads as zeros.
    assert_eq!(
        fs.read(ino, 5 * R, R as u32).unwrap(),
        vec![0u8; R as usize]
    );
    // At and past EOF: nothing.
    let size = model.len() as u64;
    assert!(fs.read(ino, size, 10).unwrap().is_empty());
    assert!(fs.read(ino, size + 100, 10).unwrap().is_empty());
    assert_eq!(
        fs.read(ino, size - 3, 100).unwrap(),
        &model[model.len() - 3..]
    );
    // Stored: records 0..=3 full (3R+27 bytes from 10, record 3 ends at 3R+27),
    // records 10 and 11: 5+70000 bytes.
    let a = fs.getattr(ino).unwrap();
    let blocks_4k = 16 + 16 + 16 + 1 + 16 + (70_005u64 - R).div_ceil(4096);
    assert_eq!(a.blocks, blocks_4k * 8);
    // A write of nothing changes nothing.
    assert_eq!(fs.write(ino, size + R, &[]).unwrap(), 0);
    assert_eq!(fs.getattr(ino).unwrap().size, size);
    // Directories are not readable or writable as files.
    assert!(matches!(fs.read(ROOT, 0, 10), Err(FsError::IsDir)));
    assert!(matches!(fs.write(ROOT, 0, b"x"), Err(FsError::IsDir)));
    assert!(matches!(
        fs.write(ino, MAX_FILE_SIZE, b"x"),
        Err(FsError::FileTooBig)
    ));
}

#[test]
fn file_larger_than_4_gib_with_seek_data_and_hole() {
    let (dev, fs) = fresh();
    let ino = fs.create(ROOT, b"big", 0o644, Caller::ROOT).unwrap().ino;
    let at = 5u64 << 30;
    assert_eq!(fs.write(ino, at, b"x").unwrap(), 1);
    let check = |fs: &Filesystem| {
        let a = fs.getattr(ino).unwrap();
        assert_eq!(a.size, at + 1);
        assert_eq!(a.blocks, 8);
        let tail = fs.read(ino, at - 4095, 8192).unwrap();
        assert_eq!(tail.len(), 4096);
        assert!(tail[..4095].iter().all(|b| *b == 0));
        assert_eq!(tail[4095], b'x');
        assert_eq!(fs.read(ino, 0, R as u32).unwrap(), vec![0u8; R as usize]);
        let at4g = fs.read(ino, 4 << 30, R as u32).unwrap();
        assert_eq!(at4g, vec![0u8; R as usize]);
        assert_eq!(fs.lseek(ino, 0, SEEK_DATA).unwrap(), at);
        assert_eq!(fs.lseek(ino, 4 << 30, SEEK_DATA).unwrap(), at);
        assert_eq!(fs.lseek(ino, at, SEEK_DATA).unwrap(), at);
        assert_eq!(fs.lseek(ino, 0, SEEK_HOLE).unwrap(), 0);
        assert_eq!(fs.lseek(ino, 123_456, SEEK_HOLE).unwrap(), 123_456);
        assert_eq!(fs.lseek(ino, at, SEEK_HOLE).unwrap(), at + 1);
        assert!(matches!(
            fs.lseek(ino, at + 1, SEEK_DATA),
            Err(FsError::NoSuchOffset)
        ));
        assert!(matches!(
            fs.lseek(ino, at + 1, SEEK_HOLE),
            Err(FsError::NoSuchOffset)
        ));
        assert!(matches!(fs.lseek(ino, 0, 7), Err(FsError::Invalid(_))));
    };
    check(&fs);
    // Data at the start: the hole begins where it ends.
    fs.write(ino, 0, &pattern(9, 100)).unwrap();
    assert_eq!(fs.lseek(ino, 0, SEEK_DATA).unwrap(), 0);
    assert_eq!(fs.lseek(ino, 50, SEEK_DATA).unwrap(), 50);
    assert_eq!(fs.lseek(ino, 0, SEEK_HOLE).unwrap(), 100);
    assert_eq!(fs.lseek(ino, 100, SEEK_DATA).unwrap(), at);
    // Two full records then a short one: the hole starts after the short one.
    fs.write(ino, 0, &pattern(9, (2 * R + 10) as usize))
        .unwrap();
    assert_eq!(fs.lseek(ino, 5, SEEK_HOLE).unwrap(), 2 * R + 10);
    fs.fallocate(
        ino,
        0,
        2 * R + 10,
        FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
    )
    .unwrap();
    check(&fs);
    let (_dev, fs) = close_and_remount(&dev, fs);
    check(&fs);
}

#[test]
fn truncate_shrink_then_grow_reads_zeros() {
    let (dev, fs) = fresh();
    let ino = create_file(&fs, ROOT, b"t", &pattern(5, (3 * R) as usize));
    let data = pattern(5, (3 * R) as usize);
    set_size(&fs, ino, R + 100);
    same(read_all(&fs, ino), &data[..(R + 100) as usize]);
    assert_eq!(fs.getattr(ino).unwrap().blocks, (16 + 1) * 8);
    set_size(&fs, ino, 3 * R);
    let got = read_all(&fs, ino);
    assert_eq!(&got[..(R + 100) as usize], &data[..(R + 100) as usize]);
    assert!(got[(R + 100) as usize..].iter().all(|b| *b == 0));
    assert_eq!(fs.getattr(ino).unwrap().blocks, (16 + 1) * 8);

    // Shrink into a record, then write past the old end: the gap is zeros.
    set_size(&fs, ino, 50);
    fs.write(ino, 200, b"zz").unwrap();
    let mut want = data[..50].to_vec();
    want.resize(200, 0);
    want.extend_from_slice(b"zz");
    same(read_all(&fs, ino), &want);

    // Shrink to a record boundary and to zero.
    fs.write(ino, 0, &data).unwrap();
    set_size(&fs, ino, 2 * R);
    same(read_all(&fs, ino), &data[..(2 * R) as usize]);
    assert_eq!(fs.getattr(ino).unwrap().blocks, 32 * 8);
    set_size(&fs, ino, 0);
    assert_eq!(fs.getattr(ino).unwrap().blocks, 0);
    set_size(&fs, ino, 2 * R);
    same(read_all(&fs, ino), vec![0u8; (2 * R) as usize]);
    assert!(matches!(
        fs.setattr(
            ROOT,
            &SetAttr {
                size: Some(0),
                ..Default::default()
            },
            Caller::ROOT
        ),
        Err(FsError::IsDir)
    ));
    let (_dev, fs) = close_and_remount(&dev, fs);
    same(read_all(&fs, ino), vec![0u8; (2 * R) as usize]);
    assert_eq!(fs.getattr(ino).unwrap().blocks, 0);
}

#[test]
fn open_with_truncate_empties_the_file() {
    let (_dev, fs) = fresh();
    let ino = create_file(&fs, ROOT, b"o", &pattern(1, 150_000));
    fs.open(ino, false).unwrap();
    assert_eq!(fs.getattr(ino).unwrap().size, 150_000);
    fs.release(ino).unwrap();
    fs.open(ino, true).unwrap();
    let a = fs.getattr(ino).unwrap();
    assert_eq!(a.size, 0);
    assert_eq!(a.blocks, 0);
    assert!(fs.read(ino, 0, 100).unwrap().is_empty());
    fs.write(ino, 0, b"new").unwrap();
    fs.release(ino).unwrap();
    same(read_all(&fs, ino), b"new");
    // Growing it again shows no trace of the old content.
    set_size(&fs, ino, 150_000);
    let got = read_all(&fs, ino);
    assert_eq!(&got[..3], b"new");
    assert!(got[3..].iter().all(|b| *b == 0));
}

#[test]
fn unlinked_open_file_lives_until_release() {
    let (dev, fs) = fresh();
    let data = pattern(7, 100_000);
    let ino = create_file(&fs, ROOT, b"u", &data);
    fs.open(ino, false).unwrap();
    fs.open(ino, false).unwrap();
    fs.unlink(ROOT, b"u").unwrap();
    assert!(matches!(fs.lookup(ROOT, b"u"), Err(FsError::NotFound)));
    assert!(names(&fs, ROOT).is_empty());
    let a = fs.getattr(ino).unwrap();
    assert_eq!(a.nlink, 0);
    assert_eq!(a.size, 100_000);
    same(read_all(&fs, ino), &data);
    fs.write(ino, 100_000, b"more").unwrap();
    fs.release(ino).unwrap();
    let mut want = data.clone();
    want.extend_from_slice(b"more");
    same(read_all(&fs, ino), &want);
    fs.release(ino).unwrap();
    assert!(matches!(fs.getattr(ino), Err(FsError::NotFound)));
    assert!(matches!(fs.read(ino, 0, 1), Err(FsError::NotFound)));
    // The name can be reused at once.
    let again = create_file(&fs, ROOT, b"u", b"x");
    same(read_all(&fs, again), b"x");

    // An orphan left open at unmount is reclaimed by the next mount.
    let ino2 = create_file(&fs, ROOT, b"orphan", &pattern(8, 5000));
    fs.open(ino2, false).unwrap();
    fs.unlink(ROOT, b"orphan").unwrap();
    let (_dev, fs) = close_and_remount(&dev, fs);
    assert!(
        fs.notes()
            .iter()
            .any(|n| n.contains("reclaimed 1 orphaned inode")),
        "{:?}",
        fs.notes()
    );
    assert!(matches!(fs.getattr(ino2), Err(FsError::NotFound)));
    same(read_all(&fs, again), b"x");
}

#[test]
fn rename_replaces_files_and_empty_dirs() {
    let (dev, fs) = fresh();
    let a = create_file(&fs, ROOT, b"a", b"AAAA");
    let b = create_file(&fs, ROOT, b"b", b"BB");
    fs.rename(ROOT, b"a", ROOT, b"b", RenameMode::Replace)
        .unwrap();
    assert_eq!(fs.lookup(ROOT, b"b").unwrap().ino, a);
    assert!(matches!(fs.lookup(ROOT, b"a"), Err(FsError::NotFound)));
    assert!(matches!(fs.getattr(b), Err(FsError::NotFound)));
    same(read_all(&fs, a), b"AAAA");
    assert_eq!(fs.getattr(a).unwrap().nlink, 1);

    // A directory replaces an empty directory in another parent.
    let p = fs.mkdir(ROOT, b"p", 0o755, Caller::ROOT).unwrap().ino;
    let q = fs.mkdir(ROOT, b"q", 0o755, Caller::ROOT).unwrap().ino;
    let d1 = fs.mkdir(p, b"d1", 0o755, Caller::ROOT).unwrap().ino;
    fs.mkdir(d1, b"inner", 0o755, Caller::ROOT).unwrap();
    let d2 = fs.mkdir(q, b"d2", 0o755, Caller::ROOT).unwrap().ino;
    assert_eq!(fs.getattr(p).unwrap().nlink, 3);
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 4);
    fs.rename(p, b"d1", q, b"d2", RenameMode::Replace).unwrap();
    assert!(matches!(fs.getattr(d2), Err(FsError::NotFound)));
    assert_eq!(fs.lookup(q, b"d2").unwrap().ino, d1);
    assert_eq!(fs.getattr(p).unwrap().nlink, 2);
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(fs.getattr(d1).unwrap().nlink, 3);
    assert_eq!(dotdot(&fs, d1), q);
    assert!(names(&fs, p).is_empty());

    // Within one directory, a directory over an empty directory.
    let e1 = fs.mkdir(q, b"e1", 0o755, Caller::ROOT).unwrap().ino;
    assert_eq!(fs.getattr(q).unwrap().nlink, 4);
    fs.rename(q, b"d2", q, b"e1", RenameMode::Replace).unwrap();
    assert!(matches!(fs.getattr(e1), Err(FsError::NotFound)));
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(names(&fs, q), BTreeSet::from([b"e1".to_vec()]));

    // Errors leave everything in place.
    create_file(&fs, q, b"file", b"f");
    // Directory over a non-empty directory.
    let full = fs.mkdir(ROOT, b"full", 0o755, Caller::ROOT).unwrap().ino;
    create_file(&fs, full, b"x", b"");
    assert!(matches!(
        fs.rename(q, b"e1", ROOT, b"full", RenameMode::Replace),
        Err(FsError::NotEmpty)
    ));
    // File over a directory, directory over a file.
    assert!(matches!(
        fs.rename(q, b"file", ROOT, b"full", RenameMode::Replace),
        Err(FsError::IsDir)
    ));
    assert!(matches!(
        fs.rename(q, b"e1", q, b"file", RenameMode::Replace),
        Err(FsError::NotDir)
    ));
    assert!(matches!(
        fs.rename(q, b"nope", q, b"x", RenameMode::Replace),
        Err(FsError::NotFound)
    ));
    assert_eq!(
        names(&fs, q),
        BTreeSet::from([b"e1".to_vec(), b"file".to_vec()])
    );
    assert_eq!(names(&fs, full), BTreeSet::from([b"x".to_vec()]));
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 5);

    // Renaming onto itself, or onto another link of the same inode, does nothing.
    fs.rename(q, b"file", q, b"file", RenameMode::Replace)
        .unwrap();
    let f = fs.lookup(q, b"file").unwrap().ino;
    fs.link(f, ROOT, b"flink").unwrap();
    fs.rename(q, b"file", ROOT, b"flink", RenameMode::Replace)
        .unwrap();
    assert_eq!(fs.lookup(q, b"file").unwrap().ino, f);
    assert_eq!(fs.lookup(ROOT, b"flink").unwrap().ino, f);
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);

    let (_dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(fs.lookup(q, b"e1").unwrap().ino, d1);
    assert_eq!(fs.getattr(d1).unwrap().nlink, 3);
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(fs.getattr(p).unwrap().nlink, 2);
    assert_eq!(dotdot(&fs, d1), q);
    same(read_all(&fs, a), b"AAAA");
}

#[test]
fn rename_noreplace_and_exchange() {
    let (dev, fs) = fresh();
    let a = create_file(&fs, ROOT, b"a", b"A");
    let b = create_file(&fs, ROOT, b"b", b"B");
    assert!(matches!(
        fs.rename(ROOT, b"a", ROOT, b"b", RenameMode::NoReplace),
        Err(FsError::Exists)
    ));
    assert!(matches!(
        fs.rename(ROOT, b"a", ROOT, b"a", RenameMode::NoReplace),
        Err(FsError::Exists)
    ));
    assert_eq!(fs.lookup(ROOT, b"a").unwrap().ino, a);
    assert_eq!(fs.lookup(ROOT, b"b").unwrap().ino, b);
    fs.rename(ROOT, b"a", ROOT, b"c", RenameMode::NoReplace)
        .unwrap();
    assert_eq!(fs.lookup(ROOT, b"c").unwrap().ino, a);

    // Exchange of two files in one directory.
    fs.rename(ROOT, b"c", ROOT, b"b", RenameMode::Exchange)
        .unwrap();
    assert_eq!(fs.lookup(ROOT, b"c").unwrap().ino, b);
    assert_eq!(fs.lookup(ROOT, b"b").unwrap().ino, a);
    same(read_all(&fs, fs.lookup(ROOT, b"b").unwrap().ino), b"A");
    assert!(matches!(
        fs.rename(ROOT, b"c", ROOT, b"missing", RenameMode::Exchange),
        Err(FsError::NotFound)
    ));

    // A directory (with a subdirectory) and a file across parents.
    let p1 = fs.mkdir(ROOT, b"p1", 0o755, Caller::ROOT).unwrap().ino;
    let p2 = fs.mkdir(ROOT, b"p2", 0o755, Caller::ROOT).unwrap().ino;
    let x = fs.mkdir(p1, b"x", 0o755, Caller::ROOT).unwrap().ino;
    fs.mkdir(x, b"sub", 0o755, Caller::ROOT).unwrap();
    let y = create_file(&fs, p2, b"y", b"why");
    assert_eq!(fs.getattr(p1).unwrap().nlink, 3);
    assert_eq!(fs.getattr(p2).unwrap().nlink, 2);
    fs.rename(p1, b"x", p2, b"y", RenameMode::Exchange).unwrap();
    assert_eq!(fs.lookup(p1, b"x").unwrap().ino, y);
    assert_eq!(fs.lookup(p1, b"x").unwrap().kind, FileKind::Regular);
    assert_eq!(fs.lookup(p2, b"y").unwrap().ino, x);
    assert_eq!(fs.getattr(p1).unwrap().nlink, 2);
    assert_eq!(fs.getattr(p2).unwrap().nlink, 3);
    assert_eq!(fs.getattr(x).unwrap().nlink, 3);
    assert_eq!(dotdot(&fs, x), p2);
    let kinds: BTreeMap<Vec<u8>, FileKind> = list(&fs, p2)
        .into_iter()
        .map(|(_, n, _, k)| (n, k))
        .collect();
    assert_eq!(kinds[&b"y".to_vec()], FileKind::Directory);

    // Two directories across parents: link counts do not move.
    let z = fs.mkdir(p1, b"z", 0o755, Caller::ROOT).unwrap().ino;
    assert_eq!(fs.getattr(p1).unwrap().nlink, 3);
    fs.rename(p1, b"z", p2, b"y", RenameMode::Exchange).unwrap();
    assert_eq!(fs.lookup(p1, b"z").unwrap().ino, x);
    assert_eq!(fs.lookup(p2, b"y").unwrap().ino, z);
    assert_eq!(fs.getattr(p1).unwrap().nlink, 3);
    assert_eq!(fs.getattr(p2).unwrap().nlink, 3);
    assert_eq!(dotdot(&fs, x), p1);
    assert_eq!(dotdot(&fs, z), p2);

    // A directory cannot be exchanged with something below itself.
    let deep = create_file(&fs, x, b"deep", b"");
    assert!(matches!(
        fs.rename(p1, b"z", x, b"deep", RenameMode::Exchange),
        Err(FsError::Invalid(_))
    ));
    assert!(matches!(
        fs.rename(x, b"deep", p1, b"z", RenameMode::Exchange),
        Err(FsError::Invalid(_))
    ));
    assert_eq!(fs.lookup(x, b"deep").unwrap().ino, deep);

    let (_dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(fs.lookup(p1, b"z").unwrap().ino, x);
    assert_eq!(fs.lookup(p2, b"y").unwrap().ino, z);
    assert_eq!(fs.lookup(p1, b"x").unwrap().ino, y);
    assert_eq!(fs.getattr(p1).unwrap().nlink, 3);
    assert_eq!(fs.getattr(p2).unwrap().nlink, 3);
    assert_eq!(dotdot(&fs, x), p1);
    assert_eq!(dotdot(&fs, z), p2);
}

#[test]
fn rename_of_a_directory_below_itself_is_invalid() {
    let (_dev, fs) = fresh();
    let a = fs.mkdir(ROOT, b"a", 0o755, Caller::ROOT).unwrap().ino;
    let b = fs.mkdir(a, b"b", 0o755, Caller::ROOT).unwrap().ino;
    let c = fs.mkdir(b, b"c", 0o755, Caller::ROOT).unwrap().ino;
    for (np, nn) in [(a, &b"x"[..]), (b, b"x"), (c, b"x"), (c, b"a")] {
        assert!(
            matches!(
                fs.rename(ROOT, b"a", np, nn, RenameMode::Replace),
                Err(FsError::Invalid(_))
            ),
            "into {np}/{nn:?}"
        );
    }
    assert!(matches!(
        fs.rename(a, b"b", c, b"b2", RenameMode::NoReplace),
        Err(FsError::Invalid(_))
    ));
    assert_eq!(fs.lookup(ROOT, b"a").unwrap().ino, a);
    assert_eq!(fs.lookup(a, b"b").unwrap().ino, b);
    assert_eq!(fs.getattr(a).unwrap().nlink, 3);
    // Moving a subdirectory up is fine.
    fs.rename(b, b"c", ROOT, b"c", RenameMode::Replace).unwrap();
    assert_eq!(fs.getattr(b).unwrap().nlink, 2);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 4);
    assert_eq!(dotdot(&fs, c), ROOT);
}

#[test]
fn link_counts_and_rmdir() {
    let (dev, fs) = fresh();
    let f = create_file(&fs, ROOT, b"f", b"data");
    let d = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    assert_eq!(fs.link(f, d, b"g").unwrap().nlink, 2);
    assert_eq!(fs.link(f, ROOT, b"h").unwrap().nlink, 3);
    assert_eq!(fs.getattr(f).unwrap().nlink, 3);
    assert_eq!(fs.lookup(d, b"g").unwrap().ino, f);
    assert!(matches!(fs.link(f, ROOT, b"h"), Err(FsError::Exists)));
    assert!(matches!(
        fs.link(d, ROOT, b"dl"),
        Err(FsError::NotPermitted)
    ));
    fs.unlink(ROOT, b"f").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
    same(read_all(&fs, f), b"data");
    fs.unlink(ROOT, b"h").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    assert!(matches!(fs.unlink(ROOT, b"h"), Err(FsError::NotFound)));

    // Directories: 2 + subdirectories; files do not count.
    assert_eq!(fs.getattr(d).unwrap().nlink, 2);
    let s1 = fs.mkdir(d, b"s1", 0o755, Caller::ROOT).unwrap().ino;
    fs.mkdir(d, b"s2", 0o755, Caller::ROOT).unwrap();
    fs.mknod(d, b"fifo", S_IFIFO | 0o644, 0, Caller::ROOT)
        .unwrap();
    assert_eq!(fs.getattr(d).unwrap().nlink, 4);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    assert!(matches!(fs.rmdir(ROOT, b"d"), Err(FsError::NotEmpty)));
    assert!(matches!(fs.unlink(ROOT, b"d"), Err(FsError::IsDir)));
    assert!(matches!(fs.rmdir(d, b"g"), Err(FsError::NotDir)));
    assert!(matches!(fs.rmdir(d, b"nope"), Err(FsError::NotFound)));
    fs.mkdir(s1, b"t", 0o755, Caller::ROOT).unwrap();
    assert!(matches!(fs.rmdir(d, b"s1"), Err(FsError::NotEmpty)));
    fs.rmdir(s1, b"t").unwrap();
    fs.rmdir(d, b"s1").unwrap();
    assert!(matches!(fs.getattr(s1), Err(FsError::NotFound)));
    assert_eq!(fs.getattr(d).unwrap().nlink, 3);

    let (_dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(fs.getattr(d).unwrap().nlink, 3);
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    fs.unlink(d, b"g").unwrap();
    fs.unlink(d, b"fifo").unwrap();
    fs.rmdir(d, b"s2").unwrap();
    fs.rmdir(ROOT, b"d").unwrap();
    assert!(matches!(fs.getattr(f), Err(FsError::NotFound)));
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 2);
    assert!(names(&fs, ROOT).is_empty());
}

#[test]
fn names_up_to_255_bytes() {
    let (dev, fs) = fresh();
    let ok = vec![b'n'; 255];
    let long = vec![b'n'; 256];
    let f = fs.create(ROOT, &ok, 0o644, Caller::ROOT).unwrap().ino;
    fs.release(f).unwrap();
    assert_eq!(fs.lookup(ROOT, &ok).unwrap().ino, f);
    assert_eq!(names(&fs, ROOT), BTreeSet::from([ok.clone()]));
    let d = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    let dir255 = fs.mkdir(d, &ok, 0o755, Caller::ROOT).unwrap().ino;
    fs.link(f, dir255, &ok).unwrap();
    fs.symlink(dir255, b"l", &ok, Caller::ROOT).unwrap();
    let nt = |r: FsResult<Attr>| assert!(matches!(r, Err(FsError::NameTooLong)));
    nt(fs.create(ROOT, &long, 0o644, Caller::ROOT));
    nt(fs.mkdir(ROOT, &long, 0o755, Caller::ROOT));
    nt(fs.mknod(ROOT, &long, S_IFIFO | 0o644, 0, Caller::ROOT));
    nt(fs.symlink(ROOT, &long, b"t", Caller::ROOT));
    nt(fs.lookup(ROOT, &long));
    nt(fs.link(f, ROOT, &long));
    assert!(matches!(
        fs.rename(ROOT, &ok, ROOT, &long, RenameMode::Replace),
        Err(FsError::NameTooLong)
    ));
    assert!(matches!(
        fs.rename(ROOT, &long, ROOT, b"x", RenameMode::Replace),
        Err(FsError::NameTooLong)
    ));
    assert!(matches!(fs.unlink(ROOT, &long), Err(FsError::NameTooLong)));
    fs.rename(ROOT, &ok, d, b"short", RenameMode::Replace)
        .unwrap();
    fs.rename(d, b"short", ROOT, &ok, RenameMode::Replace)
        .unwrap();
    let (_dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(fs.lookup(ROOT, &ok).unwrap().ino, f);
    assert_eq!(fs.lookup(dir255, &ok).unwrap().ino, f);
    assert_eq!(fs.lookup(d, &ok).unwrap().ino, dir255);
    let l = fs.lookup(dir255, b"l").unwrap().ino;
    assert_eq!(fs.readlink(l).unwrap(), ok);
}

#[test]
fn readdir_cookies_survive_removals_mid_listing() {
    let (_dev, fs) = fresh();
    let d = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    let all: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("entry{i:03}").into_bytes())
        .collect();
    for n in &all {
        create_file(&fs, d, n, b"");
    }
    // First half: ".", "..", then 48 entries.
    let mut first: Vec<(u64, Vec<u8>)> = Vec::new();
    fs.readdir(d, 0, |e| {
        if first.len() == 50 {
            return true;
        }
        first.push((e.cookie, e.name.to_vec()));
        false
    })
    .unwrap();
    assert_eq!(first.len(), 50);
    assert_eq!(first[0].1, b".");
    assert_eq!(first[1].1, b"..");
    let cookies: Vec<u64> = first.iter().map(|(c, _)| *c).collect();
    assert!(cookies.windows(2).all(|w| w[0] < w[1]), "{cookies:?}");
    let listed: BTreeSet<Vec<u8>> = first[2..].iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(listed.len(), 48);
    let last_cookie = first.last().unwrap().0;

    // Remove some already listed (including the last one) and some not listed yet.
    let mut removed_unlisted = BTreeSet::new();
    for (i, n) in all.iter().enumerate() {
        let gone = if listed.contains(n) {
            i % 3 == 0 || n == &first.last().unwrap().1
        } else {
            i % 4 == 1
        };
        if gone {
            fs.unlink(d, n).unwrap();
            if !listed.contains(n) {
                removed_unlisted.insert(n.clone());
            }
        }
    }
    assert!(!removed_unlisted.is_empty());
    let mut rest: Vec<Vec<u8>> = Vec::new();
    let mut rest_cookies = Vec::new();
    fs.readdir(d, last_cookie, |e| {
        rest.push(e.name.to_vec());
        rest_cookies.push(e.cookie);
        false
    })
    .unwrap();
    assert!(rest_cookies.iter().all(|c| *c > last_cookie));
    let rest_set: BTreeSet<Vec<u8>> = rest.iter().cloned().collect();
    assert_eq!(rest_set.len(), rest.len(), "an entry came twice");
    let want: BTreeSet<Vec<u8>> = all
        .iter()
        .filter(|n| !listed.contains(*n) && !removed_unlisted.contains(*n))
        .cloned()
        .collect();
    assert_eq!(rest_set, want);
    assert!(rest_set.is_disjoint(&listed));

    // Resuming in small batches from every cookie gives each entry once.
    let mut seen = Vec::new();
    let mut off = 0;
    loop {
        let mut batch = Vec::new();
        fs.readdir(d, off, |e| {
            if batch.len() == 7 {
                return true;
            }
            batch.push((e.cookie, e.name.to_vec()));
            false
        })
        .unwrap();
        if batch.is_empty() {
            break;
        }
        off = batch.last().unwrap().0;
        seen.extend(batch.into_iter().map(|(_, n)| n));
    }
    let mut expect: Vec<Vec<u8>> = vec![b".".to_vec(), b"..".to_vec()];
    expect.extend(names(&fs, d));
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    expect.sort();
    assert_eq!(seen_sorted, expect);
}

#[test]
fn xattrs_create_replace_list_remove() {
    let (dev, fs) = fresh();
    let f = create_file(&fs, ROOT, b"f", b"");
    assert!(fs.listxattr(f).unwrap().is_empty());
    fs.setxattr(f, b"user.a", b"1", 0).unwrap();
    assert_eq!(fs.getxattr(f, b"user.a").unwrap(), b"1");
    assert!(matches!(
        fs.setxattr(f, b"user.a", b"2", XATTR_CREATE),
        Err(FsError::Exists)
    ));
    assert!(matches!(
        fs.setxattr(f, b"user.b", b"2", XATTR_REPLACE),
        Err(FsError::NoData)
    ));
    assert!(matches!(fs.getxattr(f, b"user.b"), Err(FsError::NoData)));
    fs.setxattr(f, b"user.b", b"", XATTR_CREATE).unwrap();
    fs.setxattr(f, b"user.a", b"replaced", XATTR_REPLACE)
        .unwrap();
    fs.setxattr(f, b"trusted.t", &[0u8, 1, 2, 255], 0).unwrap();
    assert_eq!(fs.getxattr(f, b"user.a").unwrap(), b"replaced");
    assert_eq!(fs.getxattr(f, b"user.b").unwrap(), b"");
    assert_eq!(
        xattr_names(&fs, f),
        BTreeSet::from([
            b"user.a".to_vec(),
            b"user.b".to_vec(),
            b"trusted.t".to_vec()
        ])
    );
    fs.removexattr(f, b"user.a").unwrap();
    assert!(matches!(fs.getxattr(f, b"user.a"), Err(FsError::NoData)));
    assert!(matches!(fs.removexattr(f, b"user.a"), Err(FsError::NoData)));
    assert_eq!(
        xattr_names(&fs, f),
        BTreeSet::from([b"user.b".to_vec(), b"trusted.t".to_vec()])
    );
    // Unknown namespaces, bad names, oversized values.
    assert!(matches!(
        fs.setxattr(f, b"other.x", b"v", 0),
        Err(FsError::NotSupported)
    ));
    assert!(matches!(
        fs.setxattr(f, b"user.", b"v", 0),
        Err(FsError::NotSupported)
    ));
    assert!(matches!(
        fs.setxattr(f, b"", b"v", 0),
        Err(FsError::Invalid(_))
    ));
    let long_name = [b"user.".to_vec(), vec![b'x'; 251]].concat();
    assert!(matches!(
        fs.setxattr(f, &long_name, b"v", 0),
        Err(FsError::Range)
    ));
    assert!(matches!(
        fs.setxattr(f, b"user.big", &vec![0u8; 65_537], 0),
        Err(FsError::TooBig)
    ));
    fs.setxattr(f, b"user.max", &vec![7u8; 65_536], 0).unwrap();
    // user.* is for files and directories only.
    let l = fs.symlink(ROOT, b"l", b"f", Caller::ROOT).unwrap().ino;
    assert!(matches!(
        fs.setxattr(l, b"user.a", b"v", 0),
        Err(FsError::NotPermitted)
    ));
    fs.setxattr(ROOT, b"user.dir", b"d", 0).unwrap();

    let (dev2, fs) = close_and_remount(&dev, fs);
    assert_eq!(
        xattr_names(&fs, f),
        BTreeSet::from([
            b"user.b".to_vec(),
            b"trusted.t".to_vec(),
            b"user.max".to_vec()
        ])
    );
    assert_eq!(fs.getxattr(f, b"trusted.t").unwrap(), [0u8, 1, 2, 255]);
    assert_eq!(fs.getxattr(f, b"user.max").unwrap(), vec![7u8; 65_536]);
    assert_eq!(fs.getxattr(ROOT, b"user.dir").unwrap(), b"d");
    // Removal and replacement survive a journal replay too.
    fs.removexattr(f, b"user.b").unwrap();
    fs.setxattr(f, b"trusted.t", b"new", XATTR_REPLACE).unwrap();
    fs.sync().unwrap();
    let img = dev2.power_cut(&mut PowerCut::new(3));
    drop(fs);
    let (_dev, fs) = mount_image(img);
    assert_eq!(
        xattr_names(&fs, f),
        BTreeSet::from([b"trusted.t".to_vec(), b"user.max".to_vec()])
    );
    assert_eq!(fs.getxattr(f, b"trusted.t").unwrap(), b"new");
    // An unlinked file's attributes go with it.
    fs.unlink(ROOT, b"f").unwrap();
    assert!(matches!(
        fs.getxattr(f, b"user.max"),
        Err(FsError::NotFound)
    ));
}

#[test]
fn symlinks_and_special_files() {
    let (dev, fs) = fresh();
    let l = fs.symlink(ROOT, b"l", b"some/where/else", USER).unwrap();
    assert_eq!(l.kind, FileKind::Symlink);
    assert_eq!(l.size, 15);
    assert_eq!(l.perm, 0o777);
    assert_eq!(l.uid, 1000);
    assert_eq!(fs.readlink(l.ino).unwrap(), b"some/where/else");
    assert_eq!(fs.lookup(ROOT, b"l").unwrap().ino, l.ino);
    assert!(matches!(
        fs.symlink(ROOT, b"l", b"x", USER),
        Err(FsError::Exists)
    ));
    assert!(matches!(
        fs.symlink(ROOT, b"e", b"", USER),
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        fs.symlink(ROOT, b"e", &vec![b'a'; 4096], USER),
        Err(FsError::NameTooLong)
    ));
    let long_target = vec![b'a'; 4095];
    let ll = fs.symlink(ROOT, b"long", &long_target, USER).unwrap().ino;
    assert!(matches!(fs.readlink(ROOT), Err(FsError::Invalid(_))));
    assert!(matches!(fs.read(l.ino, 0, 10), Err(FsError::Invalid(_))));

    let fifo = fs
        .mknod(ROOT, b"fifo", S_IFIFO | 0o600, 1234, USER)
        .unwrap();
    assert_eq!(fifo.kind, FileKind::Fifo);
    assert_eq!(fifo.perm, 0o600);
    assert_eq!(fifo.rdev, 0);
    assert_eq!(fifo.nlink, 1);
    let chr = fs
        .mknod(ROOT, b"chr", S_IFCHR | 0o644, 0x0103, USER)
        .unwrap();
    assert_eq!(chr.kind, FileKind::CharDevice);
    assert_eq!(chr.rdev, 0x0103);
    let reg = fs.mknod(ROOT, b"reg", S_IFREG | 0o644, 0, USER).unwrap();
    assert_eq!(reg.kind, FileKind::Regular);
    assert!(matches!(
        fs.mknod(ROOT, b"dir", S_IFDIR | 0o755, 0, USER),
        Err(FsError::Invalid(_))
    ));
    let kinds: BTreeMap<Vec<u8>, (u64, FileKind)> = list(&fs, ROOT)
        .into_iter()
        .map(|(_, n, i, k)| (n, (i, k)))
        .collect();
    assert_eq!(kinds[&b"fifo".to_vec()], (fifo.ino, FileKind::Fifo));
    assert_eq!(kinds[&b"chr".to_vec()], (chr.ino, FileKind::CharDevice));
    assert_eq!(kinds[&b"l".to_vec()], (l.ino, FileKind::Symlink));

    let before: Vec<Attr> = [l.ino, ll, fifo.ino, chr.ino, reg.ino]
        .iter()
        .map(|i| fs.getattr(*i).unwrap())
        .collect();
    let (_dev, fs) = close_and_remount(&dev, fs);
    let after: Vec<Attr> = [l.ino, ll, fifo.ino, chr.ino, reg.ino]
        .iter()
        .map(|i| fs.getattr(*i).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(fs.readlink(l.ino).unwrap(), b"some/where/else");
    assert_eq!(fs.readlink(ll).unwrap(), long_target);
    fs.unlink(ROOT, b"l").unwrap();
    assert!(matches!(fs.readlink(l.ino), Err(FsError::NotFound)));
}

#[test]
fn fallocate_punch_hole_and_zero_range() {
    let (dev, fs) = fresh();
    let data = pattern(3, (3 * R) as usize);
    let f = create_file(&fs, ROOT, b"f", &data);
    let mut model = data.clone();
    let keep_punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

    // Across a record boundary, partial on both sides.
    fs.fallocate(f, R / 2, R, keep_punch).unwrap();
    model[(R / 2) as usize..(3 * R / 2) as usize].fill(0);
    same(read_all(&fs, f), &model);
    assert_eq!(fs.getattr(f).unwrap().size, 3 * R);
    assert_eq!(fs.getattr(f).unwrap().blocks, 48 * 8);
    // A whole record goes away.
    fs.fallocate(f, 2 * R, R, keep_punch).unwrap();
    model[(2 * R) as usize..].fill(0);
    same(read_all(&fs, f), &model);
    assert_eq!(fs.getattr(f).unwrap().blocks, 32 * 8);
    assert_eq!(fs.lseek(f, 3 * R / 2, SEEK_DATA).unwrap(), 3 * R / 2);
    // Zeroing the rest of record 1 drops it too.
    fs.fallocate(f, R, R, keep_punch).unwrap();
    model[R as usize..(2 * R) as usize].fill(0);
    same(read_all(&fs, f), &model);
    assert_eq!(fs.getattr(f).unwrap().blocks, 16 * 8);
    assert!(matches!(
        fs.lseek(f, R + 1, SEEK_DATA),
        Err(FsError::NoSuchOffset)
    ));
    // Punching past the end changes nothing, not even the size.
    fs.fallocate(f, 3 * R - 10, 10 * R, keep_punch).unwrap();
    assert_eq!(fs.getattr(f).unwrap().size, 3 * R);
    same(read_all(&fs, f), &model);
    // Punch needs KEEP_SIZE; unknown modes are refused.
    assert!(matches!(
        fs.fallocate(f, 0, 10, FALLOC_FL_PUNCH_HOLE),
        Err(FsError::NotSupported)
    ));
    assert!(matches!(
        fs.fallocate(f, 0, 10, 0x40),
        Err(FsError::NotSupported)
    ));
    assert!(matches!(fs.fallocate(f, 0, 0, 0), Err(FsError::Invalid(_))));

    // Zero range inside, then past the end (extends the size), then with KEEP_SIZE.
    fs.fallocate(f, 100, 50, FALLOC_FL_ZERO_RANGE).unwrap();
    model[100..150].fill(0);
    same(read_all(&fs, f), &model);
    fs.fallocate(f, 3 * R - 5, R, FALLOC_FL_ZERO_RANGE).unwrap();
    model.resize((4 * R - 5) as usize, 0);
    assert_eq!(fs.getattr(f).unwrap().size, 4 * R - 5);
    same(read_all(&fs, f), &model);
    fs.fallocate(f, 4 * R, R, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)
        .unwrap();
    assert_eq!(fs.getattr(f).unwrap().size, 4 * R - 5);
    // Plain allocation extends the size unless told to keep it.
    fs.fallocate(f, 4 * R, 1000, FALLOC_FL_KEEP_SIZE).unwrap();
    assert_eq!(fs.getattr(f).unwrap().size, 4 * R - 5);
    fs.fallocate(f, 4 * R, 1000, 0).unwrap();
    model.resize((4 * R + 1000) as usize, 0);
    assert_eq!(fs.getattr(f).unwrap().size, 4 * R + 1000);
    same(read_all(&fs, f), &model);
    assert!(matches!(fs.fallocate(ROOT, 0, 10, 0), Err(FsError::IsDir)));

    let (_dev, fs) = close_and_remount(&dev, fs);
    same(read_all(&fs, f), &model);
}

#[test]
fn enospc_then_the_filesystem_still_works() {
    let (dev, fs) = fresh_sized(8 << 20);
    let small = create_file(&fs, ROOT, b"small", b"tiny");
    let big = fs.create(ROOT, b"big", 0o644, Caller::ROOT).unwrap().ino;
    // Unaligned multi-record writes, so the last one fails part way through.
    let chunk = 200_000usize;
    let mut content = Vec::new();
    let mut short_writes = 0;
    let err = loop {
        let data = pattern(content.len() as u8, chunk);
        match fs.write(big, content.len() as u64, &data) {
            Ok(n) => {
                assert!(n > 0 && n as usize <= chunk);
                if (n as usize) < chunk {
                    short_writes += 1;
                }
                content.extend_from_slice(&data[..n as usize]);
            }
            Err(e) => break e,
        }
        assert!(content.len() < 8 << 20, "8 MiB written to an 8 MiB device");
    };
    assert!(matches!(err, FsError::NoSpace), "{err:?}");
    assert_eq!(err.errno(), libc::ENOSPC);
    assert!(content.len() > 5 << 20, "only {} bytes fit", content.len());
    assert!(short_writes <= 1);
    assert_eq!(fs.getattr(big).unwrap().size, content.len() as u64);
    same(read_all(&fs, big), &content);
    assert!(matches!(
        fs.write(big, content.len() as u64, &[1u8; 100_000]),
        Err(FsError::NoSpace)
    ));
    assert!(matches!(
        fs.fallocate(big, content.len() as u64, 1 << 20, 0),
        Err(FsError::NoSpace)
    ));
    // Nothing past the size was kept by the failed writes: growing reads zeros.
    let size = content.len() as u64;
    set_size(&fs, big, size + 300_000);
    same(fs.read(big, size, 300_000).unwrap(), vec![0u8; 300_000]);
    set_size(&fs, big, size);
    // Metadata changes, commits and the unmount checkpoint still work.
    fs.rename(ROOT, b"small", ROOT, b"small2", RenameMode::Replace)
        .unwrap();
    fs.sync().unwrap();
    let (dev, fs) = close_and_remount(&dev, fs);
    same(read_all(&fs, big), &content);
    assert_eq!(fs.lookup(ROOT, b"small2").unwrap().ino, small);
    same(read_all(&fs, small), b"tiny");
    assert_eq!(fs.getattr(big).unwrap().size, size);

    // Unlinking frees the space once committed: nearly as much fits again.
    fs.unlink(ROOT, b"big").unwrap();
    fs.sync().unwrap();
    let again = fs.create(ROOT, b"again", 0o644, Caller::ROOT).unwrap().ino;
    let want = &content[..content.len() - (1 << 20)];
    let mut written = 0usize;
    while written < want.len() {
        let n = (want.len() - written).min(chunk);
        let w = fs
            .write(again, written as u64, &want[written..written + n])
            .unwrap();
        assert_eq!(w as usize, n);
        written += n;
    }
    fs.release(again).unwrap();
    fs.sync().unwrap();
    let img = dev.power_cut(&mut PowerCut::new(11));
    drop(fs);
    let (dev, fs) = mount_image(img);
    same(read_all(&fs, again), want);
    same(read_all(&fs, small), b"tiny");
    assert!(matches!(fs.lookup(ROOT, b"big"), Err(FsError::NotFound)));
    let (_dev, fs) = close_and_remount(&dev, fs);
    same(read_all(&fs, again), want);
}

/// Builds a small tree with every kind of node; returns the inodes to compare.
fn build_tree(fs: &Filesystem) -> Vec<u64> {
    let d = fs.mkdir(ROOT, b"dir", 0o711, USER).unwrap().ino;
    let sub = fs.mkdir(d, b"sub", 0o700, USER).unwrap().ino;
    let a = create_file(fs, d, b"a", &pattern(1, 300_000));
    let b = fs.create(sub, b"b", 0o600, USER).unwrap().ino;
    fs.write(b, 3 * R + 1, &pattern(2, 10)).unwrap();
    fs.write(b, 10, b"head").unwrap();
    fs.release(b).unwrap();
    fs.link(a, ROOT, b"a-link").unwrap();
    let l = fs.symlink(sub, b"ln", b"../a", USER).unwrap().ino;
    let p = fs
        .mknod(ROOT, b"pipe", S_IFIFO | 0o620, 0, USER)
        .unwrap()
        .ino;
    fs.setxattr(a, b"user.k", b"value", 0).unwrap();
    fs.setattr(
        b,
        &SetAttr {
            mode: Some(0o4755),
            mtime: Some(TimeSet::At(123_456_789)),
            atime: Some(TimeSet::At(-5)),
            ..Default::default()
        },
        Caller::ROOT,
    )
    .unwrap();
    let gone = create_file(fs, ROOT, b"gone", b"bye");
    fs.unlink(ROOT, b"gone").unwrap();
    assert!(matches!(fs.getattr(gone), Err(FsError::NotFound)));
    set_size(fs, a, 250_000);
    vec![ROOT, d, sub, a, b, l, p]
}

fn check_tree(fs: &Filesystem, inos: &[u64], attrs: &[Attr]) {
    let now: Vec<Attr> = inos.iter().map(|i| fs.getattr(*i).unwrap()).collect();
    assert_eq!(now, attrs);
    let (d, sub, a, b, l) = (inos[1], inos[2], inos[3], inos[4], inos[5]);
    // Before any read moves the atime.
    let bat = fs.getattr(b).unwrap();
    assert_eq!(bat.perm, 0o4755);
    assert_eq!(bat.mtime_ns, 123_456_789);
    assert_eq!(bat.atime_ns, -5);
    assert_eq!(
        names(fs, ROOT),
        BTreeSet::from([b"dir".to_vec(), b"a-link".to_vec(), b"pipe".to_vec()])
    );
    assert_eq!(
        names(fs, d),
        BTreeSet::from([b"sub".to_vec(), b"a".to_vec()])
    );
    assert_eq!(
        names(fs, sub),
        BTreeSet::from([b"b".to_vec(), b"ln".to_vec()])
    );
    assert_eq!(fs.lookup(ROOT, b"a-link").unwrap().ino, a);
    same(read_all(fs, a), &pattern(1, 300_000)[..250_000]);
    let mut want_b = vec![0u8; (3 * R + 11) as usize];
    want_b[10..14].copy_from_slice(b"head");
    want_b[(3 * R + 1) as usize..].copy_from_slice(&pattern(2, 10));
    same(read_all(fs, b), &want_b);
    assert_eq!(fs.readlink(l).unwrap(), b"../a");
    assert_eq!(fs.getxattr(a, b"user.k").unwrap(), b"value");
    assert_eq!(dotdot(fs, sub), d);
    assert_eq!(fs.getattr(a).unwrap().nlink, 2);
    assert_eq!(fs.getattr(d).unwrap().nlink, 3);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
}

#[test]
fn everything_survives_close_and_remount() {
    let (dev, fs) = fresh();
    let inos = build_tree(&fs);
    let attrs: Vec<Attr> = inos.iter().map(|i| fs.getattr(*i).unwrap()).collect();
    let (dev, fs) = close_and_remount(&dev, fs);
    assert!(fs.notes().is_empty(), "{:?}", fs.notes());
    let attrs_after: Vec<Attr> = inos.iter().map(|i| fs.getattr(*i).unwrap()).collect();
    assert_eq!(attrs_after, attrs);
    check_tree(&fs, &inos, &attrs_after);
    // Reading moved atimes; the new ones survive too.
    let attrs: Vec<Attr> = inos.iter().map(|i| fs.getattr(*i).unwrap()).collect();
    let (_dev, fs) = close_and_remount(&dev, fs);
    let attrs_after: Vec<Attr> = inos.iter().map(|i| fs.getattr(*i).unwrap()).collect();
    assert_eq!(attrs_after, attrs);
}

#[test]
fn synced_state_survives_a_power_cut() {
    let (dev, fs) = fresh();
    let inos = build_tree(&fs);
    fs.sync().unwrap();
    let attrs: Vec<Attr> = inos.iter().map(|i| fs.getattr(*i).unwrap()).collect();
    // Unsynced work after the sync: data blocks written, no commit.
    let before = fs.counters();
    create_file(&fs, ROOT, b"late", &pattern(9, 200_000));
    assert_eq!(fs.counters().checkpoints, before.checkpoints);
    assert_eq!(fs.counters().commits, before.commits);
    for seed in 0..8 {
        let img = dev.power_cut(&mut PowerCut::new(seed));
        let (dev2, fs2) = mount_image(img);
        assert!(
            fs2.notes().iter().any(|n| n.contains("replayed")),
            "{:?}",
            fs2.notes()
        );
        assert!(matches!(fs2.lookup(ROOT, b"late"), Err(FsError::NotFound)));
        let after: Vec<Attr> = inos.iter().map(|i| fs2.getattr(*i).unwrap()).collect();
        assert_eq!(after, attrs, "seed {seed}");
        check_tree(&fs2, &inos, &after);
        // Recovery checkpointed: a second cut right away loses nothing.
        let (_d, fs3) = mount_image(dev2.power_cut(&mut PowerCut::new(seed + 100)));
        assert!(fs3.notes().is_empty(), "{:?}", fs3.notes());
        // The reads above moved atimes in memory only.
        check_tree(&fs3, &inos, &attrs);
    }
}

#[test]
fn blocks_freed_by_uncommitted_changes_are_not_reused_before_the_commit() {
    // 8 MiB: about 7 MiB of data area. A (2 MiB) is synced, then overwritten: its old
    // records stay referenced by the durable state until a commit. B then needs more
    // room than is free without them, so the allocator must commit before reusing them.
    let (dev, fs) = fresh_sized(8 << 20);
    let old_a = pattern(1, 2 << 20);
    let new_a = pattern(2, 2 << 20);
    let b_data = pattern(3, 3584 << 10);
    let a = create_file(&fs, ROOT, b"a", &old_a);
    fs.sync().unwrap();
    let commits = fs.counters().commits + fs.counters().checkpoints;
    for (i, chunk) in new_a.chunks(R as usize).enumerate() {
        fs.write(a, i as u64 * R, chunk).unwrap();
    }
    let b = fs.create(ROOT, b"b", 0o644, Caller::ROOT).unwrap().ino;
    for (i, chunk) in b_data.chunks(R as usize).enumerate() {
        assert_eq!(fs.write(b, i as u64 * R, chunk).unwrap() as u64, R);
    }
    same(read_all(&fs, a), &new_a);
    same(read_all(&fs, b), &b_data);
    for seed in 0..6 {
        let img = dev.power_cut(&mut PowerCut::new(seed));
        let report = crate::fsck::check(Arc::new(FaultDevice::new(img.clone()))).unwrap();
        assert!(
            report.problems.is_empty(),
            "seed {seed}: {:?}",
            report.problems
        );
        let (_d, fs2) = mount_image(img);
        let got_a = read_all(&fs2, a);
        assert!(
            got_a == old_a || got_a == new_a,
            "seed {seed}: A is neither version"
        );
        if let Ok(attr) = fs2.lookup(ROOT, b"b") {
            let got_b = read_all(&fs2, attr.ino);
            assert_eq!(got_b.len() as u64 % R, 0, "seed {seed}");
            same(&got_b, &b_data[..got_b.len()]);
        }
    }
    assert!(
        fs.counters().commits + fs.counters().checkpoints > commits,
        "B fitted without A's old blocks: the test needs a smaller device"
    );
}

#[test]
fn a_write_short_of_space_commits_before_it_starts_not_half_way() {
    // One 3.5 MiB write needs the blocks A's overwrite freed: the commit that releases
    // them must come before the write changes anything, or a power cut leaves records
    // past the end of B (fsck damage, stale bytes shown when B grows).
    let (dev, fs) = fresh_sized(8 << 20);
    let new_a = pattern(2, 2 << 20);
    let b_data = pattern(3, 3584 << 10);
    let a = create_file(&fs, ROOT, b"a", &pattern(1, 2 << 20));
    fs.sync().unwrap();
    fs.write(a, 0, &new_a).unwrap();
    let b = fs.create(ROOT, b"b", 0o644, Caller::ROOT).unwrap().ino;
    let commits = fs.counters().commits;
    assert_eq!(fs.write(b, 0, &b_data).unwrap() as usize, b_data.len());
    assert!(
        fs.counters().commits > commits,
        "the write did not need a commit"
    );
    for seed in 0..6 {
        let img = dev.power_cut(&mut PowerCut::new(seed));
        let report = crate::fsck::check(Arc::new(FaultDevice::new(img.clone()))).unwrap();
        assert!(
            report.problems.is_empty(),
            "seed {seed}: {:?}",
            report.problems
        );
        let (_d, fs2) = mount_image(img);
        // The commit holds everything before the write, nothing of it.
        same(read_all(&fs2, a), &new_a);
        let battr = fs2.getattr(b).unwrap();
        assert_eq!((battr.size, battr.blocks), (0, 0), "seed {seed}");
        set_size(&fs2, b, 1 << 20);
        same(read_all(&fs2, b), vec![0u8; 1 << 20]);
    }
    fs.sync().unwrap();
    let (_d, fs2) = mount_image(dev.power_cut(&mut PowerCut::new(99)));
    same(read_all(&fs2, b), &b_data);
}

#[test]
fn a_torn_wrapped_transaction_does_not_poison_a_later_replay() {
    // A 16-block ring. A transaction that wraps is written as two runs; the power goes
    // during the flush and only the run at the ring start lands. The next mount finds
    // nothing to replay, the next session commits up to the ring end, and the power goes
    // again: replay must stop there, not run on into the stale run at the ring start.
    let dev = Arc::new(FaultDevice::new(vec![0u8; 8 << 20]));
    let d: Arc<dyn Device> = dev.clone();
    let opts = MkfsOptions {
        journal_blocks: Some(16),
        ..Default::default()
    };
    mkfs(d.clone(), &opts).unwrap();
    let fs = Filesystem::mount(d, OpenOptions::default()).unwrap();
    // Single-block commits move the ring to index 12; a clean close puts the head there.
    let mut want: BTreeSet<Vec<u8>> = BTreeSet::new();
    for i in 0..12 {
        let name = format!("m{i}").into_bytes();
        fs.mkdir(ROOT, &name, 0o755, Caller::ROOT).unwrap();
        fs.sync().unwrap();
        want.insert(name);
    }
    fs.close().unwrap();
    let (head, journal_start) = {
        let g = fs.lock();
        (
            g.vol.superblock().journal_head,
            g.vol.superblock().journal_start,
        )
    };
    assert_eq!(head, 12);
    let before = dev.volatile_image();
    // One transaction of 7 blocks (12..=15, then 0..=2), below the checkpoint threshold.
    let checkpoints = fs.counters().checkpoints;
    for i in 0..60 {
        let name = format!("{i:03}{}", "x".repeat(250));
        fs.mknod(ROOT, name.as_bytes(), S_IFIFO | 0o644, 0, Caller::ROOT)
            .unwrap();
    }
    fs.sync().unwrap();
    assert_eq!(fs.counters().checkpoints, checkpoints);
    // The cut: the run at the ring end is lost, the run at the ring start kept.
    let mut img = dev.volatile_image();
    for idx in head..16 {
        let off = ((journal_start + idx) as usize) * 4096;
        img[off..off + 4096].copy_from_slice(&before[off..off + 4096]);
    }
    drop(fs);
    let (dev2, fs2) = mount_image(img);
    assert_eq!(names(&fs2, ROOT), want);
    for i in 0..(16 - head) {
        let name = format!("n{i}").into_bytes();
        fs2.mkdir(ROOT, &name, 0o755, Caller::ROOT).unwrap();
        fs2.sync().unwrap();
        want.insert(name);
    }
    let img3 = dev2.power_cut(&mut PowerCut::new(5));
    drop(fs2);
    let report = crate::fsck::check(Arc::new(FaultDevice::new(img3.clone()))).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let (_d, fs3) = mount_image(img3);
    assert_eq!(names(&fs3, ROOT), want);
}
