//! Check (c): many files of random sizes and content survive an unmount and remount
//! with identical content hashes and metadata. GPUFS_PERSIST_FILES sets the count
//! (default 100,000).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{Mounted, Rng, Scratch};

#[derive(Debug, PartialEq, Eq)]
struct Meta {
    hash: [u8; 32],
    len: u64,
    mode: u32,
    mtime: (i64, i64),
}

fn snapshot(root: &std::path::Path) -> BTreeMap<String, Meta> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p);
                continue;
            }
            let data = fs::read(&p).unwrap();
            out.insert(
                p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                Meta {
                    hash: *blake3::hash(&data).as_bytes(),
                    len: md.len(),
                    mode: md.mode(),
                    mtime: (md.mtime(), md.mtime_nsec()),
                },
            );
        }
    }
    out
}

#[test]
fn many_files_survive_remount() {
    let n: usize = std::env::var("GPUFS_PERSIST_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let s = Scratch::new();
    let img = s.mkfs("img", "8G");
    let m = Mounted::new(&img, &s.path("mnt"));
    let mut rng = Rng(0x5eed);
    let dirs = (n / 1000).max(1);
    for d in 0..dirs {
        fs::create_dir(m.path(&format!("d{d}"))).unwrap();
    }
    for i in 0..n {
        // Mostly small files, some spanning several records.
        let len = match rng.below(100) {
            0..=59 => rng.below(512),
            60..=94 => rng.below(16 << 10),
            _ => rng.below(300 << 10),
        } as usize;
        let p = m.path(&format!("d{}/f{i}", i % dirs));
        fs::write(&p, rng.bytes(len)).unwrap();
        if i % 7 == 0 {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let before = snapshot(&m.mp);
    assert_eq!(before.len(), n);
    m.unmount();
    let m = Mounted::new(&img, &s.path("mnt"));
    let after = snapshot(&m.mp);
    m.unmount();
    assert_eq!(before.len(), after.len());
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k} changed across remount");
    }
    common::assert_fsck(&img, 0);
    println!("{n} files verified across remount");
}
