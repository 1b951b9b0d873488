//! A daemon killed with SIGKILL loses nothing that was fsync'd: the dead mount can be
//! cleared with `gpufs unmount`, fsck reports the journal to replay, and the next mount
//! replays it.

mod common;

use std::fs;
use std::io::Write;

use common::{Mounted, Rng, Scratch};

#[test]
fn fsynced_data_survives_a_killed_daemon() {
    let s = Scratch::new();
    let img = s.mkfs("img", "256M");
    let m = Mounted::new(&img, &s.path("mnt"));
    for i in 0..300 {
        fs::write(m.path(&format!("f{i}")), format!("file {i}")).unwrap();
    }
    let data = Rng(21).bytes(5 << 20);
    let mut f = fs::File::create(m.path("big")).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    drop(f);
    m.kill();

    let out = common::assert_fsck(&img, 1);
    assert!(out.contains("replayed"), "{out}");

    let m = Mounted::new(&img, &s.path("mnt"));
    assert_eq!(fs::read(m.path("big")).unwrap(), data);
    for i in 0..300 {
        assert_eq!(
            fs::read_to_string(m.path(&format!("f{i}"))).unwrap(),
            format!("file {i}")
        );
    }
    m.unmount();
    common::assert_fsck(&img, 0);
}

/// The superblock's in-use marker: a killed daemon leaves it (fsck says so, exit 1;
/// this machine's next mount takes it over); a marker naming another machine refuses
/// mount, fsck and `mkfs --force`, naming where it is mounted, until `-o force`; a clean
/// unmount clears it.
#[test]
fn another_machines_in_use_marker_refuses_mount_and_fsck() {
    use gpufs_format::Superblock;
    let s = Scratch::new();
    let img = s.mkfs("img", "64M");
    let m = Mounted::new(&img, &s.path("mnt"));
    let mut f = fs::File::create(m.path("f")).unwrap();
    f.write_all(b"kept").unwrap();
    f.sync_all().unwrap();
    drop(f);
    m.kill();
    let out = common::assert_fsck(&img, 1);
    assert!(out.contains("ended without unmounting"), "{out}");

    // Make the marker another machine's (as if the image were shared storage).
    let mut bytes = fs::read(&img).unwrap();
    for slot in 0..2 {
        let at = slot * 4096;
        if let Ok(mut sb) = Superblock::decode(&bytes[at..at + 4096]) {
            assert!(sb.in_use.is_held());
            sb.in_use.host = [0x5a; 16];
            bytes[at..at + 4096].copy_from_slice(&sb.encode());
        }
    }
    fs::write(&img, &bytes).unwrap();
    let mp = s.path("mnt");
    let out = common::run(common::gpufs().arg("mount").arg(&img).arg(&mp));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in use by another machine") && err.contains(&*mp.to_string_lossy()),
        "{err}"
    );
    assert!(!common::is_mounted(&mp));
    assert_eq!(
        fs::read(&img).unwrap(),
        bytes,
        "a refused mount changes nothing"
    );
    common::assert_fsck(&img, 8);
    let out = common::run(common::gpufs().args(["mkfs", "--force"]).arg(&img));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("in use by another machine"), "{err}");
    assert_eq!(
        fs::read(&img).unwrap(),
        bytes,
        "a refused mkfs changes nothing"
    );

    let m = Mounted::with_args(&img, &mp, &["-o", "force"]);
    assert_eq!(fs::read(m.path("f")).unwrap(), b"kept");
    m.unmount();
    common::assert_fsck(&img, 0);
}
