//! Readahead of the mount. The kernel caps a FUSE mount's readahead at 128 KiB; like
//! btrfs, gpufs raises it to 4 MiB so a cold sequential read keeps several records in
//! flight. Linux only: it writes the mount's backing-device setting in sysfs.

use std::path::Path;

/// Readahead gpufs asks for, in KiB.
const READAHEAD_KIB: u32 = 4096;

#[cfg(target_os = "linux")]
pub(crate) fn raise(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&knob, format!("{READAHEAD_KIB}\n")) {
        tracing::info!("cannot raise readahead ({knob}): {e}");
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn raise(_mountpoint: &Path) {}
