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

/// Where `image` is mounted by a gpufs daemon now (the first FUSE mount in
/// `/proc/self/mounts` whose source is the image's absolute path), if anywhere. The type
/// reads `fuse.gpufs` (`fuse` where an older build mounted it).
pub fn mounted_at(image: &Path) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let image = std::path::absolute(image).unwrap_or_else(|_| image.to_path_buf());
    let image = image.to_string_lossy();
    mounts.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let (source, target, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (matches!(kind, "fuse" | "fuse.gpufs") && unescape_mount_field(source) == image)
            .then(|| PathBuf::from(unescape_mount_field(target)))
    })
}

/// A field of `/proc/mounts` as it was given: the kernel writes space, tab, newline and
/// backslash as `\` and three octal digits.
fn unescape_mount_field(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This machine's identity for the in-use marker: `/etc/machine-id` (128 bits in hex),
/// else the host name's first 16 bytes.
pub fn machine_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let hex = text.trim();
        if hex.len() == 32 && hex.is_ascii() {
            for (i, b) in id.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
            }
            if id != [0; 16] {
                return id;
            }
        }
    }
    let host = nix::unistd::gethostname().unwrap_or_default();
    let name = host.to_string_lossy();
    let n = name.len().min(16);
    id[..n].copy_from_slice(&name.as_bytes()[..n]);
    if id == [0; 16] {
        id[0] = 1;
    }
    id
}

/// The in-use marker this process puts on an image it opens at `mount_point`.
pub fn holder(mount_point: &str) -> gpufs_format::superblock::InUse {
    gpufs_format::superblock::InUse {
        host: machine_id(),
        pid: std::process::id(),
        reserved: 0,
        since_ns: 0,
        mount_point: gpufs_format::superblock::InUse::mount_point_bytes(mount_point),
    }
}

/// What to say when opening `image` failed with `e`: for an image a mount holds, which
/// mount holds it.
pub fn open_error(image: &Path, e: &std::io::Error) -> String {
    match (e.kind(), mounted_at(image)) {
        (std::io::ErrorKind::WouldBlock, Some(mp)) => format!(
            "{} is in use: mounted at {} (one writer per image: unmount it first)",
            image.display(),
            mp.display()
        ),
        _ => format!("{}: {e}", image.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::unescape_mount_field;

    #[test]
    fn mount_fields_unescape_octal() {
        assert_eq!(
            unescape_mount_field(r"/mnt/a\040b\011c\134d"),
            "/mnt/a b\tc\\d"
        );
        assert_eq!(unescape_mount_field(r"/plain"), "/plain");
        assert_eq!(unescape_mount_field(r"/end\04"), r"/end\04");
    }
}
