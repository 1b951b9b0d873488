//! Shared harness for tests against a real FUSE mount: make an image, mount it with the
//! `gpufs` binary in the foreground, and unmount it. A mount that cannot be made fails
//! the test: these tests never skip.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn gpufs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpufs"))
}

pub fn run(cmd: &mut Command) -> Output {
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {cmd:?}: {e}"),
    }
}

pub fn is_mounted(mp: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let want = mp.to_string_lossy().replace(' ', "\\040");
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

/// Runs `gpufs fsck` on `img` and fails unless it exits with `code` (0 clean, 1 warnings).
pub fn assert_fsck(img: &Path, code: i32) -> String {
    let o = run(gpufs().arg("fsck").arg(img));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(code),
        "fsck of {}: {out}",
        img.display()
    );
    out
}

/// A temporary directory holding an image and a mount point.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("gpufs-test")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        Scratch { dir }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// Makes a gpufs image of `size` (e.g. "2G") at `name`.
    pub fn mkfs(&self, name: &str, size: &str) -> PathBuf {
        let img = self.path(name);
        let o = run(gpufs().arg("mkfs").arg(&img).arg("--size").arg(size));
        assert!(
            o.status.success(),
            "mkfs failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        img
    }
}

/// A mounted filesystem, served by a foreground `gpufs mount -f` child.
pub struct Mounted {
    pub mp: PathBuf,
    child: Option<Child>,
}

impl Mounted {
    pub fn new(image: &Path, mp: &Path) -> Mounted {
        Self::with_args(image, mp, &[])
    }

    pub fn with_args(image: &Path, mp: &Path, extra: &[&str]) -> Mounted {
        std::fs::create_dir_all(mp).unwrap_or_else(|e| panic!("mkdir {}: {e}", mp.display()));
        let mut child = gpufs()
            .arg("mount")
            .arg("-f")
            .args(extra)
            .arg(image)
            .arg(mp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gpufs mount: {e}"));
        let start = Instant::now();
        while !is_mounted(mp) {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!(
                    "gpufs mount exited ({status}) without mounting {} — FUSE mounts need \
                     root and /dev/fuse: {err}",
                    mp.display()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mount of {} did not appear",
                mp.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Mounted {
            mp: mp.to_path_buf(),
            child: Some(child),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mp.join(rel)
    }

    /// Unmounts through `gpufs unmount` and waits for the daemon's final checkpoint.
    pub fn unmount(mut self) {
        self.finish();
    }

    /// Kills the daemon with SIGKILL (no final checkpoint), then clears the dead mount
    /// with `gpufs unmount`, as a person would after a crash.
    pub fn kill(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        child.kill().unwrap_or_else(|e| panic!("kill: {e}"));
        let _ = child.wait();
        let o = run(gpufs().arg("unmount").arg(&self.mp));
        assert!(
            o.status.success(),
            "unmount of a dead mount: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!is_mounted(&self.mp));
    }

    fn finish(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let o = run(gpufs().arg("unmount").arg(&self.mp));
        if !o.status.success() {
            let _ = Command::new("umount").arg("-l").arg(&self.mp).status();
            let _ = child.kill();
            panic!(
                "gpufs unmount failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let status = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "gpufs mount exited with {status}: {err}");
        assert!(!err.contains("panicked"), "daemon panicked: {err}");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("umount").arg("-l").arg(&self.mp).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}
