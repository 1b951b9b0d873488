//! Paged checkpoints (format v5): a checkpoint writes the pages that changed and names
//! the rest where the last one wrote them; damage to a page is read from the other copy
//! and written anew.

use super::*;

/// A filesystem with `files` empty files in one directory, checkpointed and remounted.
fn many_files(files: u32) -> (Arc<FaultDevice>, Filesystem, u64) {
    let (dev, fs) = fresh();
    let dir = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    for i in 0..files {
        fs.create(dir, format!("file-{i:06}").as_bytes(), 0o644, Caller::ROOT)
            .unwrap();
    }
    let (dev, fs) = close_and_remount(&dev, fs);
    (dev, fs, dir)
}

#[test]
fn a_checkpoint_after_one_change_writes_a_few_pages() {
    let (dev, fs, dir) = many_files(20_000);
    let f = fs.lookup(dir, b"file-012345").unwrap().ino;
    fs.write(f, 0, b"one change").unwrap();
    fs.close().unwrap();
    let c = fs.counters();
    assert_eq!(c.checkpoints, 1);
    assert!(
        // Pages are 16 to 256 KiB: the ~2 MB checkpoint is at least 9 a copy.
        c.checkpoint_pages_written <= 12
            && c.checkpoint_pages_kept >= 12
            && c.checkpoint_pages_kept >= 3 * c.checkpoint_pages_written,
        "{} pages written, {} kept",
        c.checkpoint_pages_written,
        c.checkpoint_pages_kept
    );
    drop(fs);
    fsck_clean(&dev);
    let (_dev, fs) = mount_image(dev.volatile_image());
    let f = fs
        .lookup(fs.lookup(ROOT, b"d").unwrap().ino, b"file-012345")
        .unwrap()
        .ino;
    same(fs.read(f, 0, 100).unwrap(), b"one change");
    assert!(fs.lookup(dir, b"file-019999").is_ok());
}

/// Renames `file-N` to `name-N` (the same length) in `dir` for N below `files`.
pub(super) fn rename_all(fs: &Filesystem, dir: u64, files: u32) {
    for i in 0..files {
        let (old, new) = (format!("file-{i:06}"), format!("name-{i:06}"));
        fs.rename(
            dir,
            old.as_bytes(),
            dir,
            new.as_bytes(),
            RenameMode::Replace,
        )
        .unwrap();
    }
}

#[test]
fn the_blocks_of_pages_no_copy_names_any_more_are_free_again() {
    let (dev, fs, dir) = many_files(5_000);
    let before = used(&fs);
    // Every file renamed (names of the same length): most pages change, the old ones
    // are given back.
    rename_all(&fs, dir, 5_000);
    let (dev, fs) = close_and_remount(&dev, fs);
    let after = used(&fs);
    assert!(
        after <= before + 8,
        "{before} blocks used before, {after} after"
    );
    drop(fs);
    fsck_clean(&dev);
}

/// The pages of the checkpoint copy whose root is at `root` in `image`.
pub(super) fn pages_of(image: &[u8], root: u64) -> Vec<gpufs_format::pages::PageEntry> {
    let block = |b: u64| &image[b as usize * BLOCK_SIZE..(b as usize + 1) * BLOCK_SIZE];
    let (root, runs) = gpufs_format::CheckpointRoot::decode(block(root)).unwrap();
    let mut table: Vec<u8> = runs
        .iter()
        .flat_map(|&(s, n)| (s..s + n).flat_map(|b| block(b).to_vec()))
        .take(root.blob_len as usize)
        .collect();
    if let Ok((_, table_pages)) = gpufs_format::pages::decode_page_index(&table) {
        // Version 8: the root names the pages that hold the table.
        table = table_pages
            .iter()
            .flat_map(|p| image[p.block as usize * BLOCK_SIZE..][..p.len as usize].to_vec())
            .collect();
    }
    gpufs_format::pages::decode_page_table(&table).unwrap().1
}

