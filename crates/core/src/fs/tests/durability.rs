//! Durability: state across clean remounts and power cuts, ENOSPC, reuse of freed
//! space only after a commit, journal replay after a torn transaction.

use gpufs_format::records::mode_bits::S_IFIFO;

use super::*;

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
    // The write after a short one may commit first (frees deferred by the rewrite of
    // the previous write's last, partial record come back) and get a little further.
    assert!(short_writes <= 2, "{short_writes} short writes");
    assert_eq!(fs.getattr(big).unwrap().size, content.len() as u64);
    same(read_all(&fs, big), &content);
    assert_err!(
        fs.write(big, content.len() as u64, &[1u8; 100_000]),
        FsError::NoSpace
    );
    assert_err!(
        fs.fallocate(big, content.len() as u64, 1 << 20, 0),
        FsError::NoSpace
    );
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
    assert_err!(fs.lookup(ROOT, b"big"), FsError::NotFound);
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
    assert_err!(fs.getattr(gone), FsError::NotFound);
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
        assert_err!(fs2.lookup(ROOT, b"late"), FsError::NotFound);
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
        let (_d, fs2) = cut_checked_and_mounted(&dev, seed);
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
        let (_d, fs2) = cut_checked_and_mounted(&dev, seed);
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
    let (head, journal_start, journal_copy) = {
        let g = fs.lock();
        let sb = g.vol.superblock();
        (sb.journal_head, sb.journal_start, sb.journal_copy_start)
    };
    assert_ne!(journal_copy, 0, "a new image has a second journal copy");
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
    // The cut: the run at the ring end is lost in both copies, the run at the ring
    // start kept.
    let mut img = dev.volatile_image();
    for idx in head..16 {
        for start in [journal_start, journal_copy] {
            let off = ((start + idx) as usize) * 4096;
            img[off..off + 4096].copy_from_slice(&before[off..off + 4096]);
        }
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
