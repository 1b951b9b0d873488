//! Replication through real mounts: `gpufs send` (full and `--from`) into `gpufs
//! receive` on a mount and on an unmounted image; the received tree equals the sent
//! snapshot; an incremental stream is small; every refusal (snapshot exists, base
//! missing, target changed, damaged or truncated stream, busy mount, no such snapshot,
//! not a mount) has its exit status and changes nothing; fsck clean after.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{assert_fsck, gpufs, is_mounted, run, Rng, Scratch};

fn mount(img: &Path, mp: &Path) {
    fs::create_dir_all(mp).unwrap();
    let o = run(gpufs().arg("mount").arg(img).arg(mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn unmount(mp: &Path) {
    let o = run(gpufs().arg("unmount").arg(mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn snapshot(mp: &Path, name: &str) {
    let o = run(gpufs().args(["snapshot", "create"]).arg(mp).arg(name));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn snapshots(mp: &Path) -> Vec<String> {
    let o = run(gpufs().args(["snapshot", "list", "--json"]).arg(mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].to_string())
        .map(|n| n.trim_matches('"').to_string())
        .collect()
}

/// `gpufs send MP NAME [--from FROM] > OUT`: its exit status.
fn send(mp: &Path, name: &str, from: Option<&str>, out: &Path) -> Option<i32> {
    let mut cmd = gpufs();
    cmd.arg("send").arg(mp).arg(name);
    if let Some(f) = from {
        cmd.arg("--from").arg(f);
    }
    cmd.stdout(fs::File::create(out).unwrap());
    let o = cmd.output().unwrap();
    if !o.status.success() {
        eprintln!("send: {}", String::from_utf8_lossy(&o.stderr));
    }
    o.status.code()
}

/// `gpufs receive TARGET < STREAM`: its exit status and standard error.
fn receive(target: &Path, stream: &Path) -> (Option<i32>, String) {
    let o = gpufs()
        .arg("receive")
        .arg(target)
        .stdin(fs::File::open(stream).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every path under `root` with what it is: bytes, a link's target, or a directory.
fn tree(root: &Path) -> Vec<(PathBuf, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel.starts_with(".gpufs") {
                continue;
            }
            let meta = fs::symlink_metadata(&p).unwrap();
            let mode = format!(
                "{:o}",
                std::os::unix::fs::PermissionsExt::mode(&meta.permissions())
            );
            if meta.is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.push((
                    rel,
                    format!("link {mode}"),
                    t.into_os_string().into_encoded_bytes(),
                ));
            } else if meta.is_dir() {
                out.push((rel, format!("dir {mode}"), Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, format!("file {mode}"), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn snapshots_travel_by_stream_and_bad_streams_change_nothing() {
    let s = Scratch::new();
    let (src_img, dst_img) = (s.mkfs("src.img", "512M"), s.mkfs("dst.img", "512M"));
    let (src, dst) = (s.path("src"), s.path("dst"));
    mount(&src_img, &src);
    mount(&dst_img, &dst);
    fs::create_dir(src.join("dir")).unwrap();
    fs::write(src.join("dir/big"), Rng(1).bytes(3 << 20)).unwrap();
    fs::write(src.join("text"), "gpufs replication ".repeat(20_000)).unwrap();
    symlink("dir/big", src.join("link")).unwrap();
    fs::hard_link(src.join("text"), src.join("dir/text-again")).unwrap();
    xattr_set(&src.join("dir"), "user.kept", "yes");
    snapshot(&src, "one");

    let one = s.path("one.stream");
    assert_eq!(send(&src, "one", None, &one), Some(0));
    let (code, err) = receive(&dst, &one);
    assert_eq!(code, Some(0), "{err}");
    assert!(is_mounted(&dst), "mounted again after the receive");
    assert_eq!(tree(&dst), tree(&src));
    assert_eq!(snapshots(&dst), ["one"]);
    assert_eq!(xattr_get(&dst.join("dir"), "user.kept"), "yes");

    // The changes since, as an incremental stream.
    fs::write(src.join("dir/big"), Rng(2).bytes(64 << 10)).unwrap();
    fs::remove_file(src.join("text")).unwrap();
    fs::rename(src.join("dir"), src.join("moved")).unwrap();
    fs::write(src.join("new"), b"new file\n").unwrap();
    snapshot(&src, "two");
    let two = s.path("two.stream");
    assert_eq!(send(&src, "two", Some("one"), &two), Some(0));
    let (full, inc) = (
        fs::metadata(&one).unwrap().len(),
        fs::metadata(&two).unwrap().len(),
    );
    assert!(inc * 10 < full, "incremental {inc} bytes, full {full}");
    let (code, err) = receive(&dst, &two);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(tree(&dst), tree(&src));
    assert_eq!(snapshots(&dst), ["one", "two"]);

    // Refusals, each with its status, the target as it was.
    fs::write(src.join("third"), b"3").unwrap();
    snapshot(&src, "three");
    let three = s.path("three.stream");
    assert_eq!(send(&src, "three", Some("two"), &three), Some(0));
    let before = tree(&dst);
    assert_eq!(receive(&dst, &two).0, Some(3), "the snapshot exists");
    let bytes = fs::read(&three).unwrap();
    let cut = s.path("cut.stream");
    fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    assert_eq!(receive(&dst, &cut).0, Some(7), "truncated");
    let mut flipped = bytes.clone();
    let mid = bytes.len() / 2;
    flipped[mid] ^= 0x40;
    fs::write(&cut, &flipped).unwrap();
    assert_eq!(receive(&dst, &cut).0, Some(7), "damaged");
    fs::write(&cut, b"not a stream at all").unwrap();
    assert_eq!(receive(&dst, &cut).0, Some(7), "garbage");
    {
        let _open = fs::File::open(dst.join("new")).unwrap();
        assert_eq!(receive(&dst, &three).0, Some(5), "busy");
    }
    assert!(is_mounted(&dst));
    assert_eq!(tree(&dst), before);
    assert_eq!(snapshots(&dst), ["one", "two"]);
    // Send refusals.
    assert_eq!(send(&src, "nothing", None, &cut), Some(4));
    assert_eq!(send(&src, "three", Some("nothing"), &cut), Some(4));
    assert_eq!(send(&s.path(""), "one", None, &cut), Some(8));

    // An unmounted image as the target: a base it lacks, then the full stream.
    let other = s.mkfs("other.img", "256M");
    assert_eq!(receive(&other, &two).0, Some(4), "base missing");
    assert_eq!(receive(&other, &one).0, Some(0));
    assert_eq!(receive(&other, &three).0, Some(4), "base two missing");
    assert_fsck(&other, 0);
    // A full stream into a filesystem holding files, and a target changed since.
    let three_full = s.path("three-full.stream");
    assert_eq!(send(&src, "three", None, &three_full), Some(0));
    assert_eq!(receive(&dst, &three_full).0, Some(6), "not empty");
    fs::write(dst.join("local"), b"mine").unwrap();
    assert_eq!(receive(&dst, &three).0, Some(6), "the target changed");
    fs::remove_file(dst.join("local")).unwrap();

    unmount(&src);
    unmount(&dst);
    assert_fsck(&src_img, 0);
    assert_fsck(&dst_img, 0);
}

fn xattr_set(p: &Path, name: &str, value: &str) {
    let o = run(std::process::Command::new("setfattr")
        .args(["-n", name, "-v", value])
        .arg(p));
    assert!(
        o.status.success(),
        "setfattr (package attr): {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn xattr_get(p: &Path, name: &str) -> String {
    let o = run(std::process::Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(p));
    assert!(
        o.status.success(),
        "getfattr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
