//! Copies that share records (`copy_file_range`): what is shared and what is copied,
//! that each file changes alone afterwards, that a record is freed with its last
//! reference and never before, and that fsck's walk agrees with the counts kept —
//! across remounts and power cuts.

use super::*;
use crate::fs::CopyOutcome;

const R: u64 = 64 << 10;

fn copy(fs: &Filesystem, src: u64, so: u64, dst: u64, d: u64, len: u64) -> CopyOutcome {
    fs.copy_file_range(src, so, dst, d, len).unwrap()
}

#[test]
fn a_whole_file_clone_shares_every_record_and_each_file_then_changes_alone() {
    let (dev, fs) = fresh();
    let data = pattern(3, (40 * R + 1234) as usize);
    let a = create_file(&fs, ROOT, b"a", &data);
    fs.sync().unwrap();
    let before = used(&fs);
    let b = create_file(&fs, ROOT, b"b", &[]);
    let done = copy(&fs, a, 0, b, 0, u64::MAX);
    assert_eq!(done.bytes, data.len() as u64);
    assert_eq!(done.shared_records, 41, "{done:?}");
    assert_eq!(done.copied_bytes, 0);
    fs.sync().unwrap();
    assert!(used(&fs) <= before + 2, "{} -> {}", before, used(&fs));
    same(read_all(&fs, b), &data);
    fsck_clean(&dev);

    // A write to the clone changes the clone only.
    fs.write(b, 5 * R + 10, b"changed").unwrap();
    let mut changed = data.clone();
    changed[(5 * R + 10) as usize..(5 * R + 17) as usize].copy_from_slice(b"changed");
    same(read_all(&fs, b), &changed);
    same(read_all(&fs, a), &data);
    let (dev, fs) = close_and_remount(&dev, fs);
    same(read_all(&fs, b), &changed);
    same(read_all(&fs, a), &data);
    fsck_clean(&dev);

    // The original goes: its records live on in the clone. Then the clone goes: every
    // block comes back.
    let base = {
        let f = create_file(&fs, ROOT, b"c", &[]);
        fs.unlink(ROOT, b"c").unwrap();
        let _ = f;
        fs.sync().unwrap();
        used(&fs)
    };
    fs.unlink(ROOT, b"a").unwrap();
    fs.sync().unwrap();
    same(read_all(&fs, b), &changed);
    // Only the record the clone rewrote was the original's alone.
    let own = R / BLOCK_SIZE as u64;
    assert!(used(&fs) + own + 3 >= base, "shared records freed early");
    fsck_clean(&dev);
    fs.unlink(ROOT, b"b").unwrap();
    fs.sync().unwrap();
    assert!(used(&fs) + 40 < before, "{} vs {}", used(&fs), before);
    fsck_clean(&dev);
}

