//! Snapshots through a real mount: `gpufs snapshot create|list|delete|rollback`,
//! `gpufs diff` and `gpufs search --snapshot|--all-snapshots`, their
//! exit codes, browsing `.gpufs/snapshots/NAME/` (contents as they were, the original
//! permissions, EROFS for writes, `cp` out of it), space given back by delete, and
//! everything surviving a remount; fsck clean after unmount.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{assert_fsck, gpufs, is_mounted, run, Rng, Scratch};

fn used_bytes(mp: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(mp).unwrap();
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

fn snapshot(args: &[&str], mp: &Path) -> std::process::Output {
    let mut cmd = gpufs();
    cmd.arg("snapshot").arg(args[0]).arg(mp).args(&args[1..]);
    run(&mut cmd)
}

fn fsync(p: &Path) {
    fs::File::open(p).unwrap().sync_all().unwrap();
}

/// Mounts `img` at `mp` as a daemon (a rollback mounts it again the same way).
fn mount(img: &Path, mp: &Path) {
    fs::create_dir_all(mp).unwrap();
    let o = run(gpufs().arg("mount").arg(img).arg(mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(is_mounted(mp));
}

fn unmount(mp: &Path) {
    let o = run(gpufs().arg("unmount").arg(mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn snapshots_are_made_browsed_rolled_back_and_deleted_from_the_command_line() {
    let s = Scratch::new();
    let img = s.mkfs("s.img", "1G");
    let mp = s.path("mnt");
    mount(&img, &mp);
    let m = |rel: &str| mp.join(rel);
    let data = Rng(5).bytes(8 << 20);
    fs::create_dir(m("dir")).unwrap();
    fs::write(m("dir/big"), &data).unwrap();
    fs::write(m("secret"), b"for root\n").unwrap();
    fs::set_permissions(m("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fsync(&m("dir/big"));

    let o = snapshot(&["create", "before", "--json"], &mp);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let made: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(made["name"], "before");
    // Refusals, each with its own exit status.
    assert_eq!(snapshot(&["create", "before"], &mp).status.code(), Some(3));
    assert_eq!(snapshot(&["create", "a/b"], &mp).status.code(), Some(2));
    assert_eq!(snapshot(&["delete", "nothing"], &mp).status.code(), Some(4));
    assert_eq!(
        snapshot(&["list"], &s.path("")).status.code(),
        Some(8),
        "a directory that is not a mount"
    );

    // Changes after the snapshot.
    let before = used_bytes(&mp);
    fs::write(m("dir/big"), Rng(6).bytes(8 << 20)).unwrap();
    fs::remove_file(m("secret")).unwrap();
    fs::write(m("after"), b"new\n").unwrap();
    fsync(&m("dir/big"));
    fsync(&m("after"));
    // The old big file is held for the snapshot: df grew by about its size.
    let grown = used_bytes(&mp) - before;
    assert!(grown >= 7 << 20, "df grew by {grown}");

    // Browsing: as it was, read-only, with the original permissions.
    let snap = m(".gpufs/snapshots/before");
    assert_eq!(fs::read(snap.join("dir/big")).unwrap(), data);
    assert_eq!(fs::read(snap.join("secret")).unwrap(), b"for root\n");
    let mode = fs::metadata(snap.join("secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!snap.join("after").exists());
    let err = fs::write(snap.join("dir/big"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = fs::create_dir(snap.join("new")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let cp = run(Command::new("cp")
        .arg(snap.join("dir/big"))
        .arg(m("restored")));
    assert!(
        cp.status.success(),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    assert_eq!(fs::read(m("restored")).unwrap(), data);
    fs::remove_file(m("restored")).unwrap();
    let names: Vec<String> = fs::read_dir(m(".gpufs/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["before"]);

    // What changed since the snapshot, as `gpufs diff` says it.
    let o = run(gpufs().arg("diff").arg(&mp).arg("before"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = |kind: &str, rel: &str| format!("{kind}\t{}", m(rel).display());
    for want in [
        line("M", "dir/big"),
        line("-", "secret"),
        line("+", "after"),
    ] {
        assert!(said.lines().any(|l| l == want), "{want:?} not in:\n{said}");
    }
    assert_eq!(
        run(gpufs().arg("diff").arg(&mp).arg("nothing"))
            .status
            .code(),
        Some(4)
    );

    // Search in a snapshot: the deleted file is found there, labelled by where it reads.
    let o = run(gpufs()
        .arg("search")
        .arg(&mp)
        .arg("secret")
        .args(["--snapshot", "before"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        snap.join("secret").display().to_string()
    );
    let o = run(gpufs().arg("search").arg(&mp).arg("secret"));
    assert!(String::from_utf8_lossy(&o.stdout).trim().is_empty());
    let o = run(gpufs()
        .arg("search")
        .arg(&mp)
        .arg("big")
        .arg("--all-snapshots")
        .arg("-c"));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");
    let o = run(gpufs()
        .arg("search")
        .arg(&mp)
        .arg("x")
        .args(["--snapshot", "nothing"]));
    assert_eq!(o.status.code(), Some(4));

    // A second snapshot; the list shows both, the first holding the old big file alone.
    assert!(snapshot(&["create", "after"], &mp).status.success());
    let o = snapshot(&["list", "--json"], &mp);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "before");
    assert!(
        rows[0]["unique_bytes"].as_u64().unwrap() >= 8 << 20,
        "{rows:?}"
    );

    // Survives a remount.
    unmount(&mp);
    assert_fsck(&img, 0);
    mount(&img, &mp);
    assert_eq!(
        fs::read(m(".gpufs/snapshots/before/dir/big")).unwrap(),
        data
    );

    // Rollback: busy while a file is open (exit 5, nothing changed), then done.
    let open = fs::File::open(m("after")).unwrap();
    assert_eq!(
        snapshot(&["rollback", "before"], &mp).status.code(),
        Some(5)
    );
    drop(open);
    assert!(m("after").exists());
    let o = snapshot(&["rollback", "before"], &mp);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(is_mounted(&mp));
    assert_eq!(fs::read(m("dir/big")).unwrap(), data);
    assert!(!m("after").exists());
    assert!(
        m(".gpufs/snapshots/after").exists(),
        "the newer snapshot survives"
    );

    // Deleting both snapshots gives their space back.
    let held = used_bytes(&mp);
    assert!(snapshot(&["delete", "after"], &mp).status.success());
    assert!(snapshot(&["delete", "before"], &mp).status.success());
    let freed = held - used_bytes(&mp);
    assert!(freed >= 7 << 20, "deleting freed {freed} bytes");
    unmount(&mp);
    assert_fsck(&img, 0);
}
