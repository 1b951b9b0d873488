//! Mounting like any filesystem: `mount.fuse.gpufs` (the `gpufs` binary under the name
//! mount(8) runs for `-t fuse.gpufs`) and `gpufs mount -o`: the mount table says
//! `fuse.gpufs` with the image as source and the options given; plain `umount` leaves a
//! clean image; an unknown option is refused, nothing mounted, the image untouched.

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{gpufs, is_mounted, run, Scratch};

fn mount_line(mp: &std::path::Path) -> Option<String> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let want = mp.to_string_lossy().to_string();
    mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
        .map(str::to_string)
}

/// fsck once the daemon that plain `umount` ended has let go of the image.
fn fsck_when_released(img: &std::path::Path) -> i32 {
    let start = Instant::now();
    loop {
        let o = run(gpufs().arg("fsck").arg(img));
        let code = o.status.code().unwrap_or(-1);
        if code != 8 || start.elapsed() > Duration::from_secs(10) {
            return code;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_mount_helper_and_dash_o_mount_like_any_filesystem() {
    let s = Scratch::new();
    let img = s.mkfs("img", "64M");
    let mp = s.path("mnt");
    fs::create_dir_all(&mp).unwrap();
    let helper = s.path("mount.fuse.gpufs");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_gpufs"), &helper).unwrap();

    // As mount(8) runs it.
    let o = run(Command::new(&helper).arg(&img).arg(&mp).args([
        "-n",
        "-o",
        "rw,noatime,nodev,nofail",
        "-t",
        "fuse.gpufs",
    ]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = mount_line(&mp).expect("mounted");
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[0], img.to_string_lossy());
    assert_eq!(f[2], "fuse.gpufs", "{line}");
    assert!(f[3].contains("noatime") && f[3].contains("nodev"), "{line}");
    fs::write(mp.join("kept"), b"kept").unwrap();
    // Plain umount: the daemon writes its final checkpoint and lets go of the image.
    assert!(run(Command::new("umount").arg(&mp)).status.success());
    assert_eq!(fsck_when_released(&img), 0);

    // gpufs mount -o ro: read-only, the data there.
    let o = run(gpufs()
        .arg("mount")
        .arg(&img)
        .arg(&mp)
        .args(["-o", "ro,strictatime"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(mount_line(&mp)
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .starts_with("ro"));
    assert_eq!(fs::read(mp.join("kept")).unwrap(), b"kept");
    assert!(fs::write(mp.join("new"), b"x").is_err());
    assert!(run(gpufs().arg("unmount").arg(&mp)).status.success());

    // Unknown options: refused by name, nothing mounted, the image untouched.
    let before = fs::read(&img).unwrap();
    for args in [
        vec!["-o".to_string(), "rw,bogus".to_string()],
        vec!["-o".to_string(), "commit=never".to_string()],
    ] {
        let o = run(Command::new(&helper).arg(&img).arg(&mp).args(&args));
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("mount option"), "{err}");
        assert!(!is_mounted(&mp));
    }
    let o = run(Command::new(&helper).arg(&img));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(fs::read(&img).unwrap(), before);
}
