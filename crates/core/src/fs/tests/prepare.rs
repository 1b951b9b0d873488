//! Records prepared off the lock: what the preparer made is placed as it is when the
//! record still holds those bytes under the same policy, and prepared again otherwise;
//! either way the bytes read back, survive a power cut, and fsck is clean.

use gpufs_format::Compression;

use super::compression::{fresh_with, text};
use super::*;

#[test]
fn prepared_records_are_placed_as_prepared_and_changed_ones_again() {
    let (dev, fs) = fresh_with(Compression::Lz4);
    let ino = fs.create(ROOT, b"f", 0o644, Caller::ROOT).unwrap().ino;
    let mut model = text(1, 8 * R as usize + 100);
    fs.write(ino, 0, &model).unwrap();
    // Eight whole records are prepared; the short ninth is left to its flush.
    assert_eq!(fs.prepare_dirty(), 8);
    assert_eq!(fs.prepare_dirty(), 0, "nothing is prepared twice");
    assert_eq!(
        fs.counters().records.lz4.records,
        0,
        "preparing places nothing"
    );
    // A write to a prepared record voids its preparing; reads see the new bytes.
    let patch = text(2, 4096);
    fs.write(ino, 2 * R + 512, &patch).unwrap();
    model[2 * R as usize + 512..2 * R as usize + 512 + 4096].copy_from_slice(&patch);
    same(read_all(&fs, ino), &model);
    fs.fsync(ino).unwrap();
    let c = fs.counters().records;
    // The 100-byte tail saves no block: stored raw.
    assert_eq!((c.lz4.records, c.raw.records), (8, 1), "{c:?}");
    same(read_all(&fs, ino), &model);
    let (dev2, fs2) = cut_checked_and_mounted(&dev, 1);
    let ino2 = fs2.lookup(ROOT, b"f").unwrap().ino;
    same(read_all(&fs2, ino2), &model);
    drop(fs2);
    fsck_clean(&dev2);
}

#[test]
fn a_policy_changed_after_preparing_is_the_one_records_are_stored_with() {
    let (dev, fs) = fresh_with(Compression::Lz4);
    let ino = fs.create(ROOT, b"f", 0o644, Caller::ROOT).unwrap().ino;
    let model = text(3, 4 * R as usize);
    fs.write(ino, 0, &model).unwrap();
    assert_eq!(fs.prepare_dirty(), 4);
    fs.set_property(ino, "compression", "none", Caller::ROOT)
        .unwrap();
    fs.fsync(ino).unwrap();
    let c = fs.counters().records;
    assert_eq!((c.lz4.records, c.raw.records), (0, 4), "{c:?}");
    let (dev2, fs2) = cut_checked_and_mounted(&dev, 2);
    let ino2 = fs2.lookup(ROOT, b"f").unwrap().ino;
    same(read_all(&fs2, ino2), &model);
    drop(fs2);
    fsck_clean(&dev2);
}

#[test]
fn records_flushed_while_being_prepared_are_not_kept_prepared() {
    let (_dev, fs) = fresh_with(Compression::Lz4);
    let ino = fs.create(ROOT, b"f", 0o644, Caller::ROOT).unwrap().ino;
    let model = text(4, 2 * R as usize);
    fs.write(ino, 0, &model).unwrap();
    // Taken, then flushed and written again before the round hands its work back.
    let work = fs.lock().vol.take_prepare_work().unwrap();
    assert_eq!(work.len(), 2);
    fs.fsync(ino).unwrap();
    let again = text(5, 2 * R as usize);
    fs.write(ino, 0, &again).unwrap();
    let done = work.run();
    assert_eq!(fs.lock().vol.keep_prepared(done), 0);
    fs.fsync(ino).unwrap();
    same(read_all(&fs, ino), &again);
}
