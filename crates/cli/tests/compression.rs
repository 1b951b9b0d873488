//! Compression through a real mount: `mkfs --compression`, `gpufs property`, what `df`,
//! `gpufs du` and `gpufs stats` report, and that every byte reads back after a remount.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{gpufs, run, Mounted, Rng, Scratch};

fn text(len: usize) -> Vec<u8> {
    let mut rng = Rng(7);
    let words: [&[u8]; 6] = [
        b"gpufs ",
        b"stores ",
        b"records ",
        b"compressed\n",
        b"a ",
        b"of ",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(words[rng.below(6) as usize]);
    }
    out.truncate(len);
    out
}

fn used_bytes(mp: &std::path::Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(mp).unwrap();
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

fn stdout(args: &[&std::ffi::OsStr]) -> String {
    let o = run(gpufs().args(args));
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn compressed_mount_reports_honest_space_and_properties() {
    let s = Scratch::new();
    let img = s.path("c.img");
    let o = run(gpufs()
        .args(["mkfs", "--size", "1G", "--compression", "zstd:5", "--json"])
        .arg(&img));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let made: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(made["compression"], "zstd:5");
    assert_eq!(made["format_version"], gpufs_format::FORMAT_VERSION);
    let bad = run(gpufs()
        .args(["mkfs", "--size", "1G", "--compression", "gzip"])
        .arg(s.path("x.img")));
    assert_eq!(bad.status.code(), Some(2));

    let m = Mounted::new(&img, &s.path("mnt"));
    let before = used_bytes(&m.mp);
    let t = text(8 << 20);
    let mut rng = Rng(3);
    let r = rng.bytes(2 << 20);
    fs::create_dir(m.path("lz")).unwrap();
    let out = stdout(&[
        "property".as_ref(),
        "get".as_ref(),
        m.path("lz").as_os_str(),
    ]);
    assert_eq!(
        out,
        "compression\tzstd:5\tdefault\ncopies\t1\tdefault\ndedup\toff\tdefault\n"
    );
    let set = run(gpufs()
        .args(["property", "set"])
        .arg(m.path("lz"))
        .args(["compression", "lz4"]));
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    fs::create_dir(m.path("lz/sub")).unwrap();
    fs::write(m.path("lz/sub/text"), &t).unwrap();
    fs::write(m.path("text"), &t).unwrap();
    fs::write(m.path("random"), &r).unwrap();
    // Zeros as dd writes them (from a buffer of untouched, calloc'd pages the kernel's
    // FUSE write path sends pieces of 2 KiB, each counted again as its record grows).
    let dd = run(std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=4", "status=none"])
        .arg(format!("of={}", m.path("zeros").display())));
    assert!(dd.status.success());
    let sync = run(std::process::Command::new("sync").arg(m.path("text")));
    assert!(sync.status.success());
    let out = stdout(&[
        "property".as_ref(),
        "get".as_ref(),
        m.path("lz/sub/text").as_os_str(),
        "compression".as_ref(),
        "--json".as_ref(),
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["value"].as_str(), v["source"].as_str()),
        (Some("lz4"), Some("local"))
    );

    // st_blocks and df count what is stored.
    let text_alloc = fs::metadata(m.path("text")).unwrap().blocks() * 512;
    assert!(text_alloc * 3 < t.len() as u64, "text takes {text_alloc}");
    assert_eq!(fs::metadata(m.path("zeros")).unwrap().blocks(), 0);
    let grown = used_bytes(&m.mp) - before;
    let logical = 2 * t.len() as u64 + r.len() as u64 + (4 << 20);
    assert!(
        grown < logical / 2,
        "df grew by {grown} for {logical} bytes"
    );
    // du: logical and physical side by side.
    let du = stdout(&[
        "du".as_ref(),
        "-s".as_ref(),
        "-b".as_ref(),
        m.mp.as_os_str(),
    ]);
    let cols: Vec<u64> = du.split('\t').take(2).map(|c| c.parse().unwrap()).collect();
    assert!(cols[0] >= logical && cols[1] < logical / 2, "{du}");
    // stats: records by algorithm.
    let st: serde_json::Value = serde_json::from_str(&stdout(&[
        "stats".as_ref(),
        m.mp.as_os_str(),
        "--json".as_ref(),
    ]))
    .unwrap();
    let rec = &st["records"];
    assert_eq!(rec["zstd"]["records"], 128, "{rec}");
    assert_eq!(rec["lz4"]["records"], 128, "{rec}");
    assert_eq!(rec["holes"]["records"], 64, "{rec}");
    assert_eq!(rec["raw_because_sample_incompressible"], 32, "{rec}");
    assert!(rec["zstd"]["ratio"].as_f64().unwrap() > 2.0, "{rec}");

    // Wrong property names and values: exit 2, nothing changed.
    for args in [
        ["compresion", "lz4"],
        ["compression", "zstd:0"],
        ["copies", "3"],
    ] {
        let o = run(gpufs()
            .args(["property", "set"])
            .arg(m.path("lz"))
            .args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    let o = run(gpufs().args(["property", "get", "/"]));
    assert_eq!(o.status.code(), Some(1));
    m.unmount();

    common::assert_fsck(&img, 0);
    let m = Mounted::new(&img, &s.path("mnt"));
    assert_eq!(fs::read(m.path("text")).unwrap(), t);
    assert_eq!(fs::read(m.path("lz/sub/text")).unwrap(), t);
    assert_eq!(fs::read(m.path("random")).unwrap(), r);
    assert_eq!(fs::read(m.path("zeros")).unwrap(), vec![0u8; 4 << 20]);
    m.unmount();
}
