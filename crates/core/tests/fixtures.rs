//! Images written by older builds keep opening: the format version 1 fixtures (made by
//! the last version 1 build: `gpufs mkfs --size 8M --record-size 16K`, a few files, a
//! clean unmount; the second also a journal transaction a killed daemon left) and the
//! version 2 fixtures (made the same way by the last version 2 build, with lz4 and a
//! `copies 2` directory) and the version 3 fixtures (the same by the last version 3
//! build, plus a `cp` of a file, which shares its records) and the version 4 fixtures
//! (the same by the last version 4 build, whose checkpoints are one blob) and the version
//! 5 fixtures (the same by the last version 5 build, paged checkpoints, with a snapshot
//! `s1` taken before a last file `after.txt`) mount, read back every file,
//! upgrade to the current version by their first write, and stay readable after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use gpufs_core::device::{Device, FaultDevice};
use gpufs_core::fs::Change;
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
    check_contents(fs, 1);
}

/// What the build of format `version` wrote into both of its fixtures.
fn check_contents(fs: &Filesystem, version: u32) {
    assert_eq!(
        read(fs, "docs/readme.txt"),
        format!("gpufs version {version} fixture\n")
            .as_bytes()
            .repeat(300)
    );
    if version >= 2 {
        assert_eq!(
            read(fs, "two/copied.txt"),
            b"two copies of this line\n".repeat(2000)
        );
        let copies = fs.properties(ino(fs, "two"), Some("copies")).unwrap();
        assert_eq!(copies[0].value, "2");
    }
    if version >= 3 {
        assert_eq!(
            read(fs, "docs/cloned.txt"),
            b"two copies of this line\n".repeat(2000)
        );
    }
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
    assert_eq!(x, format!("v{version} xattr").as_bytes());
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
    let text = b"written by a newer build; compressible compressible compressible\n".repeat(4000);
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
    // Recovery checkpointed: the image is of the current version now.
    assert_eq!(version_of(&dev.volatile_image()), FORMAT_VERSION);
}

#[test]
fn a_clean_version_2_image_mounts_reads_and_upgrades_on_its_first_write() {
    let text = b"written by a version 3 build\n".repeat(4000);
    let (dev, fs) = upgrade_by_a_write("v2-clean.img.zst", 2, &text);
    // A version 3 image may share records: the clone makes one.
    let f = fs.lookup(ROOT, b"new.txt").unwrap().ino;
    let g = fs
        .create(ROOT, b"clone.txt", 0o644, Caller::ROOT)
        .unwrap()
        .ino;
    fs.copy_file_range(f, 0, g, 0, u64::MAX).unwrap();
    fs.sync().unwrap();
    let fs = remounted_after_a_clean_close(&dev, fs);
    check_contents(&fs, 2);
    assert_eq!(read(&fs, "new.txt"), text);
    assert_eq!(read(&fs, "clone.txt"), text);
    assert_eq!(fs.properties(ROOT, None).unwrap()[0].value, "lz4");
}

/// The dirty fixture of format `version` (a killed daemon left a journal transaction)
/// replays it, holds everything, and is upgraded by the recovery's checkpoint.
fn replays_the_journal_of(name: &str, version: u32) {
    let image = fixture(name);
    assert_eq!(version_of(&image), version);
    let (dev, fs) = mount(image, false);
    assert!(
        fs.notes().iter().any(|n| n.contains("replayed")),
        "{:?}",
        fs.notes()
    );
    check_contents(&fs, version);
    assert_eq!(
        read(&fs, "journaled.txt"),
        b"written after the last checkpoint\n"
    );
    assert_eq!(version_of(&dev.volatile_image()), FORMAT_VERSION);
}

#[test]
fn a_version_2_image_left_by_a_killed_daemon_replays_its_journal() {
    replays_the_journal_of("v2-dirty.img.zst", 2);
}

/// Closes `fs`, checks the image (fsck clean, shared records counted: both fixtures
/// hold a clone by then) and mounts it again.
fn remounted_after_a_clean_close(dev: &FaultDevice, fs: Filesystem) -> Filesystem {
    fs.close().unwrap();
    drop(fs);
    let upgraded = dev.volatile_image();
    let report = fsck::check(Arc::new(FaultDevice::new(upgraded.clone()))).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.stats.shared_references > 0);
    mount(upgraded, false).1
}

