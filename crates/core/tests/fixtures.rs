//! Images written by older builds keep opening: the format version 1 fixtures (made by
//! the last version 1 build: `gpufs mkfs --size 8M --record-size 16K`, a few files, a
//! clean unmount; the second also a journal transaction a killed daemon left) mount,
//! read back every file, upgrade to the current version by their first write, and stay
//! readable after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use gpufs_core::device::{Device, FaultDevice};
use gpufs_core::{fsck, Caller, Filesystem, OpenOptions};
use gpufs_format::{Superblock, FORMAT_VERSION};

const ROOT: u64 = 1;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let packed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    zstd::decode_all(&packed[..]).unwrap()
}

fn version_of(image: &[u8]) -> u32 {
    let a = Superblock::decode(&image[..4096]).unwrap();
    let b = Superblock::decode(&image[4096..8192]).unwrap();
    assert_eq!(a.version, b.version);
    a.version
}

fn mount(image: Vec<u8>, read_only: bool) -> (Arc<FaultDevice>, Filesystem) {
    let dev = Arc::new(FaultDevice::new(image));
    let d: Arc<dyn Device> = dev.clone();
    let fs = Filesystem::mount(
        d,
        OpenOptions {
            read_only,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    (dev, fs)
}

fn ino(fs: &Filesystem, path: &str) -> u64 {
    path.split('/').fold(ROOT, |dir, name| {
        fs.lookup(dir, name.as_bytes()).unwrap().ino
    })
}

fn read(fs: &Filesystem, path: &str) -> Vec<u8> {
    let i = ino(fs, path);
    fs.read(i, 0, fs.getattr(i).unwrap().size as u32).unwrap()
}

/// What the version 1 build wrote into both fixtures.
fn check_v1_contents(fs: &Filesystem) {
    assert_eq!(
        read(fs, "docs/readme.txt"),
        b"gpufs version 1 fixture\n".repeat(300)
    );
    let bytes: Vec<u8> = (0..50_000u32).map(|i| ((i * 7 + 3) % 251) as u8).collect();
    assert_eq!(read(fs, "docs/deep/bytes.bin"), bytes);
    assert_eq!(
        fs.getattr(ino(fs, "docs/deep/bytes.bin")).unwrap().perm,
        0o640
    );
    let sparse = read(fs, "sparse.bin");
    assert_eq!(sparse.len(), 100_004);
    assert!(sparse[..100_000].iter().all(|b| *b == 0));
    assert_eq!(&sparse[100_000..], b"tail");
    assert_eq!(fs.readlink(ino(fs, "link")).unwrap(), b"docs/readme.txt");
    assert_eq!(ino(fs, "docs/hardlink"), ino(fs, "docs/readme.txt"));
    assert_eq!(fs.getattr(ino(fs, "docs/readme.txt")).unwrap().nlink, 2);
    let x = fs
        .getxattr(ino(fs, "docs/readme.txt"), b"user.note")
        .unwrap();
    assert_eq!(x, b"v1 xattr");
}

#[test]
fn a_clean_version_1_image_mounts_reads_and_upgrades_on_its_first_write() {
    let image = fixture("v1-clean.img.zst");
    assert_eq!(version_of(&image), 1);
    assert!(fsck::check(Arc::new(FaultDevice::new(image.clone())))
        .unwrap()
        .problems
        .is_empty());

    // Read-only: read as it is, nothing written.
    let (dev, fs) = mount(image.clone(), true);
    check_v1_contents(&fs);
    assert!(
        fs.notes().iter().any(|n| n.contains("version 1")),
        "{:?}",
        fs.notes()
    );
    drop(fs);
    assert_eq!(dev.volatile_image(), image);

    // Mounted and unmounted without a change (a read would move an atime): still
    // version 1.
    let (dev, fs) = mount(image.clone(), false);
    assert_eq!(fs.getattr(ino(&fs, "docs/readme.txt")).unwrap().size, 7200);
    fs.close().unwrap();
    drop(fs);
    assert_eq!(version_of(&dev.volatile_image()), 1);

    // A write upgrades it; the old files and the new one read back after a remount.
    let (dev, fs) = mount(image, false);
    let f = fs
        .create(ROOT, b"new.txt", 0o644, Caller::ROOT)
        .unwrap()
        .ino;
    let text =
        b"written by a version 2 build; compressible compressible compressible\n".repeat(4000);
    fs.write(f, 0, &text).unwrap();
    fs.sync().unwrap();
    assert_eq!(version_of(&dev.volatile_image()), FORMAT_VERSION);
    fs.close().unwrap();
    drop(fs);
    let upgraded = dev.volatile_image();
    assert!(fsck::check(Arc::new(FaultDevice::new(upgraded.clone())))
        .unwrap()
        .problems
        .is_empty());
    let (_dev, fs) = mount(upgraded, false);
    check_v1_contents(&fs);
    assert_eq!(read(&fs, "new.txt"), text);
    // A version 1 image has no default compression: its files stay uncompressed.
    assert_eq!(fs.properties(ROOT, None).unwrap()[0].value, "none");
}

#[test]
fn a_version_1_image_left_by_a_killed_daemon_replays_its_journal() {
    let image = fixture("v1-dirty.img.zst");
    assert_eq!(version_of(&image), 1);
    let (dev, fs) = mount(image, false);
    assert!(
        fs.notes().iter().any(|n| n.contains("replayed")),
        "{:?}",
        fs.notes()
    );
    check_v1_contents(&fs);
    assert_eq!(
        read(&fs, "journaled.txt"),
        b"written after the last checkpoint\n"
    );
    assert!(fs.lookup(ROOT, b"empty").is_err());
    // Recovery checkpointed: the image is version 2 now.
    assert_eq!(version_of(&dev.volatile_image()), FORMAT_VERSION);
}
