//! Damage to metadata: every metadata block exists twice (superblock slots, both copies
//! of the checkpoint, both copies of the journal ring), so one damaged byte anywhere in
//! them leaves the filesystem mountable with every file intact; damage to both copies
//! is refused naming the blocks; a damaged data record reads as EIO, never as bytes.

use gpufs_format::{Compression, RecordPtr};

use super::*;

/// Names and contents of the files in `dir`.
type Files = Vec<(Vec<u8>, Vec<u8>)>;

/// A filesystem with files, a symlink, an xattr, a checkpoint and journal transactions
/// after it, and what its files hold. Everything is synced; the image is taken without
/// a clean unmount, so a mount replays the journal.
fn populated() -> (Vec<u8>, Files, Metadata) {
    let dev = Arc::new(FaultDevice::new(vec![0u8; 32 << 20]));
    let d: Arc<dyn Device> = dev.clone();
    let opts = MkfsOptions {
        journal_blocks: Some(64),
        compression: Compression::Lz4,
        ..MkfsOptions::default()
    };
    mkfs(d.clone(), &opts).unwrap();
    let fs = Filesystem::mount(d, OpenOptions::default()).unwrap();
    let mut files = Vec::new();
    let dir = fs.mkdir(ROOT, b"dir", 0o755, Caller::ROOT).unwrap().ino;
    for i in 0..6u8 {
        let data = if i % 2 == 0 {
            b"text that compresses well ".repeat(3000 + usize::from(i))
        } else {
            pattern(i, 90_000 + usize::from(i))
        };
        let name = format!("f{i}").into_bytes();
        create_file(&fs, dir, &name, &data);
        files.push((name, data));
    }
    fs.symlink(dir, b"link", b"f0", Caller::ROOT).unwrap();
    let f0 = fs.lookup(dir, b"f0").unwrap().ino;
    fs.setxattr(f0, b"user.k", b"v", 0).unwrap();
    // A checkpoint, then transactions only the journal holds.
    fs.close().unwrap();
    for i in 6..9u8 {
        let data = pattern(i, 10_000);
        let name = format!("f{i}").into_bytes();
        create_file(&fs, dir, &name, &data);
        files.push((name, data));
        fs.sync().unwrap();
    }
    let meta = Metadata::of(&fs);
    drop(fs);
    (dev.volatile_image(), files, meta)
}

/// Every metadata block of an image (absolute block numbers), by what it is.
struct Metadata {
    superblocks: Vec<u64>,
    checkpoint: Vec<u64>,
    journal: Vec<u64>,
    journal_copy: Vec<u64>,
}

impl Metadata {
    fn of(fs: &Filesystem) -> Metadata {
        let g = fs.lock();
        let sb = *g.vol.superblock();
        let ds = sb.data_start;
        let checkpoint = g
            .vol
            .checkpoint_runs()
            .iter()
            .flat_map(|&(s, n)| (ds + s)..(ds + s + n))
            .collect();
        assert_ne!(sb.journal_copy_start, 0);
        assert_ne!(sb.checkpoint_root_copy, 0);
        assert_eq!(sb.far_slot + 1, sb.total_blocks);
        Metadata {
            superblocks: vec![0, 1, sb.far_slot],
            checkpoint,
            journal: (sb.journal_start..sb.journal_start + sb.journal_blocks).collect(),
            journal_copy: (sb.journal_copy_start..sb.journal_copy_start + sb.journal_blocks)
                .collect(),
        }
    }