/// The clean fixture of format `version`: fsck clean, read-only mounts leave it
/// byte-identical, a write upgrades it to this version; returns the mounted image
/// after that write, with a new file `new.txt` holding `text`.
fn upgrade_by_a_write(name: &str, version: u32, text: &[u8]) -> (Arc<FaultDevice>, Filesystem) {
    let image = fixture(name);
    assert_eq!(version_of(&image), version);
    let report = fsck::check(Arc::new(FaultDevice::new(image.clone()))).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let (dev, fs) = mount(image.clone(), true);
    check_contents(&fs, version);
    drop(fs);
    assert_eq!(dev.volatile_image(), image);
    let (dev, fs) = mount(image, false);
    let f = fs
        .create(ROOT, b"new.txt", 0o644, Caller::ROOT)
        .unwrap()
        .ino;
    fs.write(f, 0, text).unwrap();
    fs.sync().unwrap();
    assert_eq!(version_of(&dev.volatile_image()), FORMAT_VERSION);
    (dev, fs)
}

#[test]
fn a_clean_version_3_image_mounts_reads_and_upgrades_on_its_first_write() {
    let text = b"written by a version 4 build\n".repeat(4000);
    let (dev, fs) = upgrade_by_a_write("v3-clean.img.zst", 3, &text);
    let fs = remounted_after_a_clean_close(&dev, fs);
    check_contents(&fs, 3);
    assert_eq!(read(&fs, "new.txt"), text);
}

#[test]
fn a_version_3_image_left_by_a_killed_daemon_replays_its_journal() {
    replays_the_journal_of("v3-dirty.img.zst", 3);
}

#[test]
fn a_clean_version_4_image_mounts_reads_and_upgrades_on_its_first_write() {
    let text = b"written by a version 5 build\n".repeat(4000);
    let (dev, fs) = upgrade_by_a_write("v4-clean.img.zst", 4, &text);
    let fs = remounted_after_a_clean_close(&dev, fs);
    check_contents(&fs, 4);
    assert_eq!(read(&fs, "new.txt"), text);
}

#[test]
fn a_version_4_image_left_by_a_killed_daemon_replays_its_journal() {
    replays_the_journal_of("v4-dirty.img.zst", 4);
}

/// The snapshot `s1` of a version 5 or later fixture: taken before `after.txt`, it holds
/// the fixture's files as they were.
fn check_snapshot(fs: &Filesystem, version: u32) {
    let names = fs.snapshot_names();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(names[0].1, b"s1");
    let view = fs.snapshot_view(names[0].0).unwrap();
    assert!(view.lookup(ROOT, b"after.txt").is_err());
    let docs = view.lookup(ROOT, b"docs").unwrap().ino;
    let readme = view.lookup(docs, b"readme.txt").unwrap().ino;
    assert_eq!(
        fs.snapshot_read(&view, readme, 0, 1 << 20).unwrap(),
        format!("gpufs version {version} fixture\n")
            .as_bytes()
            .repeat(300)
    );
    assert_eq!(read(fs, "after.txt"), b"after the snapshot\n");
    // Diff compares every segment where a side has no segment identities (a blob older
    // than version 7).
    let changes = fs.diff(b"s1", None).unwrap();
    assert!(
        changes.contains(&Change::Created(b"/after.txt".to_vec())),
        "{changes:?}"
    );
}

/// The clean fixture of `version` (5 or later, holding the snapshot `s1`): upgraded by a
/// write, closed, checked and mounted again, with its files and snapshot as they were.
fn a_clean_image_with_a_snapshot_upgrades(version: u32) {
    let text = format!("written by a version {} build\n", version + 1).repeat(4000);
    let name = format!("v{version}-clean.img.zst");
    let (dev, fs) = upgrade_by_a_write(&name, version, text.as_bytes());
    check_snapshot(&fs, version);
    let fs = remounted_after_a_clean_close(&dev, fs);
    check_contents(&fs, version);
    check_snapshot(&fs, version);
    assert_eq!(read(&fs, "new.txt"), text.as_bytes());
}

#[test]
fn a_clean_version_5_image_mounts_reads_and_upgrades_on_its_first_write() {
    a_clean_image_with_a_snapshot_upgrades(5);
}

#[test]
fn a_version_5_image_left_by_a_killed_daemon_replays_its_journal() {
    replays_the_journal_of("v5-dirty.img.zst", 5);
}

#[test]
fn a_clean_version_6_image_mounts_reads_and_upgrades_on_its_first_write() {
    a_clean_image_with_a_snapshot_upgrades(6);
}

#[test]
fn a_version_6_image_left_by_a_killed_daemon_replays_its_journal() {
    replays_the_journal_of("v6-dirty.img.zst", 6);
}

#[test]
fn a_clean_version_7_image_mounts_reads_and_upgrades_on_its_first_write() {
    a_clean_image_with_a_snapshot_upgrades(7);
}

#[test]
fn a_version_7_image_left_by_a_killed_daemon_replays_its_journal() {
    replays_the_journal_of("v7-dirty.img.zst", 7);
}
