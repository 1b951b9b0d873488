//! File data: reads and writes across records, sparse files, SEEK_DATA/SEEK_HOLE,
//! truncation, open files after unlink, fallocate.

use super::*;

const SEEK_DATA: i32 = 3;
const SEEK_HOLE: i32 = 4;

#[test]
fn write_and_read_across_record_boundaries() {
    let (_dev, fs) = fresh();
    let ino = fs.create(ROOT, b"f", 0o644, Caller::ROOT).unwrap().ino;
    let mut model = Vec::new();
    fn apply(model: &mut Vec<u8>, off: u64, data: &[u8]) {
        let end = off as usize + data.len();
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(data);
    }

    // Straddles the boundary of records 0 and 1, leaving a hole before it.
    let d1 = pattern(1, 100);
    assert_eq!(fs.write(ino, R - 50, &d1).unwrap(), 100);
    apply(&mut model, R - 50, &d1);
    assert_eq!(fs.getattr(ino).unwrap().size, R + 50);
    let got = fs.read(ino, 0, (2 * R) as u32).unwrap();
    assert_eq!(got.len() as u64, R + 50);
    assert!(got[..(R - 50) as usize].iter().all(|b| *b == 0));
    assert_eq!(&got[(R - 50) as usize..], &d1[..]);

    // Several whole and partial records at an odd offset.
    let d2 = pattern(2, (3 * R + 17) as usize);
    assert_eq!(fs.write(ino, 10, &d2).unwrap() as usize, d2.len());
    apply(&mut model, 10, &d2);
    // Overwrite in the middle, crossing a boundary.
    let d3 = pattern(3, 1000);
    fs.write(ino, 2 * R - 500, &d3).unwrap();
    apply(&mut model, 2 * R - 500, &d3);
    // A far write leaves a sparse hole of whole records.
    let d4 = pattern(4, 70_000);
    fs.write(ino, 10 * R + 5, &d4).unwrap();
    apply(&mut model, 10 * R + 5, &d4);

    assert_eq!(fs.getattr(ino).unwrap().size, model.len() as u64);
    same(read_all(&fs, ino), &model);
    // Reads at odd offsets and sizes.
    for (off, len) in [
        (0u64, 1u32),
        (R - 1, 2),
        (R + 7, 65_536),
        (3 * R, 200_000),
        (5 * R, 10),
    ] {
        let got = fs.read(ino, off, len).unwrap();
        let end = (off + u64::from(len)).min(model.len() as u64) as usize;
        assert_eq!(got, &model[off as usize..end], "read at {off}+{len}");
    }
    // The hole (records 4..10) reads as zeros.
    assert_eq!(
        fs.read(ino, 5 * R, R as u32).unwrap(),
        vec![0u8; R as usize]
    );
    // At and past EOF: nothing.
    let size = model.len() as u64;
    assert!(fs.read(ino, size, 10).unwrap().is_empty());
    assert!(fs.read(ino, size + 100, 10).unwrap().is_empty());
    assert_eq!(
        fs.read(ino, size - 3, 100).unwrap(),
        &model[model.len() - 3..]
    );
    // Stored: records 0..=3 full (3R+27 bytes from 10, record 3 ends at 3R+27),
    // records 10 and 11: 5+70000 bytes.
    let a = fs.getattr(ino).unwrap();
    let blocks_4k = 16 + 16 + 16 + 1 + 16 + (70_005u64 - R).div_ceil(4096);
    assert_eq!(a.blocks, blocks_4k * 8);
    // A write of nothing changes nothing.
    assert_eq!(fs.write(ino, size + R, &[]).unwrap(), 0);
    assert_eq!(fs.getattr(ino).unwrap().size, size);
    // Directories are not readable or writable as files.
    assert_err!(fs.read(ROOT, 0, 10), FsError::IsDir);
    assert_err!(fs.write(ROOT, 0, b"x"), FsError::IsDir);
    assert_err!(fs.write(ino, MAX_FILE_SIZE, b"x"), FsError::FileTooBig);
}

