#![allow(clippy::unwrap_used)]
use gpufs_core::device::{Device, FileDevice};
use gpufs_core::{mkfs, Caller, Filesystem, MkfsOptions, OpenOptions};
use std::sync::Arc;
use std::time::Instant;

#[test]
#[ignore]
fn mount_profile() {
    let path = std::path::Path::new("/work/scratch/m1.img");
    let files: usize = std::env::var("FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if !path.exists() {
        let f = std::fs::File::create(path).unwrap();
        f.set_len(4 << 30).unwrap();
        drop(f);
        let dev: Arc<dyn Device> = Arc::new(FileDevice::open(path, true).unwrap());
        mkfs(dev.clone(), &MkfsOptions::default()).unwrap();
        let fs = Filesystem::mount(dev, OpenOptions::default()).unwrap();
        let t = Instant::now();
        let top = fs.mkdir(1, b"fill", 0o755, Caller::ROOT).unwrap().ino;
        let mut d = 0;
        for i in 0..files {
            if i % 1000 == 0 {
                d = fs
                    .mkdir(
                        top,
                        format!("d{:04}", i / 1000).as_bytes(),
                        0o755,
                        Caller::ROOT,
                    )
                    .unwrap()
                    .ino;
            }
            let a = fs
                .create(d, format!("f{i:07}").as_bytes(), 0o644, Caller::ROOT)
                .unwrap();
            fs.release(a.ino).unwrap();
        }
        fs.close().unwrap();
        eprintln!("fill {files}: {:?}", t.elapsed());
    }
    for _ in 0..3 {
        if std::env::var("COLD").is_ok() {
            std::process::Command::new("sh")
                .arg("-c")
                .arg("sync; echo 3 > /proc/sys/vm/drop_caches")
                .status()
                .unwrap();
        }
        let t = Instant::now();
        let dev: Arc<dyn Device> = Arc::new(FileDevice::open(path, true).unwrap());
        let fs = Filesystem::mount(dev, OpenOptions::default()).unwrap();
        let m = t.elapsed();
        if std::env::var("SNAP").is_ok() {
            for i in 0..3 {
                let t = Instant::now();
                fs.create_snapshot(format!("s{i}").as_bytes()).unwrap();
                eprintln!("snapshot {:?}", t.elapsed());
            }
            for i in 0..3 {
                fs.delete_snapshot(format!("s{i}").as_bytes()).unwrap();
            }
        }
        fs.close().unwrap();
        eprintln!("mount {:?} (close {:?})", m, t.elapsed() - m);
    }
}
