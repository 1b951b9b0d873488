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
