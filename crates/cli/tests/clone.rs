//! Copies that share records, through a real mount: plain `cp` (coreutils tries FICLONE,
//! which FUSE refuses, then copy_file_range, which the daemon answers by sharing) and
//! `gpufs clone [-r]`; df barely moves, each copy then changes alone, and fsck's walk
//! agrees with the reference counts after unmount.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;

use common::{assert_fsck, gpufs, run, Mounted, Rng, Scratch};

fn used_bytes(mp: &std::path::Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(mp).unwrap();
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

#[test]
fn cp_and_gpufs_clone_share_records_and_copies_change_alone() {
    let s = Scratch::new();
    let img = s.mkfs("c.img", "1G");
    let m = Mounted::new(&img, &s.path("mnt"));
    let data = Rng(11).bytes(64 << 20);
    fs::write(m.path("big"), &data).unwrap();
    fs::File::open(m.path("big")).unwrap().sync_all().unwrap();
    let before = used_bytes(&m.mp);

    // Plain cp: the kernel's copy_file_range reaches the daemon.
    let cp = run(Command::new("cp").arg(m.path("big")).arg(m.path("copy")));
    assert!(
        cp.status.success(),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    assert_eq!(fs::read(m.path("copy")).unwrap(), data);
    fs::File::open(m.path("copy")).unwrap().sync_all().unwrap();
    let grown = used_bytes(&m.mp) - before;
    assert!(grown < data.len() as u64 / 100, "cp grew df by {grown}");
    // du counts the shared records once in the directory's shared bytes.
    let du = run(gpufs().args(["du", "-s", "--json"]).arg(&m.mp));
    let row: serde_json::Value = serde_json::from_slice(&du.stdout).unwrap();
    let shared = row["shared"].as_u64().unwrap();
    assert!(
        shared >= data.len() as u64 && shared < 2 * data.len() as u64,
        "{row}"
    );

    // A tree, with gpufs clone -r.
    fs::create_dir_all(m.path("tree/sub")).unwrap();
    fs::write(m.path("tree/sub/f"), &data[..3 << 20]).unwrap();
    fs::write(m.path("tree/small"), b"small\n").unwrap();
    fs::set_permissions(m.path("tree/small"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("sub/f", m.path("tree/link")).unwrap();
    let o = run(gpufs()
        .args(["clone", "-r", "--json"])
        .arg(m.path("tree"))
        .arg(m.path("tree2")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let made: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(made["files"], 2);
    assert_eq!(made["symlinks"], 1);
    assert_eq!(fs::read(m.path("tree2/sub/f")).unwrap(), &data[..3 << 20]);
    assert_eq!(
        fs::read_link(m.path("tree2/link")).unwrap().to_str(),
        Some("sub/f")
    );
    let mode = fs::metadata(m.path("tree2/small"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Each copy changes alone.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("copy"))
        .unwrap();
    std::io::Write::write_all(
        &mut std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(12345))
            .map(|_| f)
            .unwrap(),
        b"only here",
    )
    .unwrap();
    let mut changed = data.clone();
    changed[12345..12354].copy_from_slice(b"only here");
    assert_eq!(fs::read(m.path("copy")).unwrap(), changed);
    assert_eq!(fs::read(m.path("big")).unwrap(), data);

    // Refusals: a directory without -r (usage, 2); a destination outside the mount (1).
    let o = run(gpufs().arg("clone").arg(m.path("tree")).arg(m.path("t3")));
    assert_eq!(o.status.code(), Some(2));
    let o = run(gpufs()
        .arg("clone")
        .arg(m.path("big"))
        .arg(s.path("outside")));
    assert_eq!(o.status.code(), Some(1));
    assert!(!s.path("outside").exists());
    m.unmount();
    assert_fsck(&img, 0);
}
