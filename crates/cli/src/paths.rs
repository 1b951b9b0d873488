//! Where gpufs keeps its default image, its daemons' pid and log files and their
//! control sockets.

use std::path::{Path, PathBuf};

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// `$XDG_DATA_HOME/gpufs` (default `~/.local/share/gpufs`).
pub fn data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".local/share"))
        .join("gpufs")
}

/// The embedded default image, made on first use.
pub fn default_image() -> PathBuf {
    data_dir().join("default.img")
}

/// `$XDG_STATE_HOME/gpufs` (default `~/.local/state/gpufs`): pid files and daemon logs.
pub fn state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".local/state"))
        .join("gpufs")
}

/// A file name derived from a mount point (`/mnt/a b` -> `mnt_a_b`).
fn key(mountpoint: &Path) -> String {
    let s: String = mountpoint
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    s.trim_matches('_').to_string()
}

pub fn pid_file(mountpoint: &Path) -> PathBuf {
    state_dir().join(format!("{}.pid", key(mountpoint)))
}

pub fn log_file(mountpoint: &Path) -> PathBuf {
    state_dir().join(format!("{}.log", key(mountpoint)))
}

/// Where a mount's control socket may live, in order: `/run/gpufs` for a daemon run by
/// root (reachable by every user the mount allows), else `$XDG_RUNTIME_DIR/gpufs`, else
/// the state directory. The daemon binds the first it can; the client asks the first
/// that exists.
pub fn control_sockets(mountpoint: &Path) -> Vec<PathBuf> {
    let name = format!("{}.sock", key(mountpoint));
    let mut dirs = vec![PathBuf::from("/run/gpufs")];
    if let Some(r) = std::env::var_os("XDG_RUNTIME_DIR") {
        dirs.push(PathBuf::from(r).join("gpufs"));
    }
    dirs.push(state_dir());
    dirs.into_iter().map(|d| d.join(&name)).collect()
}
