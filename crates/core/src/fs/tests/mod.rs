//! POSIX behaviour of [`Filesystem`] on an in-memory [`FaultDevice`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Asserts that `$e` fails with an error matching `$p`, showing what it returned if
/// not.
macro_rules! assert_err {
    ($e:expr, $p:pat) => {
        match $e {
            Err($p) => {}
            other => panic!("expected Err({}), got {other:?}", stringify!($p)),
        }
    };
}

mod attrs;
mod clone;
mod compression;
mod damage;
mod data;
mod dedup;
mod diff;
mod durability;
mod encryption;
mod in_use;
mod names;
mod pages;
mod prealloc;
mod prepare;
mod search;
mod send;
mod snapshots;
mod writeback;

use std::collections::BTreeSet;
use std::sync::Arc;

use gpufs_format::FileKind;

use super::*;
use crate::device::{Device, FaultDevice, PowerCut};
use crate::volume::{mkfs, MkfsOptions};

const ROOT: u64 = 1;
const R: u64 = 64 * 1024;
const USER: Caller = Caller {
    uid: 1000,
    gid: 100,
    umask: 0,
};

fn mount_image(image: Vec<u8>) -> (Arc<FaultDevice>, Filesystem) {
    let dev = Arc::new(FaultDevice::new(image));
    let d: Arc<dyn Device> = dev.clone();
    let fs = Filesystem::mount(d, OpenOptions::default()).unwrap();
    (dev, fs)
}

/// The image a power cut leaves (seeded), checked by fsck, then mounted.
fn cut_checked_and_mounted(dev: &FaultDevice, seed: u64) -> (Arc<FaultDevice>, Filesystem) {
    let img = dev.power_cut(&mut PowerCut::new(seed));
    let report = crate::fsck::check(Arc::new(FaultDevice::new(img.clone()))).unwrap();
    assert!(
        report.problems.is_empty(),
        "seed {seed}: {:?}",
        report.problems
    );
    mount_image(img)
}

/// A new filesystem storing records as they are, so that the tests of space and
/// layout can count blocks (`compression.rs` tests the compressed ones).
fn fresh_sized(bytes: usize) -> (Arc<FaultDevice>, Filesystem) {
    let dev = Arc::new(FaultDevice::new(vec![0u8; bytes]));
    let d: Arc<dyn Device> = dev.clone();
    let opts = MkfsOptions {
        compression: gpufs_format::Compression::None,
        ..MkfsOptions::default()
    };
    mkfs(d.clone(), &opts).unwrap();
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

/// Pseudo-random bytes (incompressible, never all zero), seeded.
fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Blocks in use, as df counts them.
fn used(fs: &Filesystem) -> u64 {
    let s = fs.statfs();
    s.blocks - s.bfree
}

/// fsck of what the device holds now finds no problem.
fn fsck_clean(dev: &FaultDevice) {
    let report = crate::fsck::check(Arc::new(FaultDevice::new(dev.volatile_image()))).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
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

/// Runs `action` on a mount of `image` with a power cut before each of its writes in
/// turn; each image a cut leaves is checked by fsck, mounted and handed to `check` with
/// the cut's number. Returns how many cuts there were.
fn each_cut(image: &[u8], action: impl Fn(&Filesystem), check: impl Fn(u64, &Filesystem)) -> u64 {
    let mut cuts = 0;
    for n in 0.. {
        let dev = Arc::new(FaultDevice::new(image.to_vec()));
        dev.arm_cut(n, PowerCut::new(n));
        let d: Arc<dyn Device> = dev.clone();
        if let Ok(fs) = Filesystem::mount(d, OpenOptions::default()) {
            action(&fs);
        }
        let Some(after) = dev.cut_image() else {
            break;
        };
        let report = crate::fsck::check(Arc::new(FaultDevice::new(after.clone()))).unwrap();
        assert!(report.problems.is_empty(), "cut {n}: {:?}", report.problems);
        check(n, &mount_image(after).1);
        cuts += 1;
    }
    cuts
}
