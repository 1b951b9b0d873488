//! A full filesystem answers ENOSPC, stays consistent, and works again once space is
//! freed — through a real mount.

mod common;

use std::fs;
use std::io::Write;

use common::{Mounted, Rng, Scratch};

#[test]
fn filling_the_filesystem_gives_enospc_and_loses_nothing() {
    let s = Scratch::new();
    let img = s.mkfs("img", "16M");
    let m = Mounted::new(&img, &s.path("mnt"));
    let keep = Rng(11).bytes(300_000);
    fs::write(m.path("keep"), &keep).unwrap();

    let mut f = fs::File::create(m.path("filler")).unwrap();
    let chunk = Rng(12).bytes(1 << 20);
    let mut written = 0usize;
    let err = loop {
        match f.write(&chunk) {
            Ok(n) => written += n,
            Err(e) => break e,
        }
        assert!(
            written < 64 << 20,
            "a 16 MiB filesystem took {written} bytes"
        );
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(f);
    assert!(written > 8 << 20, "only {written} bytes fitted");
    // New names fail cleanly or succeed; either way the tree stays readable.
    let _ = fs::write(m.path("late"), b"x");
    assert_eq!(fs::read(m.path("keep")).unwrap(), keep);
    assert_eq!(
        fs::metadata(m.path("filler")).unwrap().len() as usize,
        written
    );

    // Freeing space makes room again.
    fs::remove_file(m.path("filler")).unwrap();
    fs::write(m.path("after"), Rng(13).bytes(4 << 20)).unwrap();
    m.unmount();

    common::assert_fsck(&img, 0);
    let m = Mounted::new(&img, &s.path("mnt"));
    assert_eq!(fs::read(m.path("keep")).unwrap(), keep);
    assert_eq!(fs::read(m.path("after")).unwrap(), Rng(13).bytes(4 << 20));
    m.unmount();
}
