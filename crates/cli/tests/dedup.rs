//! Deduplication through a real mount: `mkfs --dedup` stores a second copy of written
//! data once (df barely moves; `gpufs stats` counts the hits), a `dedup off` directory
//! stores everything, and `gpufs dedup` shares what was written without it; every byte
//! reads back and fsck's walk agrees with the counts after unmount.

mod common;

use std::fs;

use common::{assert_fsck, gpufs, run, Mounted, Rng, Scratch};

fn used_bytes(mp: &std::path::Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(mp).unwrap();
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

/// fsync(2) of a file (`sync -f` is syncfs(2), which does not reach a FUSE daemon).
fn synced(path: &std::path::Path) {
    fs::File::open(path).unwrap().sync_all().unwrap();
}

#[test]
fn inline_and_offline_dedup_store_equal_records_once() {
    let s = Scratch::new();
    let img = s.path("d.img");
    let o = run(gpufs()
        .args(["mkfs", "--size", "1G", "--dedup", "--json"])
        .arg(&img));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = Mounted::new(&img, &s.path("mnt"));
    let data = Rng(5).bytes(16 << 20);
    fs::write(m.path("one"), &data).unwrap();
    synced(&m.path("one"));
    let before = used_bytes(&m.mp);
    fs::write(m.path("two"), &data).unwrap();
    synced(&m.path("two"));
    let grown = used_bytes(&m.mp) - before;
    assert!(
        grown < data.len() as u64 / 20,
        "a second copy grew df by {grown}"
    );
    let stats = run(gpufs().args(["stats", "--json"]).arg(&m.mp));
    let head: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(head["dedup"]["hits"], 256, "{}", head["dedup"]);
    assert_eq!(fs::read(m.path("two")).unwrap(), data);

    // A directory with dedup off stores every record; offline dedup shares them.
    fs::create_dir(m.path("off")).unwrap();
    let set = run(gpufs()
        .args(["property", "set"])
        .arg(m.path("off"))
        .args(["dedup", "off"]));
    assert!(set.status.success());
    let before = used_bytes(&m.mp);
    fs::write(m.path("off/three"), &data).unwrap();
    synced(&m.path("off/three"));
    assert!(used_bytes(&m.mp) - before >= data.len() as u64);
    let o = run(gpufs()
        .args(["dedup", "--json"])
        .arg(m.path("off"))
        .arg(m.path("one")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["shared"], 256, "{r}");
    assert!(
        r["bytes_reclaimed"].as_u64().unwrap() >= data.len() as u64 * 9 / 10,
        "{r}"
    );
    assert_eq!(fs::read(m.path("off/three")).unwrap(), data);
    // Bad input: a path outside any mount, or none that resolves (exit 1).
    let o = run(gpufs().arg("dedup").arg(s.path("")));
    assert_eq!(o.status.code(), Some(1));
    let bad = run(gpufs()
        .args(["property", "set"])
        .arg(m.path("off"))
        .args(["dedup", "maybe"]));
    assert_eq!(bad.status.code(), Some(2));
    m.unmount();
    assert_fsck(&img, 0);
}