    fn all(&self) -> Vec<u64> {
        [
            &self.superblocks,
            &self.checkpoint,
            &self.journal,
            &self.journal_copy,
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect()
    }
}

/// A directory `safe` whose files keep two copies of every record.
fn safe_dir(fs: &Filesystem) -> u64 {
    let dir = fs.mkdir(ROOT, b"safe", 0o755, Caller::ROOT).unwrap().ino;
    fs.set_property(dir, "copies", "2", Caller::ROOT).unwrap();
    dir
}

fn flip(img: &mut [u8], block: u64, offset: usize) {
    img[block as usize * BLOCK_SIZE + offset] ^= 0x5A;
}

/// Mounts `img` and checks every file: all there, every byte right.
fn check_intact(img: Vec<u8>, files: &Files, what: &str) {
    let dev = Arc::new(FaultDevice::new(img));
    let d: Arc<dyn Device> = dev.clone();
    let fs = Filesystem::mount(d, OpenOptions::default())
        .unwrap_or_else(|e| panic!("{what}: mount failed: {e}"));
    let dir = fs.lookup(ROOT, b"dir").unwrap().ino;
    for (name, data) in files {
        let ino = fs
            .lookup(dir, name)
            .unwrap_or_else(|e| panic!("{what}: {:?}: {e}", String::from_utf8_lossy(name)))
            .ino;
        assert!(
            read_all(&fs, ino) == *data,
            "{what}: {:?} reads wrong",
            String::from_utf8_lossy(name)
        );
    }
    let link = fs.lookup(dir, b"link").unwrap().ino;
    assert_eq!(fs.readlink(link).unwrap(), b"f0", "{what}");
    let f0 = fs.lookup(dir, b"f0").unwrap().ino;
    assert_eq!(fs.getxattr(f0, b"user.k").unwrap(), b"v", "{what}");
    // The mount rewrote what was damaged: a clean unmount leaves an image fsck passes.
    fs.close().unwrap();
    drop(fs);
    let report = crate::fsck::check(Arc::new(FaultDevice::new(dev.volatile_image()))).unwrap();
    assert!(
        report.problems.is_empty() && report.warnings.is_empty(),
        "{what}: {report:?}"
    );
}

#[test]
fn one_damaged_byte_in_any_metadata_block_loses_nothing() {
    let (img, files, meta) = populated();
    check_intact(img.clone(), &files, "undamaged");
    let mut rng = 0x9E37_79B9u64;
    for block in meta.all() {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
        // A header byte, and one more anywhere in the block.
        for offset in [40usize, (rng >> 33) as usize % BLOCK_SIZE] {
            let mut bad = img.clone();
            flip(&mut bad, block, offset);
            check_intact(bad, &files, &format!("byte {offset} of block {block}"));
        }
    }
}

#[test]
fn a_whole_damaged_copy_is_read_from_the_other_and_rewritten() {
    let (img, files, meta) = populated();
    // Every block of one checkpoint copy, or of one journal ring, or one superblock.
    let half = meta.checkpoint.len() / 2;
    for (what, blocks) in [
        ("checkpoint copy 1", &meta.checkpoint[..half]),
        ("checkpoint copy 2", &meta.checkpoint[half..]),
        ("journal", &meta.journal[..]),
        ("journal copy", &meta.journal_copy[..]),
        ("superblock 0", &meta.superblocks[..1]),
        ("both superblock slots at the start", &meta.superblocks[..2]),
        ("the far superblock slot", &meta.superblocks[2..]),
    ] {
        let mut bad = img.clone();
        for &b in blocks {
            let at = b as usize * BLOCK_SIZE;
            bad[at..at + BLOCK_SIZE].fill(0xEE);
        }
        check_intact(bad, &files, what);
    }
}

#[test]
fn damage_to_both_copies_of_the_checkpoint_is_refused_naming_the_blocks() {
    let (mut img, _files, meta) = populated();
    let roots = {
        let sb = gpufs_format::Superblock::decode(&img[..BLOCK_SIZE]).unwrap();
        [sb.checkpoint_root, sb.checkpoint_root_copy]
    };
    for r in roots {
        flip(&mut img, r, 8);
    }
    assert!(meta.checkpoint.contains(&roots[0]));
    let dev: Arc<dyn Device> = Arc::new(FaultDevice::new(img));
    let err = Filesystem::mount(dev, OpenOptions::default())
        .err()
        .unwrap();
    let msg = err.to_string();
    for r in roots {
        assert!(msg.contains(&format!("block {r}")), "{msg}");
    }
    assert!(matches!(err, FsError::BadImage(_)), "{err:?}");
}

#[test]
fn a_damaged_data_record_reads_as_eio_and_fsck_names_its_file() {
    let (mut img, files, _meta) = populated();
    let fs = mount_image(img.clone()).1;
    let dir = fs.lookup(ROOT, b"dir").unwrap().ino;
    let victim = fs.lookup(dir, b"f1").unwrap().ino;
    let block = {
        let g = fs.lock();
        g.vol.records(Ino::new(victim as u32))[0].1.block
    };
    drop(fs);
    flip(&mut img, block, 77);
    let (_d, fs) = mount_image(img.clone());
    assert_err!(fs.read(victim, 0, 4096), FsError::Corrupt(_));
    // Its other records and every other file still read.
    let dir = fs.lookup(ROOT, b"dir").unwrap().ino;
    for (name, data) in &files[2..] {
        let ino = fs.lookup(dir, name).unwrap().ino;
        assert!(read_all(&fs, ino) == *data);
    }
    let report = crate::fsck::check(Arc::new(FaultDevice::new(img))).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&format!("inode {victim}"))),
        "{:?}",
        report.problems
    );
}

