//! Snapshots: a snapshot keeps what the filesystem held when it was taken; the space
//! it holds is exactly what the live filesystem dropped since and no other snapshot
//! holds, and deleting every snapshot returns it all; everything survives a remount
//! and fsck agrees with a full walk at every step.

use super::*;

const MIB: usize = 1 << 20;

fn snap(fs: &Filesystem, name: &str) {
    fs.create_snapshot(name.as_bytes()).unwrap();
}

fn names(fs: &Filesystem) -> Vec<String> {
    fs.snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// A file `name` of 1 MiB (`random(1, ..)`), snapshot `snapshot`, then the file
/// overwritten whole (`random(2, ..)`): the snapshot alone holds the first bytes.
fn overwritten_after_a_snapshot(fs: &Filesystem, name: &[u8], snapshot: &str) -> u64 {
    let ino = create_file(fs, ROOT, name, &random(1, MIB));
    snap(fs, snapshot);
    fs.write(ino, 0, &random(2, MIB)).unwrap();
    ino
}

#[test]
fn overwritten_and_deleted_data_stays_until_its_last_snapshot_goes() {
    let (dev, fs) = fresh();
    let a = create_file(&fs, ROOT, b"a", &random(1, 2 * MIB));
    let b = create_file(&fs, ROOT, b"b", &random(2, MIB));
    fs.sync().unwrap();
    let base = used(&fs);
    snap(&fs, "one");
    // Overwritten and unlinked after the snapshot: the old records stay, held for it.
    fs.write(a, 0, &random(3, 2 * MIB)).unwrap();
    fs.unlink(ROOT, b"b").unwrap();
    let _ = b;
    fs.sync().unwrap();
    let grown = used(&fs) - base;
    let two_mib = (2 * MIB / BLOCK_SIZE) as u64;
    assert!(
        grown >= two_mib && grown <= two_mib + 64,
        "grew {grown} blocks"
    );
    fsck_clean(&dev);
    snap(&fs, "two");
    assert_eq!(names(&fs), ["one", "two"]);
    let list = fs.snapshots().unwrap();
    // "one" alone holds the old a and b: 3 MiB; "two" holds nothing only it has.
    let three_mib = 3 * MIB as u64;
    assert!(
        list[0].unique_bytes >= three_mib && list[0].unique_bytes < three_mib + (1 << 18),
        "{list:?}"
    );
    assert_eq!(list[1].unique_bytes, 0, "{list:?}");

    // Survives a remount.
    let (dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(names(&fs), ["one", "two"]);
    fsck_clean(&dev);

    // Deleting "one" frees what only it held; "two" keeps the new a.
    fs.delete_snapshot(b"one").unwrap();
    fsck_clean(&dev);
    let after_one = used(&fs);
    assert!(after_one <= base + 64, "{after_one} used, {base} before");
    let a = fs.lookup(ROOT, b"a").unwrap().ino;
    fs.unlink(ROOT, b"a").unwrap();
    fs.sync().unwrap();
    // The new a is held for "two".
    assert!(used(&fs) + 32 >= after_one, "{} < {after_one}", used(&fs));
    let _ = a;
    fs.delete_snapshot(b"two").unwrap();
    fsck_clean(&dev);
    assert!(names(&fs).is_empty());
    let (dev, fs) = close_and_remount(&dev, fs);
    fsck_clean(&dev);
    // Nothing left: only metadata.
    assert!(
        used(&fs) < base - two_mib,
        "{} used, {base} with the files",
        used(&fs)
    );
}

#[test]
fn deleting_every_snapshot_returns_the_space_exactly() {
    let (dev, fs) = fresh();
    let f = create_file(&fs, ROOT, b"f", &random(7, MIB));
    // The same work without snapshots, on a second filesystem, for the exact figure.
    let (_dev2, plain) = fresh();
    let g = create_file(&plain, ROOT, b"f", &random(7, MIB));
    for round in 0..4u64 {
        snap(&fs, &format!("s{round}"));
        for (fs, ino) in [(&fs, f), (&plain, g)] {
            fs.write(ino, round * 100_000, &random(round + 10, 300_000))
                .unwrap();
            create_file(
                fs,
                ROOT,
                format!("n{round}").as_bytes(),
                &random(round + 20, 50_000),
            );
            fs.sync().unwrap();
        }
    }
    assert!(used(&fs) > used(&plain) + 100);
    fsck_clean(&dev);
    for round in [2u64, 0, 3, 1] {
        fs.delete_snapshot(format!("s{round}").as_bytes()).unwrap();
        fsck_clean(&dev);
    }
    let (dev, fs) = close_and_remount(&dev, fs);
    let (_d, plain) = close_and_remount(&_dev2, plain);
    fsck_clean(&dev);
    // Metadata may differ by the checkpoints' page rounding; data not at all.
    let (a, b) = (used(&fs), used(&plain));
    assert!(
        a.abs_diff(b) <= 8,
        "{a} blocks used after deleting every snapshot, {b} without"
    );
}

#[test]
fn bad_names_and_missing_snapshots_are_refused_and_change_nothing() {
    let (dev, fs) = fresh();
    snap(&fs, "keep");
    let before = dev.volatile_image();
    assert_err!(fs.create_snapshot(b"keep"), FsError::Exists);
    assert_err!(fs.create_snapshot(b"a/b"), FsError::BadQuery(_));
    assert_err!(fs.create_snapshot(b".."), FsError::BadQuery(_));
    assert_err!(fs.create_snapshot(b""), FsError::BadQuery(_));
    assert_err!(fs.create_snapshot(&[b'x'; 256]), FsError::NameTooLong);
    assert_err!(fs.delete_snapshot(b"missing"), FsError::NotFound);
    assert!(
        dev.volatile_image() == before,
        "a refused call wrote to the image"
    );
    assert_eq!(names(&fs), ["keep"]);
}

#[test]
fn power_cuts_during_create_and_delete_leave_one_state_or_the_other() {
    let (dev, fs) = fresh();
    overwritten_after_a_snapshot(&fs, b"f", "old");
    fs.close().unwrap();
    drop(fs);
    let image = dev.volatile_image();
    let action = |fs: &Filesystem| {
        let _ = fs
            .create_snapshot(b"new")
            .and_then(|_| fs.delete_snapshot(b"old"))
            .and_then(|_| fs.close());
    };
    let cuts = each_cut(&image, action, |n, fs| {
        let now = names(fs);
        assert!(
            [vec!["old"], vec!["old", "new"], vec!["new"]]
                .contains(&now.iter().map(String::as_str).collect()),
            "cut {n}: {now:?}"
        );
        same(
            read_all(fs, fs.lookup(ROOT, b"f").unwrap().ino),
            random(2, MIB),
        );
        for name in now {
            fs.delete_snapshot(name.as_bytes()).unwrap();
        }
        fs.close().unwrap();
    });
    assert!(cuts >= 10, "only {cuts} cut points");
}

/// Reads a whole file of a snapshot view.
fn view_read(fs: &Filesystem, v: &SnapshotView, ino: u64) -> Vec<u8> {
    let size = v.getattr(ino).unwrap().size;
    fs.snapshot_read(v, ino, 0, size as u32).unwrap()
}

#[test]
fn a_snapshot_reads_as_it_was_whatever_happens_after() {
    let (dev, fs) = fresh();
    let dir = fs.mkdir(ROOT, b"dir", 0o750, Caller::ROOT).unwrap().ino;
    let a = create_file(&fs, dir, b"a", &random(1, 300_000));
    create_file(&fs, ROOT, b"small", b"hello");
    fs.symlink(ROOT, b"link", b"dir/a", Caller::ROOT).unwrap();
    fs.setxattr(a, b"user.k", b"v1", 0).unwrap();
    snap(&fs, "then");
    fs.write(a, 1000, &random(2, 100_000)).unwrap();
    fs.setxattr(a, b"user.k", b"v2", 0).unwrap();
    fs.unlink(ROOT, b"small").unwrap();
    fs.rename(ROOT, b"link", ROOT, b"moved", RenameMode::Replace)
        .unwrap();
    create_file(&fs, dir, b"new", b"new");
    let (dev, fs) = close_and_remount(&dev, fs);
    let (id, name) = fs.snapshot_names()[0].clone();
    assert_eq!(name, b"then");
    let v = fs.snapshot_view(id).unwrap();
    let d = v.lookup(ROOT, b"dir").unwrap();
    assert_eq!((d.kind, d.perm), (FileKind::Directory, 0o750));
    let va = v.lookup(d.ino, b"a").unwrap().ino;
    same(view_read(&fs, &v, va), random(1, 300_000));
    assert_eq!(v.getxattr(va, b"user.k").unwrap(), b"v1");
    assert_eq!(v.listxattr(va).unwrap(), b"user.k\0");
    let small = v.lookup(ROOT, b"small").unwrap().ino;
    assert_eq!(view_read(&fs, &v, small), b"hello");
    assert_eq!(
        v.readlink(v.lookup(ROOT, b"link").unwrap().ino).unwrap(),
        b"dir/a"
    );
    assert_err!(v.lookup(ROOT, b"moved"), FsError::NotFound);
    assert_err!(v.lookup(d.ino, b"new"), FsError::NotFound);
    let mut names = Vec::new();
    v.readdir(d.ino, 0, |e| {
        names.push(e.name.to_vec());
        false
    })
    .unwrap();
    assert_eq!(names, [&b"."[..], b"..", b"a"]);
    // The live filesystem has the changes.
    let live_a = fs
        .lookup(fs.lookup(ROOT, b"dir").unwrap().ino, b"a")
        .unwrap()
        .ino;
    assert_eq!(fs.getxattr(live_a, b"user.k").unwrap(), b"v2");
    // A deleted snapshot cannot be viewed.
    fs.delete_snapshot(b"then").unwrap();
    assert_err!(fs.snapshot_view(id), FsError::NotFound);
    fsck_clean(&dev);
}

#[test]
fn rollback_brings_the_files_back_and_keeps_every_snapshot() {
    let (dev, fs) = fresh();
    overwritten_after_a_snapshot(&fs, b"a", "first");
    create_file(&fs, ROOT, b"later", &random(3, MIB / 2));
    fs.sync().unwrap();
    snap(&fs, "second");
    fs.unlink(ROOT, b"a").unwrap();
    create_file(&fs, ROOT, b"latest", &random(4, MIB / 4));
    fs.sync().unwrap();
    let used_then = used(&fs);

    // An open file refuses the rollback.
    let latest = fs.lookup(ROOT, b"latest").unwrap().ino;
    fs.open(latest, false).unwrap();
    assert_err!(fs.rollback_snapshot(b"first"), FsError::Busy(_));
    fs.release(latest).unwrap();
    assert_err!(fs.rollback_snapshot(b"none"), FsError::NotFound);

    fs.rollback_snapshot(b"first").unwrap();
    fsck_clean(&dev);
    let a = fs.lookup(ROOT, b"a").unwrap().ino;
    same(read_all(&fs, a), random(1, MIB));
    assert_err!(fs.lookup(ROOT, b"later"), FsError::NotFound);
    assert_err!(fs.lookup(ROOT, b"latest"), FsError::NotFound);
    assert_eq!(names(&fs), ["first", "second"]);
    // "latest" was in no snapshot: its space is back (give or take the checkpoint's own
    // blocks: per copy a root, a page table, a head page and a namespace page or two).
    assert!(used(&fs) + (MIB / 4 / BLOCK_SIZE) as u64 <= used_then + 12);

    // The newer snapshot survives and can be rolled back to as well.
    let (dev, fs) = close_and_remount(&dev, fs);
    fs.rollback_snapshot(b"second").unwrap();
    same(
        read_all(&fs, fs.lookup(ROOT, b"a").unwrap().ino),
        random(2, MIB),
    );
    same(
        read_all(&fs, fs.lookup(ROOT, b"later").unwrap().ino),
        random(3, MIB / 2),
    );
    fsck_clean(&dev);
    // Everything deleted: all space returns.
    fs.delete_snapshot(b"first").unwrap();
    fs.delete_snapshot(b"second").unwrap();
    fs.unlink(ROOT, b"a").unwrap();
    fs.unlink(ROOT, b"later").unwrap();
    let (dev, fs) = close_and_remount(&dev, fs);
    fsck_clean(&dev);
    let (_d, empty) = fresh();
    let (a, b) = (used(&fs), used(&empty));
    assert!(
        a <= b + 8,
        "{a} blocks used once everything is deleted, {b} when new"
    );
}

#[test]
fn a_power_cut_during_a_rollback_leaves_it_done_or_not() {
    let (dev, fs) = fresh();
    overwritten_after_a_snapshot(&fs, b"a", "s");
    fs.close().unwrap();
    drop(fs);
    let image = dev.volatile_image();
    let action = |fs: &Filesystem| {
        let _ = fs.rollback_snapshot(b"s").and_then(|_| fs.close());
    };
    let cuts = each_cut(&image, action, |n, fs| {
        let got = read_all(fs, fs.lookup(ROOT, b"a").unwrap().ino);
        assert!(
            got == random(1, MIB) || got == random(2, MIB),
            "cut {n}: wrong bytes"
        );
        assert_eq!(names(fs), ["s"]);
    });
    assert!(cuts >= 5, "only {cuts} cut points");
}

#[test]
fn diff_names_what_was_created_deleted_modified_and_renamed() {
    use crate::fs::Change;
    let (_dev, fs) = fresh();
    let dir = fs.mkdir(ROOT, b"dir", 0o755, Caller::ROOT).unwrap().ino;
    let a = create_file(&fs, dir, b"a", b"one");
    create_file(&fs, dir, b"b", b"two");
    create_file(&fs, ROOT, b"c", b"three");
    create_file(&fs, ROOT, b"same", b"untouched");
    snap(&fs, "old");
    fs.write(a, 0, b"ONE").unwrap();
    fs.rename(dir, b"b", ROOT, b"b2", RenameMode::Replace)
        .unwrap();
    fs.unlink(ROOT, b"c").unwrap();
    create_file(&fs, dir, b"new", b"four");
    snap(&fs, "new");
    let p = |s: &str| s.as_bytes().to_vec();
    let changes = fs.diff(b"old", Some(b"new")).unwrap();
    for want in [
        Change::Modified(p("/dir/a")),
        Change::Renamed {
            from: p("/dir/b"),
            to: p("/b2"),
        },
        Change::Deleted(p("/c")),
        Change::Created(p("/dir/new")),
    ] {
        assert!(changes.contains(&want), "{want:?} not in {changes:?}");
    }
    let untouched = |c: &Change| matches!(c, Change::Modified(x) | Change::Created(x) | Change::Deleted(x) if x == b"/same");
    assert!(!changes.iter().any(untouched), "{changes:?}");
    // Against the live filesystem: only what changed since "new".
    fs.unlink(dir, b"new").unwrap();
    let live = fs.diff(b"new", None).unwrap();
    assert!(live.contains(&Change::Deleted(p("/dir/new"))), "{live:?}");
    assert!(
        !live.iter().any(|c| matches!(c, Change::Renamed { .. })),
        "{live:?}"
    );
    assert_err!(fs.diff(b"missing", None), FsError::NotFound);
    // A directory renamed is one change: its files did not move within it.
    snap(&fs, "later");
    fs.rename(ROOT, b"dir", ROOT, b"dir2", RenameMode::Replace)
        .unwrap();
    let live = fs.diff(b"later", None).unwrap();
    assert!(
        live.contains(&Change::Renamed {
            from: p("/dir"),
            to: p("/dir2"),
        }),
        "{live:?}"
    );
    assert!(
        !live.iter().any(|c| format!("{c:?}").contains("dir2/a")),
        "{live:?}"
    );
}

#[test]
fn a_snapshot_whose_checkpoint_is_lost_does_not_stop_the_mount_and_can_be_deleted() {
    let (dev, fs) = fresh();
    let a = overwritten_after_a_snapshot(&fs, b"a", "lost");
    snap(&fs, "kept");
    let roots = fs.lock().vol.snapshot(b"lost").unwrap().roots;
    fs.close().unwrap();
    drop(fs);
    // Both roots of its checkpoint damaged: a double fault.
    let mut image = dev.volatile_image();
    for r in roots {
        image[r as usize * BLOCK_SIZE + 40] ^= 0x5A;
    }
    let report = crate::fsck::check(Arc::new(FaultDevice::new(image.clone()))).unwrap();
    assert!(
        report.problems.iter().any(|p| p.contains("\"lost\"")),
        "{:?}",
        report.problems
    );
    let (dev, fs) = mount_image(image);
    assert!(
        fs.notes().iter().any(|n| n.contains("\"lost\"")),
        "{:?}",
        fs.notes()
    );
    same(read_all(&fs, a), random(2, MIB));
    let list = fs.snapshots().unwrap();
    assert!(list[0].damaged && !list[1].damaged, "{list:?}");
    let held = used(&fs);
    fs.delete_snapshot(b"lost").unwrap();
    assert!(used(&fs) + 200 < held, "{} used, {held} before", used(&fs));
    fs.close().unwrap();
    drop(fs);
    fsck_clean(&dev);
}

#[test]
fn scrub_rewrites_a_damaged_page_of_a_snapshot_from_its_other_copy() {
    let (dev, fs) = fresh();
    let dir = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    for i in 0..3000u32 {
        fs.create(dir, format!("file-{i:06}").as_bytes(), 0o644, Caller::ROOT)
            .unwrap();
    }
    snap(&fs, "s");
    // The live filesystem moves on: the snapshot's pages are its own.
    super::pages::rename_all(&fs, dir, 3000);
    fs.close().unwrap();
    let rec = fs.lock().vol.snapshot(b"s").unwrap();
    drop(fs);
    let mut image = dev.volatile_image();
    let pages = super::pages::pages_of(&image, rec.roots[0]);
    let hit = pages[pages.len() / 2];
    image[hit.block as usize * BLOCK_SIZE + 10] ^= 0x5A;
    let (dev, fs) = mount_image(image);
    let report = fs.scrub(false, &mut |_| true).unwrap();
    assert_eq!(report.metadata.snapshot_pages_repaired, 1, "{report:?}");
    assert!(
        report.found_damage() && !report.unrepaired_damage(),
        "{report:?}"
    );
    let again = fs.scrub(true, &mut |_| true).unwrap();
    assert!(!again.found_damage(), "{again:?}");
    fs.close().unwrap();
    drop(fs);
    fsck_clean(&dev);
}

#[test]
fn scrub_names_a_snapshot_copy_it_cannot_read_and_the_snapshot_still_reads() {
    let (dev, fs) = fresh();
    overwritten_after_a_snapshot(&fs, b"a", "s");
    let rec = fs.lock().vol.snapshot(b"s").unwrap();
    fs.close().unwrap();
    drop(fs);
    // One copy's root damaged: the other copy serves the snapshot.
    let mut image = dev.volatile_image();
    image[rec.roots[0] as usize * BLOCK_SIZE + 40] ^= 0x5A;
    let (_dev, fs) = mount_image(image);
    let view = fs.snapshot_view(rec.id).unwrap();
    let old = view.lookup(ROOT, b"a").unwrap().ino;
    same(
        fs.snapshot_read(&view, old, 0, MIB as u32).unwrap(),
        random(1, MIB),
    );
    let report = fs.scrub(false, &mut |_| true).unwrap();
    let line = format!("checkpoint copy at block {}", rec.roots[0]);
    assert!(
        report.unrepaired_damage()
            && report
                .metadata
                .unrepaired
                .iter()
                .any(|u| u.contains("\"s\"") && u.contains(&line)),
        "{report:?}"
    );
}

#[test]
fn a_snapshot_is_searched_as_it_was_with_the_caller_s_permissions() {
    let (_dev, fs) = fresh();
    let open = fs.mkdir(ROOT, b"open", 0o755, Caller::ROOT).unwrap().ino;
    let closed = fs.mkdir(ROOT, b"closed", 0o700, Caller::ROOT).unwrap().ino;
    create_file(&fs, open, b"plan-a", b"a");
    create_file(&fs, closed, b"plan-b", b"b");
    snap(&fs, "s");
    fs.unlink(open, b"plan-a").unwrap();
    let q = super::search::substring("plan");
    let paths = |r: &crate::fs::SearchResults| -> Vec<Vec<u8>> {
        (0..r.len()).map(|i| r.path(i).to_vec()).collect()
    };
    let root = fs.search_snapshot(b"s", &q, Caller::ROOT, &[]).unwrap();
    assert_eq!(
        paths(&root),
        [b"/open/plan-a".to_vec(), b"/closed/plan-b".to_vec()]
    );
    let user = fs.search_snapshot(b"s", &q, USER, &[]).unwrap();
    assert_eq!(paths(&user), [b"/open/plan-a".to_vec()]);
    assert_err!(
        fs.search_snapshot(b"none", &q, USER, &[]),
        FsError::NotFound
    );
}

#[test]
fn scrub_verifies_and_repairs_the_records_only_snapshots_hold() {
    let (dev, fs) = fresh();
    let safe = fs.mkdir(ROOT, b"safe", 0o755, Caller::ROOT).unwrap().ino;
    fs.set_property(safe, "copies", "2", Caller::ROOT).unwrap();
    let (once_data, twice_data) = (random(1, 2 * R as usize), random(2, 2 * R as usize));
    let once = create_file(&fs, ROOT, b"once", &once_data);
    let twice = create_file(&fs, safe, b"twice", &twice_data);
    fs.sync().unwrap();
    let record = |ino: u64| fs.lock().vol.records(Ino::new(ino as u32))[1].1;
    let (old_once, old_twice) = (record(once), record(twice));
    snap(&fs, "s");
    // Overwritten: the old records are the snapshot's alone.
    fs.write(once, 0, &random(3, 2 * R as usize)).unwrap();
    fs.write(twice, 0, &random(4, 2 * R as usize)).unwrap();
    fs.sync().unwrap();
    let hit = |block: u64| {
        dev.write_at(&[0xA5; 64], block * BLOCK_SIZE as u64 + 100)
            .unwrap()
    };
    hit(old_once.block);
    hit(old_twice.copy_block().unwrap());
    let report = fs.scrub(true, &mut |_| true).unwrap();
    assert!(report.finished);
    assert_eq!(report.progress.records_total, 8, "4 live records, 4 kept");
    assert_eq!((report.damaged_copies, report.repaired_copies), (2, 1));
    assert_eq!(report.unrepaired.len(), 1, "{:?}", report.unrepaired);
    assert_eq!(report.unrepaired[0].path, b"/.gpufs/snapshots/s/once");
    assert_eq!(report.unrepaired[0].ranges, vec![(R, 2 * R)]);
    // The repaired copy is right; only the record without a good copy is left.
    let again = fs.scrub(true, &mut |_| true).unwrap();
    assert_eq!((again.damaged_copies, again.repaired_copies), (1, 0));
    let id = fs.snapshot_names()[0].0;
    let view = fs.snapshot_view(id).unwrap();
    let ino = view.lookup(safe, b"twice").unwrap().ino;
    let cut_copy = {
        let g = fs.lock();
        g.vol
            .verify_record(&old_twice, &mut Vec::new())
            .unwrap()
            .bad
            .len()
    };
    assert_eq!(cut_copy, 0, "both copies good again");
    same(
        fs.snapshot_read(&view, ino, 0, 2 * R as u32).unwrap(),
        &twice_data,
    );
}
