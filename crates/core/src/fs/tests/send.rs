//! Send and receive: a received snapshot is the sent one (same inode numbers, entries,
//! attributes, xattrs and bytes, whatever the two record sizes); an incremental stream
//! carries the change only; a stream that is damaged, cut short, for another filesystem
//! or for a target that changed is refused and the target stays as it was; a power cut
//! during a receive leaves the target as before or with the whole snapshot.

use std::collections::BTreeMap;

use super::*;
use crate::fs::ReceiveError;

const MIB: usize = 1 << 20;

fn fresh_with(record_size: u32) -> (Arc<FaultDevice>, Filesystem) {
    let dev = Arc::new(FaultDevice::new(vec![0u8; 64 << 20]));
    let d: Arc<dyn Device> = dev.clone();
    let opts = MkfsOptions {
        record_size,
        uuid: [record_size as u8 ^ 0x5a; 16],
        ..MkfsOptions::default()
    };
    mkfs(d.clone(), &opts).unwrap();
    let fs = Filesystem::mount(d, OpenOptions::default()).unwrap();
    (dev, fs)
}

fn stream(fs: &Filesystem, name: &str, from: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    fs.send(
        name.as_bytes(),
        from.map(str::as_bytes),
        &mut out,
        &mut |_, _| true,
    )
    .unwrap();
    out
}

fn fingerprint(fs: &Filesystem) -> [u8; 32] {
    fs.lock().vol.namespace().fingerprint()
}

/// Every regular file's bytes, by inode number.
fn contents(fs: &Filesystem) -> BTreeMap<u32, Vec<u8>> {
    let files: Vec<u32> = fs
        .lock()
        .vol
        .namespace()
        .live_inode_iter()
        .filter(|(_, r)| r.kind() == Some(FileKind::Regular))
        .map(|(i, _)| i)
        .collect();
    files
        .into_iter()
        .map(|i| (i, read_all(fs, u64::from(i))))
        .collect()
}

