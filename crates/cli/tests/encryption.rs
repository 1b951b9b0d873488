//! Encryption at rest through the real commands: nothing written is readable from the
//! image, a missing or wrong key is refused without a byte of the image changing, keys
//! are added and removed without touching the data (never the last one), and a changed
//! byte of an encrypted record reads as EIO.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{gpufs, run, Mounted, Rng, Scratch};

/// A quick key derivation: these tests open images many times.
const KDF: [&str; 4] = ["--kdf-time", "20", "--kdf-memory", "8"];
const MARKER: &str = "ZQXMARKER";

fn key_file(s: &Scratch, name: &str, secret: &str) -> PathBuf {
    let p = s.path(name);
    fs::write(&p, format!("{secret}\n")).unwrap();
    p
}

fn mkfs_encrypted(s: &Scratch, name: &str, key: &Path) -> PathBuf {
    let img = s.path(name);
    let o = run(gpufs()
        .args(["mkfs", "--size", "256M", "--encrypt", "--key-file"])
        .arg(key)
        .args(KDF)
        .arg(&img));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    img
}

fn keyed(key: &Path) -> [&std::ffi::OsStr; 2] {
    ["--key-file".as_ref(), key.as_os_str()]
}

fn mount_with(img: &Path, mp: &Path, key: &Path) -> Mounted {
    let k = key.to_str().unwrap();
    Mounted::with_args(img, mp, &["--key-file", k])
}