#[test]
fn with_copies_2_a_read_returns_the_good_copy_and_rewrites_the_bad() {
    let (dev, fs) = fresh();
    let dir = safe_dir(&fs);
    let data = pattern(3, 3 * R as usize);
    let ino = create_file(&fs, dir, b"f", &data);
    let used_one = {
        let plain = create_file(&fs, ROOT, b"plain", &data);
        fs.getattr(plain).unwrap().blocks
    };
    // Placed by the commit.
    fs.sync().unwrap();
    // Both copies count as allocated space.
    assert_eq!(fs.getattr(ino).unwrap().blocks, 2 * used_one);
    let ptrs: Vec<RecordPtr> = {
        let g = fs.lock();
        g.vol
            .records(Ino::new(ino as u32))
            .iter()
            .map(|r| r.1)
            .collect()
    };
    assert_eq!(ptrs.len(), 3);
    let copy = ptrs[1].copy_block().unwrap();
    assert!(
        copy.abs_diff(ptrs[1].block) > 1000,
        "copies {} and {copy} are close",
        ptrs[1].block
    );
    fs.close().unwrap();
    drop(fs);
    // The first copy of record 1 damaged, and the second copy of record 2.
    let mut img = dev.volatile_image();
    flip(&mut img, ptrs[1].block, 10);
    flip(&mut img, ptrs[2].copy_block().unwrap(), 10);
    let report = crate::fsck::check(Arc::new(FaultDevice::new(img.clone()))).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    let (dev, fs) = mount_image(img);
    same(read_all(&fs, ino), &data);
    // A read meets the damaged first copy of record 1, not the second copy of record 2
    // (its first copy answers).
    assert_eq!(fs.counters().healed_copies, 1);
    fs.close().unwrap();
    drop(fs);
    let img = dev.volatile_image();
    let report = crate::fsck::check(Arc::new(FaultDevice::new(img.clone()))).unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains(&format!("block {}", ptrs[2].copy_block().unwrap())));
    // Both copies of one record damaged: EIO, not bytes.
    let mut img = img;
    flip(&mut img, ptrs[0].block, 10);
    flip(&mut img, ptrs[0].copy_block().unwrap(), 10);
    let (_d, fs) = mount_image(img);
    assert_err!(fs.read(ino, 0, 100), FsError::Corrupt(_));
    same(
        fs.read(ino, R, R as u32).unwrap(),
        &data[R as usize..2 * R as usize],
    );
}