#[test]
fn unaligned_and_partial_copies_match_a_byte_model() {
    let (dev, fs) = fresh();
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let names: [&[u8]; 3] = [b"f0", b"f1", b"f2"];
    let mut model: Vec<Vec<u8>> = Vec::new();
    let mut inos = Vec::new();
    for (k, n) in names.iter().enumerate() {
        let d = pattern(k as u8 + 1, (3 * R + 777 * k as u64) as usize);
        inos.push(create_file(&fs, ROOT, n, &d));
        model.push(d);
    }
    let mut shared = 0;
    for step in 0..300 {
        let (s, t) = (rnd(3) as usize, rnd(3) as usize);
        match rnd(10) {
            0 => {
                let at = rnd(5 * R);
                let d = pattern(step as u8, rnd(R) as usize + 1);
                fs.write(inos[t], at, &d).unwrap();
                let m = &mut model[t];
                if m.len() < at as usize + d.len() {
                    m.resize(at as usize + d.len(), 0);
                }
                m[at as usize..at as usize + d.len()].copy_from_slice(&d);
            }
            1 => {
                let size = rnd(5 * R);
                fs.setattr(
                    inos[t],
                    &SetAttr {
                        size: Some(size),
                        ..Default::default()
                    },
                    Caller::ROOT,
                )
                .unwrap();
                model[t].resize(size as usize, 0);
            }
            _ => {
                // Mostly aligned (shares), sometimes not (bytes).
                let align = if rnd(3) == 0 { 1 } else { R };
                let so = rnd(4) * R + rnd(R) / align * align;
                let d = rnd(4) * R + if align == 1 { rnd(R) } else { 0 };
                let len = if rnd(2) == 0 { rnd(3 * R) } else { u64::MAX };
                let so = so.min(model[s].len() as u64);
                let overlap = s == t && {
                    let n = len.min(model[s].len() as u64 - so);
                    so < d + n && d < so + n
                };
                if overlap {
                    assert!(fs.copy_file_range(inos[s], so, inos[t], d, len).is_err());
                    continue;
                }
                let done = copy(&fs, inos[s], so, inos[t], d, len);
                let n = len.min(model[s].len() as u64 - so) as usize;
                assert_eq!(done.bytes as usize, n);
                shared += done.shared_records;
                let piece = model[s][so as usize..so as usize + n].to_vec();
                let m = &mut model[t];
                if n > 0 {
                    if m.len() < d as usize + n {
                        m.resize(d as usize + n, 0);
                    }
                    m[d as usize..d as usize + n].copy_from_slice(&piece);
                }
            }
        }
        if step % 50 == 49 {
            fs.sync().unwrap();
            fsck_clean(&dev);
        }
        for (k, ino) in inos.iter().enumerate() {
            assert_eq!(
                fs.getattr(*ino).unwrap().size,
                model[k].len() as u64,
                "step {step}"
            );
        }
    }
    assert!(shared > 100, "only {shared} records shared");
    for (k, ino) in inos.iter().enumerate() {
        same(read_all(&fs, *ino), &model[k]);
    }
    let (dev, fs) = close_and_remount(&dev, fs);
    fsck_clean(&dev);
    for (k, n) in names.iter().enumerate() {
        let ino = fs.lookup(ROOT, n).unwrap().ino;
        same(read_all(&fs, ino), &model[k]);
        fs.unlink(ROOT, n).unwrap();
    }
    fs.sync().unwrap();
    fsck_clean(&dev);
}

/// A power cut anywhere in or after a clone leaves either no clone or a whole one, and
/// counts that fsck's walk confirms; nothing of the original is lost.
#[test]
fn power_cuts_around_a_clone_leave_counts_fsck_confirms() {
    let (dev, fs) = fresh();
    let data = pattern(9, (12 * R) as usize);
    let a = create_file(&fs, ROOT, b"a", &data);
    fs.fsync(a).unwrap();
    let b = create_file(&fs, ROOT, b"b", &[]);
    fs.fsync(b).unwrap();
    copy(&fs, a, 0, b, 0, u64::MAX);
    fs.write(a, 0, b"after").unwrap();
    fs.fsync(b).unwrap();
    let mut after = data.clone();
    after[..5].copy_from_slice(b"after");
    for seed in 0..40 {
        let (_d, fs) = cut_checked_and_mounted(&dev, seed);
        let a = fs.lookup(ROOT, b"a").unwrap().ino;
        let b = fs.lookup(ROOT, b"b").unwrap().ino;
        let got_a = read_all(&fs, a);
        assert!(got_a == data || got_a == after, "seed {seed}");
        // fsync of b made the clone durable.
        same(read_all(&fs, b), &data);
    }
}

/// Scrub reads a shared record once, and a damaged one is lost in every file that
/// holds it: each is named.
#[test]
fn scrub_reads_a_shared_record_once_and_names_every_file_holding_it() {
    let (dev, fs) = fresh();
    let data = pattern(5, (4 * R) as usize);
    let a = create_file(&fs, ROOT, b"a", &data);
    let b = create_file(&fs, ROOT, b"b", &[]);
    copy(&fs, a, 0, b, 0, u64::MAX);
    fs.sync().unwrap();
    let block = {
        let g = fs.lock();
        g.vol.records(Ino::new(a as u32))[1].1.block
    };
    fs.close().unwrap();
    drop(fs);
    let mut img = dev.volatile_image();
    img[block as usize * BLOCK_SIZE + 10] ^= 0x5A;
    let (_d, fs) = mount_image(img);
    let r = fs.scrub(true, &mut |_| true).unwrap();
    assert_eq!(r.damaged_copies, 1, "{r:?}");
    assert_eq!(r.progress.bytes_read, 4 * R, "each record read once");
    let named: Vec<&[u8]> = r.unrepaired.iter().map(|f| &f.path[..]).collect();
    assert_eq!(named, [&b"/a"[..], b"/b"], "{r:?}");
    assert!(r.unrepaired.iter().all(|f| f.ranges == [(R, 2 * R)]));
}