/// Plain, compressible text with the marker in every line.
fn marked_text(len: usize) -> Vec<u8> {
    let line = format!("{MARKER} plain compressible text of a file that must stay secret\n");
    line.as_bytes().iter().copied().cycle().take(len).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Files, names, a symlink, xattrs and a snapshot, all carrying the marker.
fn write_marked_tree(root: &Path) -> Vec<String> {
    let dir = root.join(format!("{MARKER}-directory"));
    fs::create_dir(&dir).unwrap();
    let mut names = vec![format!("{MARKER}-directory")];
    for i in 0..3 {
        let name = format!("{MARKER}-file-{i}.txt");
        fs::write(dir.join(&name), marked_text(300_000 + i * 1000)).unwrap();
        names.push(name);
    }
    fs::write(root.join("tiny"), format!("{MARKER}\n")).unwrap();
    std::os::unix::fs::symlink(format!("/{MARKER}/target"), root.join("link")).unwrap();
    let o = run(std::process::Command::new("setfattr")
        .args([
            "-n",
            &format!("user.{MARKER}name"),
            "-v",
            &format!("{MARKER}value"),
        ])
        .arg(root.join("tiny")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    names
}

#[test]
fn nothing_written_is_readable_from_the_image() {
    let s = Scratch::new();
    let key = key_file(&s, "key", "correct horse battery staple");
    let img = mkfs_encrypted(&s, "enc.img", &key);
    let plain = s.mkfs("plain.img", "256M");
    let mut names = Vec::new();
    for (image, k) in [(&img, Some(&key)), (&plain, None)] {
        let mp = s.path(&format!("mnt-{MARKER}"));
        let m = match k {
            Some(k) => mount_with(image, &mp, k),
            None => Mounted::new(image, &mp),
        };
        names = write_marked_tree(&m.mp);
        let snap = run(gpufs()
            .args(["snapshot", "create"])
            .arg(&m.mp)
            .arg(format!("{MARKER}-snapshot")));
        assert!(
            snap.status.success(),
            "{}",
            String::from_utf8_lossy(&snap.stderr)
        );
        m.unmount();
    }
    // The control: without encryption the names and the text are there to be found.
    let bytes = fs::read(&plain).unwrap();
    assert!(contains(&bytes, MARKER.as_bytes()));
    let bytes = fs::read(&img).unwrap();
    assert!(
        !contains(&bytes, MARKER.as_bytes()),
        "the marker is in the image"
    );
    assert!(!contains(&bytes, b"plain compressible text"));
    for n in &names {
        assert!(!contains(&bytes, n.as_bytes()), "{n} is in the image");
    }
    // Everything reads back with the key.
    let m = mount_with(&img, &s.path("again"), &key);
    let f = m.path(&format!("{MARKER}-directory/{MARKER}-file-1.txt"));
    assert_eq!(fs::read(f).unwrap(), marked_text(301_000));
    assert_eq!(
        fs::read_link(m.path("link")).unwrap(),
        PathBuf::from(format!("/{MARKER}/target"))
    );
    m.unmount();
    let o = run(gpufs().arg("fsck").args(keyed(&key)).arg(&img));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn missing_and_wrong_keys_are_refused_and_change_nothing() {
    let s = Scratch::new();
    let key = key_file(&s, "key", "right");
    let wrong = key_file(&s, "wrong", "wrong");
    let img = mkfs_encrypted(&s, "enc.img", &key);
    let m = mount_with(&img, &s.path("mnt"), &key);
    fs::write(m.path("f"), b"data").unwrap();
    m.unmount();
    let before = fs::read(&img).unwrap();
    let mp = s.path("mnt");
    let attempts: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["mount".into(), img.clone().into(), mp.clone().into()],
        vec![
            "mount".into(),
            "--key-file".into(),
            wrong.clone().into(),
            img.clone().into(),
            mp.clone().into(),
        ],
        vec![
            "mount".into(),
            "-o".into(),
            format!("key_file={}", wrong.display()).into(),
            img.clone().into(),
            mp.clone().into(),
        ],
        vec![
            "mount".into(),
            "-f".into(),
            "--key-file".into(),
            wrong.clone().into(),
            img.clone().into(),
            mp.clone().into(),
        ],
        vec!["fsck".into(), img.clone().into()],
        vec![
            "fsck".into(),
            "--key-file".into(),
            wrong.clone().into(),
            img.clone().into(),
        ],
        vec![
            "key".into(),
            "add".into(),
            img.clone().into(),
            "--key-file".into(),
            wrong.clone().into(),
            "--new-key-file".into(),
            key.clone().into(),
        ],
        vec![
            "key".into(),
            "remove".into(),
            img.clone().into(),
            "--key-file".into(),
            wrong.clone().into(),
        ],
    ];
    for args in attempts {
        let o = run(gpufs().args(&args).stdin(std::process::Stdio::null()));
        assert_eq!(
            o.status.code(),
            Some(9),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("key"), "{args:?}: {err}");
        assert!(!err.contains("right"), "the key is printed: {err}");
        assert!(
            fs::read(&img).unwrap() == before,
            "{args:?} changed the image"
        );
    }
    // A key on standard input opens it (the daemon gets it through a pipe).
    let o = run(gpufs()
        .args(["mount", "--key-file", "-"])
        .arg(&img)
        .arg(&mp)
        .stdin(fs::File::open(&key).unwrap()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(mp.join("f")).unwrap(), b"data");
    let o = run(gpufs().arg("unmount").arg(&mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // As mount(8) gives it: the key file among other options, which still apply.
    let o = run(gpufs()
        .arg("mount")
        .arg("-o")
        .arg(format!("noatime,key_file={}", key.display()))
        .arg(&img)
        .arg(&mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(mp.to_str().unwrap()))
        .unwrap_or_else(|| panic!("not mounted: {mounts}"));
    assert!(line.contains("noatime"), "{line}");
    let o = run(gpufs().arg("unmount").arg(&mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A key for an image that is not encrypted is refused too.
    let plain = s.mkfs("plain.img", "64M");
    let o = run(gpufs().arg("fsck").args(keyed(&key)).arg(&plain));
    assert_eq!(o.status.code(), Some(9));
}

fn slots(img: &Path) -> usize {
    let o = run(gpufs().args(["key", "list", "--json"]).arg(img));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array().unwrap().len()
}

#[test]
fn keys_are_added_and_removed_without_touching_the_data() {
    let s = Scratch::new();
    let a = key_file(&s, "a", "first key");
    let b = key_file(&s, "b", "second key");
    let img = mkfs_encrypted(&s, "enc.img", &a);
    let m = mount_with(&img, &s.path("mnt"), &a);
    fs::write(m.path("f"), marked_text(100_000)).unwrap();
    m.unmount();
    // Everything but the key area (blocks 2 and 3) stays as it is.
    let outside = |bytes: &[u8]| [bytes[..8192].to_vec(), bytes[16384..].to_vec()].concat();
    let before = outside(&fs::read(&img).unwrap());
    assert_eq!(slots(&img), 1);
    let o = run(gpufs()
        .args(["key", "add"])
        .arg(&img)
        .args(keyed(&a))
        .arg("--new-key-file")
        .arg(&b)
        .args(KDF));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(slots(&img), 2);
    assert!(
        outside(&fs::read(&img).unwrap()) == before,
        "key add wrote outside the key area"
    );
    let m = mount_with(&img, &s.path("mnt"), &b);
    assert_eq!(fs::read(m.path("f")).unwrap(), marked_text(100_000));
    m.unmount();

    let o = run(gpufs().args(["key", "remove"]).arg(&img).args(keyed(&a)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(slots(&img), 1);
    let o = run(gpufs().arg("fsck").args(keyed(&a)).arg(&img));
    assert_eq!(
        o.status.code(),
        Some(9),
        "the removed key still opens the image"
    );
    let o = run(gpufs().arg("fsck").args(keyed(&b)).arg(&img));
    assert_eq!(o.status.code(), Some(0));

    // The last slot stays.
    let o = run(gpufs().args(["key", "remove"]).arg(&img).args(keyed(&b)));
    assert_eq!(o.status.code(), Some(9));
    assert!(String::from_utf8_lossy(&o.stderr).contains("last key slot"));
    assert_eq!(slots(&img), 1);
}

#[test]
fn a_changed_byte_of_an_encrypted_record_reads_as_eio() {
    let s = Scratch::new();
    let key = key_file(&s, "key", "k");
    let img = mkfs_encrypted(&s, "enc.img", &key);
    let m = mount_with(&img, &s.path("mnt"), &key);
    fs::write(m.path("keep"), b"other file").unwrap();
    m.unmount();
    let before = fs::read(&img).unwrap();
    let data = Rng(5).bytes(1 << 20);
    let m = mount_with(&img, &s.path("mnt"), &key);
    fs::write(m.path("f"), &data).unwrap();
    m.unmount();
    let mut after = fs::read(&img).unwrap();
    // The file's records are the longest run of blocks the write changed.
    let changed: Vec<usize> = (0..after.len() / 4096)
        .filter(|b| before[b * 4096..(b + 1) * 4096] != after[b * 4096..(b + 1) * 4096])
        .collect();
    let (mut best, mut start, mut len) = ((0, 0), 0, 0);
    for (i, b) in changed.iter().enumerate() {
        if i > 0 && changed[i - 1] + 1 == *b {
            len += 1;
        } else {
            start = *b;
            len = 1;
        }
        if len > best.1 {
            best = (start, len);
        }
    }
    assert!(best.1 >= 200, "no run of data blocks: {best:?}");
    after[(best.0 + best.1 / 2) * 4096 + 100] ^= 0x20;
    fs::write(&img, &after).unwrap();
    let m = mount_with(&img, &s.path("mnt"), &key);
    let e = fs::read(m.path("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc_eio()), "{e}");
    assert_eq!(fs::read(m.path("keep")).unwrap(), b"other file");
    m.unmount();
}

fn libc_eio() -> i32 {
    5
}

#[test]
fn streams_reach_an_encrypted_image_and_an_encrypted_mount_is_never_left_unmounted() {
    let s = Scratch::new();
    let key = key_file(&s, "key", "k");
    let img = mkfs_encrypted(&s, "enc.img", &key);
    // A stream from a plain filesystem, received into the unmounted encrypted image.
    let plain = s.mkfs("plain.img", "64M");
    let m = Mounted::new(&plain, &s.path("plain"));
    fs::write(m.path("sent.txt"), marked_text(50_000)).unwrap();
    let o = run(gpufs().args(["snapshot", "create"]).arg(&m.mp).arg("s"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stream = s.path("stream");
    let o = run(gpufs()
        .arg("send")
        .arg(&m.mp)
        .arg("s")
        .stdout(fs::File::create(&stream).unwrap()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    m.unmount();
    let o = run(gpufs()
        .arg("receive")
        .arg(&img)
        .stdin(fs::File::open(&stream).unwrap()));
    assert_eq!(
        o.status.code(),
        Some(9),
        "no key: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(gpufs()
        .arg("receive")
        .arg(&img)
        .args(keyed(&key))
        .stdin(fs::File::open(&stream).unwrap()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!contains(&fs::read(&img).unwrap(), MARKER.as_bytes()));

    // Mounted as a daemon with the key through a pipe: rollback and receive, which
    // unmount and mount again, are refused first, and the mount stays.
    let mp = s.path("mnt");
    fs::create_dir_all(&mp).unwrap();
    let o = run(gpufs().arg("mount").args(keyed(&key)).arg(&img).arg(&mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(mp.join("sent.txt")).unwrap(), marked_text(50_000));
    let o = run(gpufs().args(["snapshot", "rollback"]).arg(&mp).arg("s"));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("encrypted"));
    let o = run(gpufs()
        .arg("receive")
        .arg(&mp)
        .stdin(fs::File::open(&stream).unwrap()));
    assert!(!o.status.success());
    assert!(common::is_mounted(&mp));
    assert_eq!(fs::read(mp.join("sent.txt")).unwrap(), marked_text(50_000));
    let o = run(gpufs().arg("unmount").arg(&mp));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
