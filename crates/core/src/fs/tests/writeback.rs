//! The write-back record cache: small writes coalesce into one record write at the
//! commit, reads see buffered bytes, truncation and hole punching see them too, the
//! cache's bound is kept, and a full disk is reported at write time.

use gpufs_format::Compression;

use super::*;

fn mounted_with_cache(bytes: usize, cache: usize) -> (Arc<FaultDevice>, Filesystem) {
    let dev = Arc::new(FaultDevice::new(vec![0u8; bytes]));
    let d: Arc<dyn Device> = dev.clone();
    let opts = MkfsOptions {
        compression: Compression::None,
        ..MkfsOptions::default()
    };
    mkfs(d.clone(), &opts).unwrap();
    let open = OpenOptions {
        write_cache_bytes: cache,
        ..OpenOptions::default()
    };
    (dev.clone(), Filesystem::mount(d, open).unwrap())
}

fn placed(fs: &Filesystem) -> u64 {
    fs.counters().records.raw.records
}

#[test]
fn small_writes_to_one_record_become_one_record_write_at_the_commit() {
    let (dev, fs) = mounted_with_cache(64 << 20, 16 << 20);
    let ino = fs.create(ROOT, b"f", 0o644, Caller::ROOT).unwrap().ino;
    let mut model = vec![0u8; 2 * R as usize];
    for i in 0..32u64 {
        // 4 KiB writes in a scattered order over two records.
        let off = (i * 7 % 32) * 4096;
        let d = pattern(i as u8, 4096);
        fs.write(ino, off, &d).unwrap();
        model[off as usize..off as usize + 4096].copy_from_slice(&d);
    }
    // Buffered: nothing placed, every byte readable, st_blocks counts them.
    assert_eq!(placed(&fs), 0);
    same(read_all(&fs, ino), &model);
    assert_eq!(fs.getattr(ino).unwrap().blocks, 2 * R / 512);
    fs.fsync(ino).unwrap();
    assert_eq!(placed(&fs), 2);
    // Durable: a power cut now keeps it all.
    let (_d, fs2) = cut_checked_and_mounted(&dev, 1);
    let ino2 = fs2.lookup(ROOT, b"f").unwrap().ino;
    same(read_all(&fs2, ino2), &model);
}

#[test]
fn truncate_punch_and_seek_see_buffered_records() {
    let (_dev, fs) = mounted_with_cache(64 << 20, 16 << 20);
    let ino = fs.create(ROOT, b"f", 0o644, Caller::ROOT).unwrap().ino;
    let d = pattern(3, 3 * R as usize);
    fs.write(ino, 0, &d).unwrap();
    // Shrink into record 1, grow again: zeros past the cut.
    set_size(&fs, ino, R + 10);
    set_size(&fs, ino, 3 * R);
    let got = read_all(&fs, ino);
    same(&got[..(R + 10) as usize], &d[..(R + 10) as usize]);
    assert!(got[(R + 10) as usize..].iter().all(|b| *b == 0));
    // Punch record 0 out of the buffered data: a hole at once.
    fs.fallocate(ino, 0, R, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
        .unwrap();
    assert_eq!(fs.lseek(ino, 0, 3).unwrap(), R);
    // Writing zeros over buffered data leaves a hole, not a buffered record.
    fs.write(ino, R, &vec![0u8; R as usize]).unwrap();
    assert_err!(fs.lseek(ino, 0, 3), FsError::NoSuchOffset);
    // Unlinked while buffered: nothing left behind.
    fs.write(ino, 0, &d).unwrap();
    fs.unlink(ROOT, b"f").unwrap();
    fs.sync().unwrap();
    assert!(fs.lookup(ROOT, b"f").is_err());
}

#[test]
fn the_cache_keeps_its_bound_and_a_full_disk_fails_the_write() {
    let (_dev, fs) = mounted_with_cache(16 << 20, 1 << 20);
    let ino = fs.create(ROOT, b"f", 0o644, Caller::ROOT).unwrap().ino;
    let mut written = 0u64;
    let err = loop {
        let d = pattern(written as u8, R as usize);
        match fs.write(ino, written, &d) {
            Ok(n) => written += u64::from(n),
            Err(e) => break e,
        }
        // Past the 1 MiB bound, records are placed without waiting for a commit.
        if written == 4 << 20 {
            assert!(placed(&fs) >= 48, "{}", placed(&fs));
        }
    };
    assert!(matches!(err, FsError::NoSpace), "{err:?}");
    assert!(written > 8 << 20, "only {written} bytes fit");
    // What was accepted is all there, and fsync succeeds: space was reserved.
    fs.fsync(ino).unwrap();
    assert_eq!(fs.getattr(ino).unwrap().size, written);
    let got = read_all(&fs, ino);
    for (i, chunk) in got.chunks(R as usize).enumerate() {
        same(chunk, pattern((i as u64 * R) as u8, chunk.len()));
    }
}
