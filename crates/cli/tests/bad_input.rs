//! Check (f): bad images give one clear line and no panic; a damaged superblock slot is
//! survived and reported.

mod common;

use std::fs;
use std::io::{Seek, SeekFrom, Write};

use common::{gpufs, run, Mounted, Rng, Scratch};

/// Mounting `img` fails with exit code 1 and one line of stderr containing `expect`.
fn refuses(s: &Scratch, img: &std::path::Path, expect: &str) {
    let mp = s.path("mnt");
    fs::create_dir_all(&mp).unwrap();
    let o = run(gpufs().arg("mount").arg(img).arg(&mp));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "mount of {} should fail: {err}",
        img.display()
    );
    assert!(!common::is_mounted(&mp));
    assert_eq!(err.trim().lines().count(), 1, "want one line, got: {err}");
    assert!(err.contains(expect), "{err:?} lacks {expect:?}");
    assert!(!err.contains("panicked"));
}

#[test]
fn zeroed_random_foreign_and_truncated_images_are_refused() {
    let s = Scratch::new();
    let zero = s.path("zero");
    fs::File::create(&zero).unwrap().set_len(16 << 20).unwrap();
    refuses(&s, &zero, "all zero");

    let rnd = s.path("random");
    fs::write(&rnd, Rng(3).bytes(8 << 20)).unwrap();
    refuses(&s, &rnd, "not a gpufs image");

    let ext4 = s.path("ext4");
    fs::File::create(&ext4).unwrap().set_len(32 << 20).unwrap();
    let mk = run(std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&ext4));
    assert!(
        mk.status.success(),
        "mkfs.ext4 (e2fsprogs) is needed for this test"
    );
    refuses(&s, &ext4, "ext2/ext3/ext4");

    let img = s.mkfs("trunc", "64M");
    fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(10 << 20)
        .unwrap();
    refuses(&s, &img, "truncated");

    let tiny = s.path("tiny");
    fs::write(&tiny, b"abc").unwrap();
    refuses(&s, &tiny, "not a gpufs image");
}

fn damage(img: &std::path::Path, offset: u64) {
    let mut f = fs::OpenOptions::new().write(true).open(img).unwrap();
    f.seek(SeekFrom::Start(offset + 100)).unwrap();
    f.write_all(&[0xAA; 64]).unwrap();
}

#[test]
fn one_damaged_superblock_is_survived_both_are_refused() {
    let s = Scratch::new();
    let img = s.mkfs("img", "64M");
    let m = Mounted::new(&img, &s.path("mnt"));
    fs::write(m.path("keep"), b"kept").unwrap();
    m.unmount();

    for slot in [0u64, 1] {
        damage(&img, slot * 4096);
        common::assert_fsck(&img, 1);
        let mp = s.path("mnt");
        let o = run(gpufs().arg("mount").arg(&img).arg(&mp));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "mount with slot {slot} damaged: {err}");
        assert!(err.contains(&format!("slot {slot} is damaged")), "{err}");
        assert_eq!(fs::read(mp.join("keep")).unwrap(), b"kept");
        let u = run(gpufs().arg("unmount").arg(&mp));
        assert!(u.status.success());
        // The mount rewrote the damaged slot.
        common::assert_fsck(&img, 0);
    }
    // Both slots at the start: the third copy, in the image's last block, mounts it.
    damage(&img, 0);
    damage(&img, 4096);
    let mp = s.path("mnt");
    let o = run(gpufs().arg("mount").arg(&img).arg(&mp));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "mount with slots 0 and 1 damaged: {err}"
    );
    assert!(err.contains("image's last block"), "{err}");
    assert_eq!(fs::read(mp.join("keep")).unwrap(), b"kept");
    assert!(run(gpufs().arg("unmount").arg(&mp)).status.success());
    common::assert_fsck(&img, 0);
    // All three: refused.
    let last = fs::metadata(&img).unwrap().len() - 4096;
    for at in [0, 4096, last] {
        damage(&img, at);
    }
    refuses(&s, &img, "every gpufs superblock copy is damaged");
}

#[test]
fn mkfs_refuses_to_overwrite_without_force() {
    let s = Scratch::new();
    let img = s.mkfs("img", "16M");
    let o = run(gpufs().arg("mkfs").arg(&img).arg("--size").arg("16M"));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let o = run(gpufs().args(["mkfs", "--force", "--size", "16M"]).arg(&img));
    assert!(o.status.success());
}

/// One writer per image: while an image is mounted, a second mount of it (elsewhere),
/// `mkfs --force` and `fsck` are refused with a message naming the mount point and leave
/// it untouched; the first mount keeps working, and after it is unmounted all of them
/// work again.
#[test]
fn a_mounted_image_refuses_a_second_mount_mkfs_and_fsck() {
    let s = Scratch::new();
    let img = s.mkfs("busy", "64M");
    let first = s.path("first");
    let m = Mounted::new(&img, &first);
    fs::write(m.path("kept"), b"still here").unwrap();
    let named = |o: &std::process::Output, code: i32, what: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{what} of a mounted image: {err}"
        );
        assert!(
            err.contains("is in use: mounted at") && err.contains(first.to_str().unwrap()),
            "{what}: {err:?} does not name the mount"
        );
    };
    let second = s.path("second");
    fs::create_dir_all(&second).unwrap();
    named(
        &run(gpufs().arg("mount").arg(&img).arg(&second)),
        1,
        "mount",
    );
    assert!(!common::is_mounted(&second));
    named(
        &run(gpufs()
            .args(["mount", "-f", "--read-only"])
            .arg(&img)
            .arg(&second)),
        1,
        "read-only mount",
    );
    named(
        &run(gpufs().arg("mkfs").arg(&img).arg("--force")),
        1,
        "mkfs --force",
    );
    named(&run(gpufs().arg("fsck").arg(&img)), 8, "fsck");
    assert_eq!(fs::read(m.path("kept")).unwrap(), b"still here");
    fs::write(m.path("after"), b"written after the refusals").unwrap();
    m.unmount();
    common::assert_fsck(&img, 0);
    let again = Mounted::new(&img, &second);
    assert_eq!(fs::read(again.path("kept")).unwrap(), b"still here");
    assert_eq!(
        fs::read(again.path("after")).unwrap(),
        b"written after the refusals"
    );
    again.unmount();
}
