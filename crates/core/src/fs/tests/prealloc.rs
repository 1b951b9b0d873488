//! fallocate reserves space: df counts it, no other file can take it, the file's own
//! writes use it when the disk is otherwise full, it survives a remount, truncation and
//! unlink give it back, and a request larger than the free space fails reserving nothing.

use super::*;

const MIB: u64 = 1 << 20;
/// Blocks of 4 MiB.
const RESERVED: u64 = 4 * MIB / 4096;

fn avail(fs: &Filesystem) -> u64 {
    fs.statfs().bavail
}

/// Writes 64 KiB chunks of random bytes to a new file `name` until the disk is full;
/// returns its inode.
fn fill(fs: &Filesystem, name: &[u8]) -> u64 {
    let ino = fs.create(ROOT, name, 0o644, Caller::ROOT).unwrap().ino;
    let mut off = 0;
    for i in 0.. {
        match fs.write(ino, off, &random(i, 64 << 10)) {
            Ok(n) => off += u64::from(n),
            Err(FsError::NoSpace) => break,
            Err(e) => panic!("{e}"),
        }
    }
    fs.fsync(ino).unwrap();
    ino
}

#[test]
fn fallocate_reserves_space_only_the_file_can_use() {
    let (dev, fs) = fresh_sized(32 << 20);
    let a = fs.create(ROOT, b"a", 0o644, Caller::ROOT).unwrap().ino;
    let before = avail(&fs);
    fs.fallocate(a, 0, 4 * MIB, 0).unwrap();
    assert_eq!(fs.getattr(a).unwrap().size, 4 * MIB);
    // The blocks, and the checkpoint room for the records they will become.
    let reserved = before - avail(&fs);
    assert!(
        (RESERVED..RESERVED + 8).contains(&reserved),
        "df counts {reserved}"
    );
    // Again over the same range: nothing more.
    fs.fallocate(a, 0, 4 * MIB, 0).unwrap();
    assert_eq!(before - avail(&fs), reserved);

    // It survives a remount.
    let (dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(before - avail(&fs), reserved);

    // Another file fills everything else; the reserved file still writes all of it.
    fill(&fs, b"b");
    let data = random(99, 4 * MIB as usize);
    assert_eq!(fs.write(a, 0, &data).unwrap() as u64, 4 * MIB);
    fs.fsync(a).unwrap();
    same(read_all(&fs, a), &data);

    // Too much asked: ENOSPC, nothing reserved, the size unchanged.
    let c = fs.create(ROOT, b"c", 0o644, Caller::ROOT).unwrap().ino;
    let free = avail(&fs);
    assert_err!(fs.fallocate(c, 0, 64 * MIB, 0), FsError::NoSpace);
    assert_eq!(avail(&fs), free);
    assert_eq!(fs.getattr(c).unwrap().size, 0);
    fs.close().unwrap();
    drop(fs);
    fsck_clean(&dev);
}

#[test]
fn truncation_and_unlink_give_a_reservation_back() {
    let (dev, fs) = fresh_sized(32 << 20);
    let before = avail(&fs);
    let a = fs.create(ROOT, b"a", 0o644, Caller::ROOT).unwrap().ino;
    fs.fallocate(a, 0, 4 * MIB, FALLOC_FL_KEEP_SIZE).unwrap();
    assert_eq!(fs.getattr(a).unwrap().size, 0, "KEEP_SIZE");
    let reserved = before - avail(&fs);
    assert!(
        (RESERVED..RESERVED + 8).contains(&reserved),
        "df counts {reserved}"
    );
    // Writing half of it uses half (the rest stays reserved).
    fs.write(a, 0, &random(1, 2 * MIB as usize)).unwrap();
    fs.fsync(a).unwrap();
    let used = before - avail(&fs);
    assert!(
        (4 * MIB / 4096..=4 * MIB / 4096 + 16).contains(&used),
        "{used}"
    );
    // Truncation to 1 MiB trims what lies beyond; unlink gives back everything.
    set_size(&fs, a, MIB);
    fs.fsync(a).unwrap();
    let used = before - avail(&fs);
    assert!(used <= MIB / 4096 + 16, "{used}");
    fs.release(a).unwrap();
    fs.unlink(ROOT, b"a").unwrap();
    fs.fsync(ROOT).unwrap();
    let used = before - avail(&fs);
    assert!(used <= 16, "{used}");
    fs.close().unwrap();
    drop(fs);
    fsck_clean(&dev);
}
