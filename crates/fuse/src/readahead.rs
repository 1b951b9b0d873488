//! The mount's backing-device settings. The kernel caps a FUSE mount's readahead at 128
//! KiB; like btrfs, gpufs raises it to 4 MiB so a cold sequential read keeps several
//! records in flight. And with the kernel's write-back cache on, the kernel holds a FUSE
//! mount to a strict 1% share of dirty memory, which turns random writes back into one
//! request each; gpufs lifts that to the share a local filesystem gets (its daemon is the
//! filesystem, not an untrusted server). Linux only: it writes the mount's backing-device
//! settings in sysfs, which needs root; without it the defaults stay, logged.

use std::path::Path;

/// Readahead gpufs asks for, in KiB.
const READAHEAD_KIB: u32 = 4096;
/// Share of the system's dirty-page limit the mount may use, in percent.
const DIRTY_SHARE_PERCENT: u32 = 50;

/// Sets the mount's backing-device knobs.
#[cfg(target_os = "linux")]
pub(crate) fn raise(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let bdi = format!("/sys/class/bdi/{major}:{minor}");
    for (knob, value) in [
        ("read_ahead_kb", READAHEAD_KIB),
        ("strict_limit", 0),
        ("max_ratio", DIRTY_SHARE_PERCENT),
    ] {
        let path = format!("{bdi}/{knob}");
        if let Err(e) = std::fs::write(&path, format!("{value}\n")) {
            tracing::info!("cannot set {path} to {value}: {e}");
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn raise(_mountpoint: &Path) {}
