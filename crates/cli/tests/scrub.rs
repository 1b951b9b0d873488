//! `gpufs scrub` on a real mount: a damaged copy is repaired from the good one (exit 1),
//! a record without a good copy is reported with its path and byte range (exit 4) and
//! reads as EIO, a clean filesystem exits 0, and a path outside gpufs exits 8.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use common::{gpufs, run, Mounted, Rng, Scratch};

/// Byte offsets in the image where `needle` starts.
fn find_all(image: &Path, needle: &[u8]) -> Vec<u64> {
    let mut bytes = Vec::new();
    fs::File::open(image)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    (0..bytes.len() - needle.len())
        .step_by(4096)
        .filter(|&at| &bytes[at..at + needle.len()] == needle)
        .map(|at| at as u64)
        .collect()
}

fn damage(image: &Path, at: u64) {
    let mut f = fs::OpenOptions::new().write(true).open(image).unwrap();
    f.seek(SeekFrom::Start(at + 1000)).unwrap();
    f.write_all(&[0xA5; 16]).unwrap();
    f.sync_all().unwrap();
}

fn scrub(mp: &Path, extra: &[&str]) -> (i32, String) {
    let o = run(gpufs().arg("scrub").arg(mp).args(extra));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    (o.status.code().unwrap_or(-1), out)
}

#[test]
fn scrub_repairs_reports_and_exits_by_what_it_found() {
    let s = Scratch::new();
    let img = s.mkfs("s.img", "256M");
    let mp = s.path("mnt");
    let mut rng = Rng(11);
    let (safe, plain) = (rng.bytes(256 << 10), rng.bytes(256 << 10));
    let m = Mounted::new(&img, &mp);
    fs::create_dir(m.path("safe")).unwrap();
    let o = run(gpufs()
        .args(["property", "set"])
        .arg(m.path("safe"))
        .args(["copies", "2"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    fs::write(m.path("safe/f"), &safe).unwrap();
    fs::write(m.path("plain"), &plain).unwrap();
    assert_eq!(scrub(&m.mp, &[]).0, 0);
    m.unmount();

    // One copy of a record of safe/f damaged: repaired, exit 1; then clean.
    let copies = find_all(&img, &safe[..64]);
    assert_eq!(copies.len(), 2, "{copies:?}");
    damage(&img, copies[0]);
    let m = Mounted::new(&img, &mp);
    let (code, out) = scrub(&m.mp, &["--json"]);
    assert_eq!(code, 1, "{out}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (r["damaged_copies"].as_u64(), r["repaired_copies"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(scrub(&m.mp, &[]).0, 0);
    assert_eq!(fs::read(m.path("safe/f")).unwrap(), safe);
    m.unmount();

    // The only copy of a record of plain damaged: reported by path and range, exit 4.
    let only = find_all(&img, &plain[..64]);
    assert_eq!(only.len(), 1);
    damage(&img, only[0]);
    let m = Mounted::new(&img, &mp);
    let (code, out) = scrub(&m.mp, &[]);
    assert_eq!(code, 4, "{out}");
    let want = format!("LOST: {}/plain", m.mp.display());
    assert!(
        out.contains(&want) && out.contains("bytes 0..65536"),
        "{out}"
    );
    assert!(fs::read(m.path("plain")).is_err());
    assert_eq!(scrub(&m.mp, &["--restart"]).0, 4);
    fs::remove_file(m.path("plain")).unwrap();
    assert_eq!(scrub(&m.mp, &["--restart"]).0, 0);
    m.unmount();

    // Not a gpufs mount: could not run.
    let (code, _) = scrub(s.dir.path(), &[]);
    assert_eq!(code, 8);
}
