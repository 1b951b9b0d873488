//! `gpufs clone SRC DST [-r]`: a copy that takes no new space. Each file is copied with
//! `copy_file_range`, which the daemon answers by sharing the source's records (a write
//! to either file later changes only that file). Both paths must lie in the same gpufs
//! mount: anywhere else the kernel would copy bytes, which is not what was asked.
//! With `-r` a directory tree is recreated: directories, symlinks and files, with their
//! permission bits, times and (as root) owners.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use nix::fcntl::copy_file_range;

use crate::client::locate;
use crate::exit::Failure;

#[derive(clap::Args, Debug)]
pub struct CloneArgs {
    /// A file (a directory with -r) inside a gpufs mount.
    pub src: PathBuf,
    /// The new name, in the same mount (an existing file is replaced; a directory must
    /// not exist yet).
    pub dst: PathBuf,
    /// Clone a directory and everything below it.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Print what was cloned as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What a clone made.
#[derive(Default)]
struct Made {
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
}

pub fn run(a: CloneArgs) -> Result<(), Failure> {
    let meta = fs::symlink_metadata(&a.src)
        .map_err(|e| Failure::error(format!("{}: {e}", a.src.display())))?;
    if meta.is_dir() && !a.recursive {
        return Err(Failure::usage(format!(
            "{} is a directory (clone it with -r)",
            a.src.display()
        )));
    }
    same_mount(&a.src, &a.dst)?;
    let mut made = Made::default();
    let res = if meta.is_dir() {
        if a.dst.exists() {
            return Err(Failure::error(format!("{} exists", a.dst.display())));
        }
        clone_tree(&a.src, &a.dst, &mut made)
    } else {
        clone_node(&a.src, &a.dst, &meta, &mut made)
    };
    res.map_err(Failure::error)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"files": made.files, "directories": made.dirs,
                "symlinks": made.symlinks, "bytes": made.bytes})
        );
    }
    Ok(())
}

/// Both paths in one gpufs mount (the destination by its parent, as it may not exist).
fn same_mount(src: &Path, dst: &Path) -> Result<(), Failure> {
    let (src_mount, _) = locate(None, src).map_err(Failure::error)?;
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (dst_mount, _) = locate(None, &parent).map_err(Failure::error)?;
    if src_mount != dst_mount {
        return Err(Failure::error(format!(
            "{} and {} are not in the same gpufs mount ({} and {}): a clone shares records \
             within one filesystem",
            src.display(),
            dst.display(),
            src_mount.display(),
            dst_mount.display()
        )));
    }
    Ok(())
}

fn clone_tree(src: &Path, dst: &Path, made: &mut Made) -> Result<(), String> {
    let meta = fs::symlink_metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
    fs::create_dir(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    made.dirs += 1;
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", src.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dst.join(e.file_name());
        let m = fs::symlink_metadata(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        if m.is_dir() {
            clone_tree(&from, &to, made)?;
        } else {
            clone_node(&from, &to, &m, made)?;
        }
    }
    keep_attributes(dst, &meta)
}

/// A file, symlink or special file.
fn clone_node(src: &Path, dst: &Path, meta: &fs::Metadata, made: &mut Made) -> Result<(), String> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(|e| format!("{}: {e}", src.display()))?;
        std::os::unix::fs::symlink(&target, dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        made.symlinks += 1;
        if is_root() {
            let _ = std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()));
        }
        return Ok(());
    }
    if !ft.is_file() {
        return Err(format!(
            "{}: only files, directories and symlinks are cloned",
            src.display()
        ));
    }
    made.bytes += clone_file(src, dst, meta)?;
    made.files += 1;
    keep_attributes(dst, meta)
}

/// Copies `src` into `dst` (created or truncated) with copy_file_range until the end.
fn clone_file(src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<u64, String> {
    let input = File::open(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(meta.permissions().mode() & 0o7777)
        .open(dst)
        .map_err(|e| format!("{}: {e}", dst.display()))?;
    let mut total = 0u64;
    loop {
        let n = copy_file_range(&input, None, &output, None, 1 << 30)
            .map_err(|e| format!("cloning {} to {}: {e}", src.display(), dst.display()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok(total)
}

/// Permission bits, times and (as root) owner of `meta` onto `dst`.
fn keep_attributes(dst: &Path, meta: &fs::Metadata) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", dst.display());
    if is_root() {
        std::os::unix::fs::chown(dst, Some(meta.uid()), Some(meta.gid())).map_err(err)?;
    }
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(err)?;
    let at = |s: i64, ns: i64| {
        UNIX_EPOCH + Duration::from_secs(s.max(0) as u64) + Duration::from_nanos(ns as u64)
    };
    let times = FileTimes::new()
        .set_accessed(at(meta.atime(), meta.atime_nsec()))
        .set_modified(at(meta.mtime(), meta.mtime_nsec()));
    // Directories open read-only; their times are set through that handle too.
    File::open(dst)
        .and_then(|f| f.set_times(times))
        .map_err(err)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