#[test]
fn scrub_repairs_what_has_a_good_copy_and_names_what_has_not() {
    let (dev, fs) = fresh();
    let safe = safe_dir(&fs);
    let data = pattern(5, 3 * R as usize);
    let twice = create_file(&fs, safe, b"twice", &data);
    let once = create_file(&fs, ROOT, b"once", &data);
    for i in 0..300u32 {
        create_file(
            &fs,
            ROOT,
            format!("small{i}").as_bytes(),
            &pattern(i as u8, 5000),
        );
    }
    fs.close().unwrap();
    fs.mkdir(ROOT, b"after", 0o755, Caller::ROOT).unwrap();
    fs.sync().unwrap();
    let (ptr_twice, ptr_once, sb) = {
        let g = fs.lock();
        let t = g.vol.records(Ino::new(twice as u32))[2].1;
        let o = g.vol.records(Ino::new(once as u32))[1].1;
        (t, o, *g.vol.superblock())
    };
    // Damage under the running filesystem: the second copy of a record of `twice`, the
    // only copy of a record of `once`, a superblock slot, a checkpoint copy and a block
    // of the journal's second ring.
    let hit = |block: u64| {
        dev.write_at(&[0xA5; 64], block * BLOCK_SIZE as u64 + 100)
            .unwrap()
    };
    hit(ptr_twice.copy_block().unwrap());
    hit(ptr_once.block);
    hit(1);
    hit(sb.checkpoint_root_copy);
    hit(sb.journal_copy_start + sb.journal_head);
    // Interrupted after its first batch, the scrub resumes where it stopped, after a
    // remount too.
    let mut batches = 0;
    let first = fs
        .scrub(false, &mut |_| {
            batches += 1;
            false
        })
        .unwrap();
    assert!(!first.finished);
    assert_eq!(first.metadata.damaged.len(), 3, "{:?}", first.metadata);
    assert!(first.metadata.repaired);
    // The place survives a remount (the superblock keeps it).
    let (dev, fs) = close_and_remount(&dev, fs);
    let report = fs.scrub(false, &mut |_| true).unwrap();
    assert!(report.finished);
    assert!(report.resumed_from > 0);
    assert!(report.metadata.damaged.is_empty(), "{:?}", report.metadata);
    let total = first.progress.records_done + report.progress.records_done;
    assert_eq!(total, 306);
    assert_eq!(first.damaged_copies + report.damaged_copies, 2);
    assert_eq!(first.repaired_copies + report.repaired_copies, 1);
    let unrepaired: Vec<_> = first.unrepaired.iter().chain(&report.unrepaired).collect();
    assert_eq!(unrepaired.len(), 1);
    assert_eq!(unrepaired[0].path, b"/once");
    assert_eq!(unrepaired[0].ranges, vec![(R, 2 * R)]);
    // From the start again: only the record without a good copy is left.
    let again = fs.scrub(true, &mut |_| true).unwrap();
    assert_eq!(again.resumed_from, 0);
    assert_eq!((again.damaged_copies, again.repaired_copies), (1, 0));
    assert!(again.unrepaired_damage() && again.found_damage());
    same(read_all(&fs, twice), &data);
    assert_err!(fs.read(once, R, 10), FsError::Corrupt(_));
    fs.close().unwrap();
    drop(fs);
    let report = crate::fsck::check(Arc::new(FaultDevice::new(dev.volatile_image()))).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
}

#[test]
fn a_power_cut_at_any_write_of_a_repair_loses_nothing() {
    // Damage to a data copy, a superblock slot and a checkpoint copy; then the mount and
    // a scrub repair it, with the power cut before each of their writes in turn.
    let (dev, fs) = fresh();
    let safe = safe_dir(&fs);
    let data = pattern(9, 2 * R as usize);
    let ino = create_file(&fs, safe, b"f", &data);
    let plain = pattern(10, 3000);
    create_file(&fs, ROOT, b"plain", &plain);
    fs.close().unwrap();
    let (ptr, sb) = {
        let g = fs.lock();
        (
            g.vol.records(Ino::new(ino as u32))[1].1,
            *g.vol.superblock(),
        )
    };
    drop(fs);
    let mut img = dev.volatile_image();
    flip(&mut img, ptr.block, 3);
    flip(&mut img, 1, 3);
    flip(&mut img, sb.checkpoint_root_copy, 3);
    let mut cuts = 0;
    for n in 0.. {
        let dev = Arc::new(FaultDevice::new(img.clone()));
        dev.arm_cut(n, PowerCut::new(n));
        let d: Arc<dyn Device> = dev.clone();
        if let Ok(fs) = Filesystem::mount(d, OpenOptions::default()) {
            let _ = fs.scrub(false, &mut |_| true);
        }
        let Some(after) = dev.cut_image() else {
            // Every write of the mount and the scrub has had its cut.
            break;
        };
        cuts += 1;
        let (_d, fs) = mount_image(after);
        let f = fs
            .lookup(fs.lookup(ROOT, b"safe").unwrap().ino, b"f")
            .unwrap()
            .ino;
        same(read_all(&fs, f), &data);
        let p = fs.lookup(ROOT, b"plain").unwrap().ino;
        same(read_all(&fs, p), &plain);
        let report = fs.scrub(false, &mut |_| true).unwrap();
        assert!(!report.unrepaired_damage(), "cut {n}: {report:?}");
    }
    assert!(cuts >= 5, "only {cuts} cut points");
}