#[test]
fn file_larger_than_4_gib_with_seek_data_and_hole() {
    let (dev, fs) = fresh();
    let ino = fs.create(ROOT, b"big", 0o644, Caller::ROOT).unwrap().ino;
    let at = 5u64 << 30;
    assert_eq!(fs.write(ino, at, b"x").unwrap(), 1);
    let check = |fs: &Filesystem| {
        let a = fs.getattr(ino).unwrap();
        assert_eq!(a.size, at + 1);
        assert_eq!(a.blocks, 8);
        let tail = fs.read(ino, at - 4095, 8192).unwrap();
        assert_eq!(tail.len(), 4096);
        assert!(tail[..4095].iter().all(|b| *b == 0));
        assert_eq!(tail[4095], b'x');
        assert_eq!(fs.read(ino, 0, R as u32).unwrap(), vec![0u8; R as usize]);
        let at4g = fs.read(ino, 4 << 30, R as u32).unwrap();
        assert_eq!(at4g, vec![0u8; R as usize]);
        assert_eq!(fs.lseek(ino, 0, SEEK_DATA).unwrap(), at);
        assert_eq!(fs.lseek(ino, 4 << 30, SEEK_DATA).unwrap(), at);
        assert_eq!(fs.lseek(ino, at, SEEK_DATA).unwrap(), at);
        assert_eq!(fs.lseek(ino, 0, SEEK_HOLE).unwrap(), 0);
        assert_eq!(fs.lseek(ino, 123_456, SEEK_HOLE).unwrap(), 123_456);
        assert_eq!(fs.lseek(ino, at, SEEK_HOLE).unwrap(), at + 1);
        assert_err!(fs.lseek(ino, at + 1, SEEK_DATA), FsError::NoSuchOffset);
        assert_err!(fs.lseek(ino, at + 1, SEEK_HOLE), FsError::NoSuchOffset);
        assert_err!(fs.lseek(ino, 0, 7), FsError::Invalid(_));
    };
    check(&fs);
    // Data at the start: the hole begins where it ends.
    fs.write(ino, 0, &pattern(9, 100)).unwrap();
    assert_eq!(fs.lseek(ino, 0, SEEK_DATA).unwrap(), 0);
    assert_eq!(fs.lseek(ino, 50, SEEK_DATA).unwrap(), 50);
    assert_eq!(fs.lseek(ino, 0, SEEK_HOLE).unwrap(), 100);
    assert_eq!(fs.lseek(ino, 100, SEEK_DATA).unwrap(), at);
    // Two full records then a short one: the hole starts after the short one.
    fs.write(ino, 0, &pattern(9, (2 * R + 10) as usize))
        .unwrap();
    assert_eq!(fs.lseek(ino, 5, SEEK_HOLE).unwrap(), 2 * R + 10);
    fs.fallocate(
        ino,
        0,
        2 * R + 10,
        FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
    )
    .unwrap();
    check(&fs);
    let (_dev, fs) = close_and_remount(&dev, fs);
    check(&fs);
}

