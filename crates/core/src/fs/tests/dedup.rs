//! Inline dedup through the POSIX API: equal records stored once where `dedup` is on,
//! never where it is off, across files, within one write and after a remount (the table
//! is rebuilt from the pointers); freed exactly with the last file; fsck's walk agrees.

use super::*;

const R: usize = 64 << 10;

fn dir_with(fs: &Filesystem, name: &[u8], dedup: &str) -> u64 {
    let d = fs.mkdir(ROOT, name, 0o755, Caller::ROOT).unwrap().ino;
    fs.set_property(d, "dedup", dedup, Caller::ROOT).unwrap();
    d
}

#[test]
fn equal_records_are_stored_once_where_dedup_is_on() {
    let (dev, fs) = fresh();
    let on = dir_with(&fs, b"on", "on");
    let data = random(1, 32 * R);
    let a = create_file(&fs, on, b"a", &data);
    fs.sync().unwrap();
    let after_a = used(&fs);
    let b = create_file(&fs, on, b"b", &data);
    fs.sync().unwrap();
    assert!(used(&fs) <= after_a + 2, "{after_a} -> {}", used(&fs));
    let c = fs.counters().dedup;
    assert_eq!((c.lookups, c.hits), (64, 32), "{c:?}");
    assert_eq!(c.bytes_saved, data.len() as u64);
    same(read_all(&fs, b), &data);
    fsck_clean(&dev);

    // After a remount the table is rebuilt from the pointers: a third copy is free too.
    let (dev, fs) = close_and_remount(&dev, fs);
    let on = fs.lookup(ROOT, b"on").unwrap().ino;
    let before = used(&fs);
    let c3 = create_file(&fs, on, b"c", &data);
    fs.sync().unwrap();
    assert!(used(&fs) <= before + 2);
    assert_eq!(fs.counters().dedup.hits, 32);
    // The last reference frees them, not before.
    fs.unlink(on, b"a").unwrap();
    fs.unlink(on, b"b").unwrap();
    fs.sync().unwrap();
    same(read_all(&fs, c3), &data);
    fsck_clean(&dev);
    fs.unlink(on, b"c").unwrap();
    fs.sync().unwrap();
    assert!(
        used(&fs) + 32 * 16 <= before + 2,
        "{} vs {before}",
        used(&fs)
    );
    fsck_clean(&dev);
    let _ = (a, b);
}

#[test]
fn repeats_within_one_write_share_and_dedup_off_stores_everything() {
    let (dev, fs) = fresh();
    let on = dir_with(&fs, b"on", "on");
    let off = dir_with(&fs, b"off", "off");
    let one = random(2, R);
    let data: Vec<u8> = one.iter().copied().cycle().take(16 * R).collect();
    let before = used(&fs);
    create_file(&fs, on, b"rep", &data);
    fs.sync().unwrap();
    let grown = used(&fs) - before;
    assert!(grown <= 16 + 3, "16 equal records took {grown} blocks");
    let before = used(&fs);
    let f = create_file(&fs, off, b"rep", &data);
    fs.sync().unwrap();
    assert!(
        used(&fs) - before >= 16 * 16,
        "dedup off must store every record"
    );
    assert_eq!(fs.counters().dedup.hits, 15);
    same(read_all(&fs, f), &data);
    // A file changed after sharing changes alone.
    let rep = fs.lookup(on, b"rep").unwrap().ino;
    fs.write(rep, 3 * R as u64, b"changed").unwrap();
    let mut changed = data.clone();
    changed[3 * R..3 * R + 7].copy_from_slice(b"changed");
    same(read_all(&fs, rep), &changed);
    fsck_clean(&dev);
    let props = fs.properties(on, Some("dedup")).unwrap();
    assert_eq!((props[0].value.as_str(), props[0].source), ("on", "local"));
    assert!(fs.set_property(on, "dedup", "maybe", Caller::ROOT).is_err());
}