fn snapshot_names(fs: &Filesystem) -> Vec<String> {
    fs.snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// Directories, files of several shapes (records, a partial tail, holes, compressible
/// text, empty), a symlink, a hard link, a FIFO and xattrs.
fn populate(fs: &Filesystem) {
    let dir = fs.mkdir(ROOT, b"dir", 0o755, Caller::ROOT).unwrap().ino;
    let sub = fs.mkdir(dir, b"sub", 0o700, USER).unwrap().ino;
    fs.mkdir(ROOT, b"gone", 0o755, Caller::ROOT).unwrap();
    let big = create_file(fs, dir, b"big", &random(1, 3 * MIB + 5000));
    let small = create_file(fs, ROOT, b"small", b"hello");
    create_file(fs, ROOT, b"empty", b"");
    let sparse = create_file(fs, sub, b"sparse", b"");
    fs.write(sparse, 5 * MIB as u64, &random(2, 1000)).unwrap();
    create_file(fs, ROOT, b"text", &pattern(3, 200_000));
    create_file(fs, ROOT, b"regrown", &random(6, 200_000));
    fs.symlink(ROOT, b"link", b"dir/big", Caller::ROOT).unwrap();
    fs.link(small, sub, b"small-again").unwrap();
    fs.setxattr(big, b"user.color", b"blue", 0).unwrap();
    fs.setxattr(ROOT, b"user.top", b"1", 0).unwrap();
    fs.mknod(ROOT, b"fifo", libc::S_IFIFO | 0o644, 0, Caller::ROOT)
        .unwrap();
}

/// Changes of every kind a stream carries.
fn change(fs: &Filesystem) {
    let dir = fs.lookup(ROOT, b"dir").unwrap().ino;
    let big = fs.lookup(dir, b"big").unwrap().ino;
    fs.write(big, MIB as u64, &random(4, 100_000)).unwrap();
    fs.fallocate(big, 0, R, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
        .unwrap();
    let text = fs.lookup(ROOT, b"text").unwrap().ino;
    set_size(fs, text, 10_000);
    // Cut inside a record and grown again: that record ends early, zeros after it.
    let regrown = fs.lookup(ROOT, b"regrown").unwrap().ino;
    set_size(fs, regrown, 10_000);
    set_size(fs, regrown, 200_000);
    fs.rename(dir, b"sub", ROOT, b"moved", RenameMode::Replace)
        .unwrap();
    fs.unlink(ROOT, b"small").unwrap();
    fs.rmdir(ROOT, b"gone").unwrap();
    // The number freed is likely taken again: another file in the same slot.
    fs.unlink(ROOT, b"empty").unwrap();
    create_file(fs, ROOT, b"empty", b"now with bytes");
    create_file(fs, dir, b"new", &random(5, 70_000));
    fs.removexattr(big, b"user.color").unwrap();
    fs.setxattr(big, b"user.size", b"L", 0).unwrap();
    fs.setxattr(ROOT, b"user.top", b"2", 0).unwrap();
}

/// A source with snapshots "one" (populated) and "two" (changed), and the two streams.
fn source() -> (Filesystem, Vec<u8>, Vec<u8>) {
    let (_, src) = fresh();
    populate(&src);
    src.create_snapshot(b"one").unwrap();
    change(&src);
    src.create_snapshot(b"two").unwrap();
    let full = stream(&src, "one", None);
    let inc = stream(&src, "two", Some("one"));
    (src, full, inc)
}

/// The namespace and bytes of snapshot `name` of `fs`, read through a receive of it.
fn expect_like(dst: &Filesystem, src: &Filesystem, name: &str) {
    let id = src
        .snapshot_names()
        .into_iter()
        .find(|(_, n)| n == name.as_bytes())
        .unwrap()
        .0;
    let view = src.snapshot_view(id).unwrap();
    assert_eq!(fingerprint(dst), view.ns.fingerprint(), "{name}");
    for (ino, bytes) in contents(dst) {
        let sent = src
            .snapshot_read(&view, u64::from(ino), 0, bytes.len() as u32 + 1)
            .unwrap();
        same(&bytes, &sent);
    }
}

#[test]
fn full_and_incremental_streams_reproduce_each_snapshot() {
    let (src, full, inc) = source();
    assert!(
        inc.len() * 4 < full.len(),
        "incremental {} bytes, full {}",
        inc.len(),
        full.len()
    );
    let (dev, dst) = fresh();
    let got = dst.receive(&full[..], &mut |_| {}).unwrap();
    assert!(!got.incremental);
    expect_like(&dst, &src, "one");
    let created = |fs: &Filesystem, n: &str| {
        fs.snapshots()
            .unwrap()
            .into_iter()
            .find(|s| s.name == n)
            .unwrap()
            .created_ns
    };
    assert_eq!(created(&dst, "one"), created(&src, "one"));
    let got = dst.receive(&inc[..], &mut |_| {}).unwrap();
    assert!(got.incremental);
    expect_like(&dst, &src, "two");
    assert_eq!(snapshot_names(&dst), ["one", "two"]);
    let (dev2, dst) = close_and_remount(&dev, dst);
    fsck_clean(&dev2);
    expect_like(&dst, &src, "two");
    // The received snapshot reads as the sent one, apart from the live tree.
    let rid = dst.snapshot_names()[0].0;
    let view = dst.snapshot_view(rid).unwrap();
    let sid = src.snapshot_names()[0].0;
    assert_eq!(
        view.ns.fingerprint(),
        src.snapshot_view(sid).unwrap().ns.fingerprint()
    );
    drop(dev);
}

#[test]
fn record_sizes_of_sender_and_receiver_may_differ() {
    let (src, full, inc) = source();
    for record_size in [16 * 1024, 256 * 1024] {
        let (_, dst) = fresh_with(record_size);
        dst.receive(&full[..], &mut |_| {}).unwrap();
        expect_like(&dst, &src, "one");
        dst.receive(&inc[..], &mut |_| {}).unwrap();
        expect_like(&dst, &src, "two");
    }
}

/// Receives `bytes` into the image `image`, expecting a refusal matching `is`; then
/// checks that the image mounts exactly as it was.
fn refused(image: &[u8], bytes: &[u8], is: impl Fn(&ReceiveError) -> bool) {
    let (dev, fs) = mount_image(image.to_vec());
    let (before, snaps) = (fingerprint(&fs), snapshot_names(&fs));
    match fs.receive(bytes, &mut |_| {}) {
        Err(e) if is(&e) => {}
        other => panic!("unexpected {other:?}"),
    }
    fs.abandon().unwrap();
    drop(fs);
    let (_, again) = mount_image(dev.volatile_image());
    assert_eq!(fingerprint(&again), before);
    assert_eq!(snapshot_names(&again), snaps);
    fsck_clean(&dev);
}

fn image_of(dev: &FaultDevice, fs: Filesystem) -> Vec<u8> {
    fs.close().unwrap();
    dev.volatile_image()
}

#[test]
fn streams_that_do_not_fit_the_target_are_refused_and_change_nothing() {
    let (_src, full, inc) = source();
    // An incremental stream without its base.
    let (dev, empty) = fresh();
    let empty_img = image_of(&dev, empty);
    refused(&empty_img, &inc, |e| {
        matches!(e, ReceiveError::BaseMissing(_))
    });
    // Its base's name, but another filesystem's snapshot.
    let (dev, other) = fresh();
    create_file(&other, ROOT, b"mine", b"other bytes");
    other.create_snapshot(b"one").unwrap();
    let other_img = image_of(&dev, other);
    refused(&other_img, &inc, |e| {
        matches!(e, ReceiveError::BaseMissing(_))
    });
    // A full stream into a filesystem holding files.
    refused(&other_img, &stream_of_named(&full, "fresh-name"), |e| {
        matches!(e, ReceiveError::TargetChanged(_))
    });
    // The base is here, but the filesystem changed since.
    let (dev, dst) = fresh();
    dst.receive(&full[..], &mut |_| {}).unwrap();
    let received_img = image_of(&dev, dst);
    let (dev, dst) = mount_image(received_img.clone());
    create_file(&dst, ROOT, b"local", b"x");
    let changed_img = image_of(&dev, dst);
    refused(&changed_img, &inc, |e| {
        matches!(e, ReceiveError::TargetChanged(_))
    });
    // A snapshot of that name exists.
    refused(&received_img, &full, |e| {
        matches!(e, ReceiveError::Exists(_))
    });
    // Reading files (access times) is not a change.
    let (dev, dst) = mount_image(received_img);
    let _ = contents(&dst);
    dst.receive(&inc[..], &mut |_| {}).unwrap();
    drop(dev);
}

/// `bytes` with the snapshot name in its header replaced (a stream re-headed, its end
/// hash then wrong: only for refusals that come before the end).
fn stream_of_named(bytes: &[u8], name: &str) -> Vec<u8> {
    use gpufs_format::send::{StreamHeader, STREAM_HEADER_LEN};
    let mut h = StreamHeader::decode(bytes).unwrap();
    h.name = [0; 256];
    h.name[..name.len()].copy_from_slice(name.as_bytes());
    h.name_len = name.len() as u32;
    let mut out = h.encode();
    out.extend_from_slice(&bytes[STREAM_HEADER_LEN..]);
    out
}

#[test]
fn damaged_or_truncated_streams_are_refused_and_change_nothing() {
    let (_, src) = fresh();
    create_file(&src, ROOT, b"a", &random(7, 300_000));
    let d = src.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    create_file(&src, d, b"b", b"bee");
    src.setxattr(d, b"user.x", b"y", 0).unwrap();
    src.create_snapshot(b"s").unwrap();
    let good = stream(&src, "s", None);
    let (dev, dst) = fresh();
    let img = image_of(&dev, dst);
    let step = good.len() / 40;
    let mut spots: Vec<usize> = (0..good.len()).step_by(step).collect();
    spots.extend([1, 9, 100, 660, 664, 670, good.len() - 1, good.len() - 30]);
    for at in spots {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        refused(&img, &bad, |e| matches!(e, ReceiveError::Damaged(_)));
    }
    for cut in [0, 10, 663, 664, 700, good.len() / 2, good.len() - 1] {
        refused(&img, &good[..cut], |e| {
            matches!(e, ReceiveError::Damaged(_))
        });
    }
    let mut longer = good.clone();
    longer.push(0);
    refused(&img, &longer, |e| matches!(e, ReceiveError::Damaged(_)));
    // And the good one applies.
    let (_, dst) = mount_image(img);
    dst.receive(&good[..], &mut |_| {}).unwrap();
    expect_like(&dst, &src, "s");
}

#[test]
fn a_power_cut_during_a_receive_leaves_the_target_before_or_after_it() {
    let (src, full, inc) = source();
    let (dev, dst) = fresh();
    dst.receive(&full[..], &mut |_| {}).unwrap();
    let before = fingerprint(&dst);
    let image = image_of(&dev, dst);
    let id = src.snapshot_names()[1].0;
    let after = src.snapshot_view(id).unwrap().ns.fingerprint();
    let outcomes = std::sync::Mutex::new(BTreeSet::new());
    let cuts = each_cut(
        &image,
        |fs| {
            let _ = fs.receive(&inc[..], &mut |_| {});
        },
        |n, fs| {
            let names = snapshot_names(fs);
            let got = fingerprint(fs);
            let outcome = if names == ["one"] && got == before {
                "before"
            } else if names == ["one", "two"] && got == after {
                "after"
            } else {
                panic!("cut {n}: snapshots {names:?}, a tree neither before nor after")
            };
            outcomes.lock().unwrap().insert(outcome);
        },
    );
    assert!(cuts > 10, "{cuts} cuts");
    assert_eq!(
        outcomes
            .into_inner()
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        ["after", "before"]
    );
}

#[test]
fn a_file_unlinked_while_open_is_no_part_of_a_stream() {
    let (_, src) = fresh();
    create_file(&src, ROOT, b"kept", b"kept");
    let open = src.create(ROOT, b"open", 0o644, Caller::ROOT).unwrap().ino;
    src.write(open, 0, b"bytes of a file still open").unwrap();
    src.unlink(ROOT, b"open").unwrap();
    src.create_snapshot(b"one").unwrap();
    src.release(open).unwrap();
    create_file(&src, ROOT, b"later", b"later");
    src.create_snapshot(b"two").unwrap();
    let (full, inc) = (stream(&src, "one", None), stream(&src, "two", Some("one")));
    let (dev, dst) = fresh();
    dst.receive(&full[..], &mut |_| {}).unwrap();
    // A mount frees what has no link: the tree is still the snapshot's.
    let (_, dst) = close_and_remount(&dev, dst);
    dst.receive(&inc[..], &mut |_| {}).unwrap();
    expect_like(&dst, &src, "two");
}

#[test]
fn one_generation_of_a_slot_on_both_sides_of_a_rollback_is_two_files() {
    let (_, src) = fresh();
    create_file(&src, ROOT, b"base", b"base");
    src.create_snapshot(b"before").unwrap();
    let f = create_file(&src, ROOT, b"f", b"a file");
    src.symlink(ROOT, b"l", b"target-one", Caller::ROOT)
        .unwrap();
    src.create_snapshot(b"branch").unwrap();
    src.rollback_snapshot(b"before").unwrap();
    // The slots the branch used, with the generations it gave them, for other kinds.
    let d = src.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    assert_eq!(d, f, "the same slot again");
    let l = src
        .symlink(ROOT, b"l2", b"target-two", Caller::ROOT)
        .unwrap()
        .ino;
    assert_eq!(
        src.getattr(l).unwrap().generation,
        src.getattr(d).unwrap().generation
    );
    src.create_snapshot(b"after").unwrap();
    let (full, inc) = (
        stream(&src, "branch", None),
        stream(&src, "after", Some("branch")),
    );
    let (_, dst) = fresh();
    dst.receive(&full[..], &mut |_| {}).unwrap();
    dst.receive(&inc[..], &mut |_| {}).unwrap();
    expect_like(&dst, &src, "after");
}

/// A tree of several checkpoint segments changed in a few of them (files written,
/// unlinked, renamed across directories, numbers reused, xattrs, directories made):
/// the incremental stream, planned over the segments that changed, rebuilds the second
/// snapshot exactly on a receiver of the first.
#[test]
fn an_incremental_stream_planned_over_the_changed_segments_rebuilds_the_snapshot() {
    use super::diff::{churn, stream as numbers, tree_of};
    let (_, src) = fresh_sized(256 << 20);
    let dirs = tree_of(&src, 30);
    src.create_snapshot(b"one").unwrap();
    let mut changed = dirs[..5].to_vec();
    let mut next = numbers(11);
    churn(&src, &mut changed, &mut next, 80);
    src.create_snapshot(b"two").unwrap();
    let names = src.snapshot_names();
    let (a, b) = (
        src.snapshot_view(names[0].0).unwrap(),
        src.snapshot_view(names[1].0).unwrap(),
    );
    let only = a
        .segments
        .differing(&b.segments, a.ns.inode_slots().max(b.ns.inode_slots()));
    assert!(
        !only.is_empty() && !only.contains(&(1024, 2048)),
        "{only:?}"
    );
    let full = stream(&src, "one", None);
    let inc = stream(&src, "two", Some("one"));
    let (_, dst) = fresh_sized(256 << 20);
    dst.receive(&full[..], &mut |_| {}).unwrap();
    expect_like(&dst, &src, "one");
    dst.receive(&inc[..], &mut |_| {}).unwrap();
    expect_like(&dst, &src, "two");
}