#[test]
fn truncate_shrink_then_grow_reads_zeros() {
    let (dev, fs) = fresh();
    let ino = create_file(&fs, ROOT, b"t", &pattern(5, (3 * R) as usize));
    let data = pattern(5, (3 * R) as usize);
    set_size(&fs, ino, R + 100);
    same(read_all(&fs, ino), &data[..(R + 100) as usize]);
    assert_eq!(fs.getattr(ino).unwrap().blocks, (16 + 1) * 8);
    set_size(&fs, ino, 3 * R);
    let got = read_all(&fs, ino);
    assert_eq!(&got[..(R + 100) as usize], &data[..(R + 100) as usize]);
    assert!(got[(R + 100) as usize..].iter().all(|b| *b == 0));
    assert_eq!(fs.getattr(ino).unwrap().blocks, (16 + 1) * 8);

    // Shrink into a record, then write past the old end: the gap is zeros.
    set_size(&fs, ino, 50);
    fs.write(ino, 200, b"zz").unwrap();
    let mut want = data[..50].to_vec();
    want.resize(200, 0);
    want.extend_from_slice(b"zz");
    same(read_all(&fs, ino), &want);

    // Shrink to a record boundary and to zero.
    fs.write(ino, 0, &data).unwrap();
    set_size(&fs, ino, 2 * R);
    same(read_all(&fs, ino), &data[..(2 * R) as usize]);
    assert_eq!(fs.getattr(ino).unwrap().blocks, 32 * 8);
    set_size(&fs, ino, 0);
    assert_eq!(fs.getattr(ino).unwrap().blocks, 0);
    set_size(&fs, ino, 2 * R);
    same(read_all(&fs, ino), vec![0u8; (2 * R) as usize]);
    assert_err!(
        fs.setattr(
            ROOT,
            &SetAttr {
                size: Some(0),
                ..Default::default()
            },
            Caller::ROOT
        ),
        FsError::IsDir
    );
    let (_dev, fs) = close_and_remount(&dev, fs);
    same(read_all(&fs, ino), vec![0u8; (2 * R) as usize]);
    assert_eq!(fs.getattr(ino).unwrap().blocks, 0);
}

#[test]
fn open_with_truncate_empties_the_file() {
    let (_dev, fs) = fresh();
    let ino = create_file(&fs, ROOT, b"o", &pattern(1, 150_000));
    fs.open(ino, false).unwrap();
    assert_eq!(fs.getattr(ino).unwrap().size, 150_000);
    fs.release(ino).unwrap();
    fs.open(ino, true).unwrap();
    let a = fs.getattr(ino).unwrap();
    assert_eq!(a.size, 0);
    assert_eq!(a.blocks, 0);
    assert!(fs.read(ino, 0, 100).unwrap().is_empty());
    fs.write(ino, 0, b"new").unwrap();
    fs.release(ino).unwrap();
    same(read_all(&fs, ino), b"new");
    // Growing it again shows no trace of the old content.
    set_size(&fs, ino, 150_000);
    let got = read_all(&fs, ino);
    assert_eq!(&got[..3], b"new");
    assert!(got[3..].iter().all(|b| *b == 0));
}

#[test]
fn unlinked_open_file_lives_until_release() {
    let (dev, fs) = fresh();
    let data = pattern(7, 100_000);
    let ino = create_file(&fs, ROOT, b"u", &data);
    fs.open(ino, false).unwrap();
    fs.open(ino, false).unwrap();
    fs.unlink(ROOT, b"u").unwrap();
    assert_err!(fs.lookup(ROOT, b"u"), FsError::NotFound);
    assert!(names(&fs, ROOT).is_empty());
    let a = fs.getattr(ino).unwrap();
    assert_eq!(a.nlink, 0);
    assert_eq!(a.size, 100_000);
    same(read_all(&fs, ino), &data);
    fs.write(ino, 100_000, b"more").unwrap();
    fs.release(ino).unwrap();
    let mut want = data.clone();
    want.extend_from_slice(b"more");
    same(read_all(&fs, ino), &want);
    fs.release(ino).unwrap();
    assert_err!(fs.getattr(ino), FsError::NotFound);
    assert_err!(fs.read(ino, 0, 1), FsError::NotFound);
    // The name can be reused at once.
    let again = create_file(&fs, ROOT, b"u", b"x");
    same(read_all(&fs, again), b"x");

    // An orphan left open at unmount is reclaimed by the next mount.
    let ino2 = create_file(&fs, ROOT, b"orphan", &pattern(8, 5000));
    fs.open(ino2, false).unwrap();
    fs.unlink(ROOT, b"orphan").unwrap();
    let (_dev, fs) = close_and_remount(&dev, fs);
    assert!(
        fs.notes()
            .iter()
            .any(|n| n.contains("reclaimed 1 orphaned inode")),
        "{:?}",
        fs.notes()
    );
    assert_err!(fs.getattr(ino2), FsError::NotFound);
    same(read_all(&fs, again), b"x");
}