/// Power cuts around deduplicated writes: what was fsync'd reads back whole, and fsck's
/// walk confirms the counts, at every cut.
#[test]
fn power_cuts_around_deduplicated_writes_lose_nothing_fsyncd() {
    let (dev, fs) = fresh();
    let on = dir_with(&fs, b"on", "on");
    let data = random(7, 8 * R);
    let a = create_file(&fs, on, b"a", &data);
    fs.fsync(a).unwrap();
    let b = create_file(&fs, on, b"b", &data);
    fs.fsync(b).unwrap();
    assert_eq!(fs.counters().dedup.hits, 8);
    fs.unlink(on, b"a").unwrap();
    let c = create_file(&fs, on, b"c", &data[..4 * R]);
    let _ = c;
    for seed in 0..40 {
        let (_d, fs) = cut_checked_and_mounted(&dev, seed);
        let on = fs.lookup(ROOT, b"on").unwrap().ino;
        let b = fs.lookup(on, b"b").unwrap().ino;
        same(read_all(&fs, b), &data);
    }
}

/// Offline dedup on files written without it: duplicates across files and within one
/// are shared (what changed meanwhile is not), space comes back, every byte reads back,
/// and fsck's walk agrees.
#[test]
fn offline_dedup_shares_equal_records_of_any_file() {
    let (dev, fs) = fresh();
    let dir = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    let data = random(3, 20 * R);
    let mut half = random(4, 10 * R);
    half.extend_from_slice(&data[..10 * R]);
    let a = create_file(&fs, dir, b"a", &data);
    let b = create_file(&fs, dir, b"b", &data);
    let c = create_file(&fs, dir, b"c", &half);
    let other = create_file(&fs, ROOT, b"outside", &data);
    fs.sync().unwrap();
    let before = used(&fs);
    let mut calls = 0;
    let report = fs
        .dedup(&[dir], &mut |_| {
            calls += 1;
            true
        })
        .unwrap();
    assert_eq!(report.files, 3);
    assert_eq!(report.records, 60);
    assert_eq!(report.changed, 0);
    // b's 20 records share a's, and c's second half shares them too.
    assert_eq!(report.shared, 30, "{report:?}");
    let reclaimed = before - used(&fs);
    assert!(reclaimed >= 30 * 16, "{reclaimed} blocks back");
    assert_eq!(report.bytes_reclaimed, reclaimed * BLOCK_SIZE as u64);
    assert!(calls >= 2);
    for (ino, want) in [(a, &data), (b, &data), (c, &half), (other, &data)] {
        same(read_all(&fs, ino), want);
    }
    fsck_clean(&dev);
    // Run again: nothing left to share.
    let again = fs.dedup(&[ROOT], &mut |_| true).unwrap();
    assert_eq!(again.shared, 20, "only the file outside is left: {again:?}");
    let (dev, fs) = close_and_remount(&dev, fs);
    fsck_clean(&dev);
    let d = fs.lookup(ROOT, b"d").unwrap().ino;
    let c = fs.lookup(d, b"c").unwrap().ino;
    same(read_all(&fs, c), &half);
}

/// A `copies 2` directory never shares a record stored once: its own write stores two
/// copies; a later single-copy write may share the two-copy record.
#[test]
fn dedup_never_lowers_the_copies_a_directory_asks_for() {
    let (dev, fs) = fresh();
    let one = dir_with(&fs, b"one", "on");
    let two = dir_with(&fs, b"two", "on");
    fs.set_property(two, "copies", "2", Caller::ROOT).unwrap();
    let data = random(11, 4 * R);
    create_file(&fs, one, b"a", &data);
    fs.sync().unwrap();
    let before = used(&fs);
    let b = create_file(&fs, two, b"b", &data);
    fs.sync().unwrap();
    assert!(used(&fs) - before >= 2 * 4 * 16, "two copies stored");
    let g = fs.lock();
    assert!(g
        .vol
        .records(crate::units::Ino::new(b as u32))
        .iter()
        .all(|(_, p)| p.runs().count() == 2));
    drop(g);
    let c = create_file(&fs, one, b"c", &data);
    fs.sync().unwrap();
    assert_eq!(fs.counters().dedup.hits, 4);
    same(read_all(&fs, c), &data);
    fsck_clean(&dev);
}