#[test]
fn a_damaged_page_is_read_from_the_other_copy_and_written_anew() {
    // About a megabyte of checkpoint: at least four pages of at most 256 KiB.
    let (dev, fs, _dir) = many_files(10_000);
    fs.close().unwrap();
    drop(fs);
    let mut image = dev.volatile_image();
    // The slot of the newest generation: the other may hold the checkpoint before.
    let sb = [0, 1]
        .map(|slot| {
            gpufs_format::Superblock::decode(&image[slot * BLOCK_SIZE..(slot + 1) * BLOCK_SIZE])
                .unwrap()
        })
        .into_iter()
        .max_by_key(|sb| sb.generation)
        .unwrap();
    let pages = pages_of(&image, sb.checkpoint_root);
    assert!(pages.len() >= 3, "{} pages", pages.len());
    let hit = pages[pages.len() / 2];
    image[hit.block as usize * BLOCK_SIZE + 100] ^= 0x5A;

    let (dev, fs) = mount_image(image);
    assert!(
        fs.notes()
            .iter()
            .any(|n| n.contains(&format!("pages at blocks [{}]", hit.block))),
        "{:?}",
        fs.notes()
    );
    let dir = fs.lookup(ROOT, b"d").unwrap().ino;
    for i in (0..10_000).step_by(7) {
        fs.lookup(dir, format!("file-{i:06}").as_bytes()).unwrap();
    }
    fs.close().unwrap();
    drop(fs);
    // Both copies verify whole: the damaged page was written anew, not named again.
    let report = crate::fsck::check(Arc::new(FaultDevice::new(dev.volatile_image()))).unwrap();
    assert!(
        report.problems.is_empty() && report.warnings.is_empty(),
        "{report:?}"
    );
}

#[test]
fn a_tree_keeps_its_pages_across_a_remount() {
    // Each directory is created between the files of the one before: the checkpoint
    // stores entries by directory, in the order a mount loads them, so the checkpoint
    // after a remount and a change to one file's times writes about a page a copy.
    let (dev, fs) = fresh();
    let top = fs.mkdir(ROOT, b"fill", 0o755, Caller::ROOT).unwrap().ino;
    for d in 0..20u32 {
        let name = format!("d{d:04}");
        let dir = fs
            .mkdir(top, name.as_bytes(), 0o755, Caller::ROOT)
            .unwrap()
            .ino;
        for i in 0..1000u32 {
            let name = format!("f{:06}", d * 1000 + i);
            fs.create(dir, name.as_bytes(), 0o644, Caller::ROOT)
                .unwrap();
        }
    }
    let (dev, fs) = close_and_remount(&dev, fs);
    let d0 = fs.lookup(top, b"d0000").unwrap().ino;
    let f = fs.lookup(d0, b"f000000").unwrap().ino;
    let set = SetAttr {
        mtime: Some(TimeSet::Now),
        ..SetAttr::default()
    };
    fs.setattr(f, &set, Caller::ROOT).unwrap();
    fs.close().unwrap();
    let c = fs.counters();
    // Only the touched file's segment was encoded again: the mount learnt the others'
    // pages from the checkpoint it loaded.
    assert_eq!(
        (c.checkpoint_segments_encoded, c.checkpoint_segments_kept),
        (1, 19),
        "segments encoded, kept (20,023 inode slots: 20 segments)"
    );
    assert!(
        c.checkpoint_pages_written <= 4 && c.checkpoint_pages_kept >= 12,
        "{} pages written, {} kept",
        c.checkpoint_pages_written,
        c.checkpoint_pages_kept
    );
    // And of the page table (v8: in pages), the pages naming those: one or two a copy.
    assert!(
        (1..=4).contains(&c.checkpoint_table_pages_written),
        "{} table pages written",
        c.checkpoint_table_pages_written
    );
    drop(fs);
    fsck_clean(&dev);
}

/// The page index of the checkpoint copy whose root is at `root` in `image` (format v8):
/// the pages that hold its page table.
fn table_pages_of(image: &[u8], root: u64) -> Vec<gpufs_format::pages::PageEntry> {
    let block = |b: u64| &image[b as usize * BLOCK_SIZE..(b as usize + 1) * BLOCK_SIZE];
    let (root, runs) = gpufs_format::CheckpointRoot::decode(block(root)).unwrap();
    let index: Vec<u8> = runs
        .iter()
        .flat_map(|&(s, n)| (s..s + n).flat_map(|b| block(b).to_vec()))
        .take(root.blob_len as usize)
        .collect();
    gpufs_format::pages::decode_page_index(&index).unwrap().1
}