#[test]
fn fallocate_punch_hole_and_zero_range() {
    let (dev, fs) = fresh();
    let data = pattern(3, (3 * R) as usize);
    let f = create_file(&fs, ROOT, b"f", &data);
    let mut model = data.clone();
    let keep_punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

    // Across a record boundary, partial on both sides.
    fs.fallocate(f, R / 2, R, keep_punch).unwrap();
    model[(R / 2) as usize..(3 * R / 2) as usize].fill(0);
    same(read_all(&fs, f), &model);
    assert_eq!(fs.getattr(f).unwrap().size, 3 * R);
    assert_eq!(fs.getattr(f).unwrap().blocks, 48 * 8);
    // A whole record goes away.
    fs.fallocate(f, 2 * R, R, keep_punch).unwrap();
    model[(2 * R) as usize..].fill(0);
    same(read_all(&fs, f), &model);
    assert_eq!(fs.getattr(f).unwrap().blocks, 32 * 8);
    assert_eq!(fs.lseek(f, 3 * R / 2, SEEK_DATA).unwrap(), 3 * R / 2);
    // Zeroing the rest of record 1 drops it too.
    fs.fallocate(f, R, R, keep_punch).unwrap();
    model[R as usize..(2 * R) as usize].fill(0);
    same(read_all(&fs, f), &model);
    assert_eq!(fs.getattr(f).unwrap().blocks, 16 * 8);
    assert_err!(fs.lseek(f, R + 1, SEEK_DATA), FsError::NoSuchOffset);
    // Punching past the end changes nothing, not even the size.
    fs.fallocate(f, 3 * R - 10, 10 * R, keep_punch).unwrap();
    assert_eq!(fs.getattr(f).unwrap().size, 3 * R);
    same(read_all(&fs, f), &model);
    // Punch needs KEEP_SIZE; unknown modes are refused.
    assert_err!(
        fs.fallocate(f, 0, 10, FALLOC_FL_PUNCH_HOLE),
        FsError::NotSupported
    );
    assert_err!(fs.fallocate(f, 0, 10, 0x40), FsError::NotSupported);
    assert_err!(fs.fallocate(f, 0, 0, 0), FsError::Invalid(_));

    // Zero range inside, then past the end (extends the size), then with KEEP_SIZE.
    fs.fallocate(f, 100, 50, FALLOC_FL_ZERO_RANGE).unwrap();
    model[100..150].fill(0);
    same(read_all(&fs, f), &model);
    fs.fallocate(f, 3 * R - 5, R, FALLOC_FL_ZERO_RANGE).unwrap();
    model.resize((4 * R - 5) as usize, 0);
    assert_eq!(fs.getattr(f).unwrap().size, 4 * R - 5);
    same(read_all(&fs, f), &model);
    fs.fallocate(f, 4 * R, R, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)
        .unwrap();
    assert_eq!(fs.getattr(f).unwrap().size, 4 * R - 5);
    // Plain allocation extends the size unless told to keep it.
    fs.fallocate(f, 4 * R, 1000, FALLOC_FL_KEEP_SIZE).unwrap();
    assert_eq!(fs.getattr(f).unwrap().size, 4 * R - 5);
    fs.fallocate(f, 4 * R, 1000, 0).unwrap();
    model.resize((4 * R + 1000) as usize, 0);
    assert_eq!(fs.getattr(f).unwrap().size, 4 * R + 1000);
    same(read_all(&fs, f), &model);
    assert_err!(fs.fallocate(ROOT, 0, 10, 0), FsError::IsDir);

    let (_dev, fs) = close_and_remount(&dev, fs);
    same(read_all(&fs, f), &model);
}