#[test]
fn a_checkpoint_after_one_change_writes_a_few_pages_of_a_long_page_table() {
    // 240,000 files with long names of varied bytes: a ~80 MB checkpoint of over a
    // thousand pages, a page table of several pages (format v8).
    let name_of = |n: u32| {
        let h = |k: u32| u64::from(n ^ k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        format!("{:016x}", h(1)).repeat(6) + &format!("{n:08}")
    };
    let (dev, fs) = fresh_sized(512 << 20);
    for d in 0..240u32 {
        let dir = fs
            .mkdir(ROOT, format!("d{d:03}").as_bytes(), 0o755, Caller::ROOT)
            .unwrap()
            .ino;
        for i in 0..1000u32 {
            fs.create(dir, name_of(d * 1000 + i).as_bytes(), 0o644, Caller::ROOT)
                .unwrap();
        }
    }
    let (dev, fs) = close_and_remount(&dev, fs);
    let sb = *fs.lock().vol.superblock();
    let image = dev.volatile_image();
    let tables = [sb.checkpoint_root, sb.checkpoint_root_copy].map(|r| table_pages_of(&image, r));
    drop(image);
    assert!(
        // (3 to 5 pages from run to run: the inodes' times differ, so do the cuts.)
        tables.iter().all(|t| t.len() >= 3),
        "{:?} table pages",
        tables.each_ref().map(Vec::len)
    );
    let dir = fs.lookup(ROOT, b"d060").unwrap().ino;
    let f = fs.lookup(dir, name_of(60_500).as_bytes()).unwrap().ino;
    fs.write(f, 0, b"one change").unwrap();
    fs.close().unwrap();
    let c = fs.counters();
    // The table pages naming the pages written, and the first (its header counts the
    // pages), at most, in each copy: the others are named again where they lie.
    let total = tables[0].len() + tables[1].len();
    assert!(
        (1..=6).contains(&c.checkpoint_table_pages_written)
            && (c.checkpoint_table_pages_written as usize) < total,
        "{} table pages written of {:?}",
        c.checkpoint_table_pages_written,
        tables.each_ref().map(Vec::len)
    );
    let sb = *fs.lock().vol.superblock();
    let after = table_pages_of(&dev.volatile_image(), sb.checkpoint_root);
    let kept = after.iter().filter(|p| tables[0].contains(p)).count();
    assert!(
        kept + 3 >= after.len(),
        "{kept} of {} table pages kept",
        after.len()
    );
    drop(fs);
    fsck_clean(&dev);
}

/// Checkpoints that encode one segment and keep the others (format v7), cut by a power
/// failure before each of their writes: fsck finds every image clean, each changed file
/// reads as before or after its change, every other file as it was, a snapshot shows
/// what it was taken after, and the filesystem takes further changes.
#[test]
fn power_cuts_in_checkpoints_that_keep_most_segments_lose_nothing() {
    let (dev, fs) = fresh();
    let dir = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    let content = |i: u32, v: u32| format!("v{v} of {i}").into_bytes();
    let mut inos = Vec::new();
    for i in 0..3000u32 {
        inos.push(create_file(
            &fs,
            dir,
            format!("f{i:04}").as_bytes(),
            &content(i, 0),
        ));
    }
    // Files in the first, the second and the last segment.
    let changed = [10u32, 1500, 2900];
    fs.close().unwrap();
    drop(fs);
    let image = dev.volatile_image();
    let action = |fs: &Filesystem| {
        let _ = (|| -> FsResult<()> {
            for (k, &i) in changed.iter().enumerate() {
                fs.write(inos[i as usize], 0, &content(i, 1))?;
                if k < 2 {
                    fs.create_snapshot(format!("s{k}").as_bytes())?;
                }
            }
            fs.close()
        })();
    };
    let cuts = each_cut(&image, action, |n, fs| {
        let d = fs.lookup(ROOT, b"d").unwrap().ino;
        let read = |i: u32| {
            let f = fs.lookup(d, format!("f{i:04}").as_bytes()).unwrap().ino;
            read_all(fs, f)
        };
        for &i in &changed {
            let got = read(i);
            assert!(
                got == content(i, 0) || got == content(i, 1),
                "cut {n}: file {i}"
            );
        }
        for i in (0..3000).step_by(97) {
            assert_eq!(read(i), content(i, 0), "cut {n}: file {i}");
        }
        for (k, (id, name)) in fs.snapshot_names().into_iter().enumerate() {
            assert_eq!(name, format!("s{k}").into_bytes(), "cut {n}");
            let view = fs.snapshot_view(id).unwrap();
            let vd = view.lookup(ROOT, b"d").unwrap().ino;
            let i = changed[k];
            let f = view.lookup(vd, format!("f{i:04}").as_bytes()).unwrap().ino;
            let size = view.getattr(f).unwrap().size;
            same(
                fs.snapshot_read(&view, f, 0, size as u32).unwrap(),
                content(i, 1),
            );
        }
        let f = fs.lookup(d, b"f0001").unwrap().ino;
        fs.write(f, 0, &content(1, 2)).unwrap();
        fs.close().unwrap();
    });
    assert!(cuts >= 20, "only {cuts} cut points");
}
