//! `gpufs mount`: open the image, mount it through FUSE, serve until unmounted.
//!
//! By default the command returns once the mount is live, leaving a daemon that serves
//! it; `-f` serves in the foreground. The daemon is this binary started again with
//! `--daemon-child`: it reports `ready` (or the error) on its stdout, which the parent
//! waits for, so every mount error reaches the person who asked.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gpufs_core::device::{Device, FileDevice};
use gpufs_core::{AtimeMode, Filesystem, OpenOptions};
use gpufs_fuse::{Daemon, MountConfig, SessionUnmounter};

use gpufs_core::crypt::Passphrase;

use crate::key_input::{describe, keys_for, read_key, KEY_MARK};
use crate::mount_opts::MountOptions;
use crate::paths;

/// Size of the default image, made sparse on first use.
const DEFAULT_IMAGE_BYTES: u64 = 20 << 30;

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// [IMAGE] MOUNTPOINT: without IMAGE, the default image
    /// ($XDG_DATA_HOME/gpufs/default.img), made on first use.
    #[arg(num_args = 1..=2, value_name = "PATHS", required = true)]
    pub paths: Vec<PathBuf>,
    /// Serve in the foreground instead of as a daemon.
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Mount read-only: nothing is written to the image, not even journal replay.
    #[arg(long)]
    pub read_only: bool,
    /// Let users other than the mounting one use the mount.
    #[arg(long)]
    pub allow_other: bool,
    /// Seconds between commits of changes nobody fsync'd.
    #[arg(long, default_value_t = 5)]
    pub commit_interval: u64,
    /// Let the kernel's page cache absorb writes (FUSE write-back cache): small random
    /// writes run at page-cache speed, but a full disk is reported by fsync or close,
    /// not by the write itself.
    #[arg(long)]
    pub kernel_writeback: bool,
    /// Bound of the write-back record cache (e.g. 256M, 1G); 0 writes every record
    /// through at once.
    #[arg(long, value_name = "SIZE", default_value = "256M")]
    pub cache_size: String,
    /// Compute backend for search and du: cpu, gpu or auto [default: $GPUFS_COMPUTE, else auto].
    #[arg(long, value_name = "BACKEND")]
    pub compute: Option<String>,
    /// Threads serving requests, each pinned to one CPU [default: one per CPU, at most 16].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Mount options, as mount(8) and /etc/fstab give them: ro, rw, noatime, relatime
    /// (default), strictatime, allow_other, cache_size=SIZE, commit=SECONDS,
    /// kernel_writeback, nodev, nosuid, noexec, force (mount an image another machine's
    /// in-use marker names: that machine is down) (mount's own: defaults, nofail, x-*,
    /// ..., are ignored; anything else is refused).
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// The key of an encrypted image: a file holding the passphrase or raw key (`-`:
    /// standard input); left out, it is asked at the terminal (also `-o key_file=FILE`).
    /// A missing or wrong key: exit 9, nothing written.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Internal: this process is the daemon a plain `mount` started.
    #[arg(long, hide = true)]
    pub daemon_child: bool,
}

fn image_and_mountpoint(a: &MountArgs) -> Result<(PathBuf, PathBuf), String> {
    match a.paths.as_slice() {
        [mp] => {
            let image = paths::default_image();
            if !image.exists() {
                let dir = paths::data_dir();
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                crate::mkfs_cmd::make(
                    &image,
                    Some(DEFAULT_IMAGE_BYTES),
                    64 * 1024,
                    gpufs_format::Compression::MKFS_DEFAULT,
                    false,
                    false,
                    None,
                )?;
                eprintln!("gpufs: made the default image {}", image.display());
            }
            Ok((image, crate::absolute(mp)))
        }
        [image, mp] => Ok((crate::absolute(image), crate::absolute(mp))),
        _ => Err("give [IMAGE] MOUNTPOINT".into()),
    }
}

/// Opens `image` for a mount at `mp` (read-write: marked as held by this process until
/// its clean unmount; `force` takes over another machine's marker).
fn open(
    image: &Path,
    mp: &Path,
    read_only: bool,
    cache_size: &str,
    atime: AtimeMode,
    force: bool,
    key_file: Option<&Path>,
) -> Result<Filesystem, String> {
    let write_cache_bytes = cache_bytes(cache_size)?;
    let dev: Arc<dyn Device> =
        Arc::new(FileDevice::open(image, !read_only).map_err(|e| paths::open_error(image, &e))?);
    let keys = keys_for(dev.as_ref(), image, key_file)?;
    let opts = OpenOptions {
        read_only,
        write_cache_bytes,
        atime,
        holder: Some(paths::holder(&mp.display().to_string())),
        force,
    };
    Filesystem::mount_with_keys(dev, opts, keys)
        .map_err(|e| format!("{}: {}", image.display(), describe(&e)))
}

/// Folds `-o` options into the flags they stand for; returns what has no flag.
fn apply_options(a: &mut MountArgs) -> Result<MountOptions, String> {
    let o = MountOptions::parse(a.options.iter().map(String::as_str))?;
    if let Some(ro) = o.read_only {
        a.read_only = ro;
    }
    a.allow_other |= o.allow_other;
    if a.key_file.is_none() {
        a.key_file = o.key_file.as_ref().map(PathBuf::from);
    }
    a.kernel_writeback |= o.kernel_writeback;
    if let Some(c) = &o.cache_size {
        a.cache_size = c.clone();
    }
    if let Some(n) = o.commit_interval {
        a.commit_interval = n;
    }
    Ok(o)
}

pub fn run(mut a: MountArgs) -> Result<(), String> {
    let opts = apply_options(&mut a)?;
    let a = &a;
    let (image, mp) = image_and_mountpoint(a)?;
    if !mp.is_dir() {
        return Err(format!("mount point {} is not a directory", mp.display()));
    }
    if a.foreground || a.daemon_child {
        return serve(a, &opts, &image, &mp);
    }
    let key = precheck(a, &opts, &image, &mp)?;
    spawn_daemon(a, &image, &mp, key)
}

/// What can be refused before a daemon starts, cheaply: a bad cache size, an image that
/// cannot be opened as asked or is locked by a mount here, one another machine's marker
/// holds. The daemon loads the image (once: a million files take a while) and reports
/// any other error, which this command prints.
/// Returns the key of an encrypted image, read here (where the terminal is) for the
/// daemon, which unlocks it.
fn precheck(
    a: &MountArgs,
    o: &MountOptions,
    image: &Path,
    mp: &Path,
) -> Result<Option<Passphrase>, String> {
    cache_bytes(&a.cache_size)?;
    let dev = FileDevice::open(image, !a.read_only).map_err(|e| paths::open_error(image, &e))?;
    if !o.force {
        gpufs_core::refuse_if_held_elsewhere(&dev, paths::holder(&mp.display().to_string()))
            .map_err(|e| format!("{}: {e}", image.display()))?;
    }
    let (sb, _) = gpufs_core::crypt::area::superblock_of(&dev)
        .map_err(|e| format!("{}: {e}", image.display()))?;
    match (sb.is_encrypted(), &a.key_file) {
        (false, Some(_)) => Err(format!(
            "{KEY_MARK}{}: the image is not encrypted: it takes no key",
            image.display()
        )),
        (false, None) => Ok(None),
        (true, file) => read_key(
            file.as_deref(),
            &format!("key for {}", image.display()),
            false,
        )
        .map(Some)
        .map_err(|f| format!("{KEY_MARK}{}", f.msg)),
    }
}

/// The write-back cache size `--cache-size` asks for, in bytes.
fn cache_bytes(cache_size: &str) -> Result<usize, String> {
    crate::size::parse_size(cache_size)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("--cache-size {cache_size}: not a size (e.g. 256M, 0)"))
}

fn spawn_daemon(
    a: &MountArgs,
    image: &Path,
    mp: &Path,
    key: Option<Passphrase>,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let state = paths::state_dir();
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    let log_path = paths::log_file(mp);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("mount").arg("--daemon-child");
    if a.read_only {
        cmd.arg("--read-only");
    }
    if a.allow_other {
        cmd.arg("--allow-other");
    }
    cmd.arg("--commit-interval")
        .arg(a.commit_interval.to_string());
    cmd.arg("--cache-size").arg(&a.cache_size);
    if a.kernel_writeback {
        cmd.arg("--kernel-writeback");
    }
    if let Some(n) = a.threads {
        cmd.arg("--threads").arg(n.to_string());
    }
    if let Some(c) = &a.compute {
        cmd.arg("--compute").arg(c);
    }
    // The key file was read here: the daemon gets the key, not the file's name.
    for o in &a.options {
        let kept: Vec<&str> = o
            .split(',')
            .filter(|item| !item.trim().starts_with("key_file="))
            .collect();
        if !kept.iter().all(|k| k.trim().is_empty()) {
            cmd.arg("-o").arg(kept.join(","));
        }
    }
    if key.is_some() {
        // The key goes through a pipe, never an argument or the environment.
        cmd.arg("--key-file").arg("-");
    }
    cmd.arg(image).arg(mp);
    cmd.stdin(if key.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::from(log))
    .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    if let (Some(key), Some(mut stdin)) = (&key, child.stdin.take()) {
        // One newline after the key: what the daemon's reading takes off again.
        let mut bytes = zeroize::Zeroizing::new(key.bytes().to_vec());
        bytes.push(b'\n');
        stdin
            .write_all(&bytes)
            .map_err(|e| format!("cannot hand the key to the daemon: {e}"))?;
    }
    let Some(out) = child.stdout.take() else {
        return Err("daemon has no stdout".into());
    };
    for line in BufReader::new(out).lines() {
        let line = line.map_err(|e| format!("daemon: {e}"))?;
        if line == "ready" {
            return Ok(());
        }
        if let Some(note) = line.strip_prefix("note: ") {
            eprintln!("gpufs: {note}");
        } else if let Some(err) = line.strip_prefix("error: ") {
            let _ = child.wait();
            return Err(err.to_string());
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    Err(format!(
        "the daemon exited ({status}) before the mount was ready; see {}",
        log_path.display()
    ))
}

fn serve(a: &MountArgs, o: &MountOptions, image: &Path, mp: &Path) -> Result<(), String> {
    let choice = crate::compute_cmd::choice(a.compute.as_deref())?;
    if choice == gpufs_compute::Choice::Gpu {
        // A forced GPU must exist: say so now, not at the first search.
        crate::compute_cmd::open(choice)?;
    }
    // A daemon child tells the `gpufs mount` that started it (on its stdout); in the
    // foreground the notes go to the person.
    let report = |line: String| {
        if a.daemon_child {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        } else if let Some(note) = line.strip_prefix("note: ") {
            eprintln!("gpufs: {note}");
        }
    };
    let failed = |e: &String| report(format!("error: {e}"));
    let atime = o.atime.unwrap_or_default();
    let fs = Arc::new(
        open(
            image,
            mp,
            a.read_only,
            &a.cache_size,
            atime,
            o.force,
            a.key_file.as_deref(),
        )
        .inspect_err(failed)?,
    );
    for n in fs.notes() {
        report(format!("note: {n}"));
    }
    if !a.read_only {
        Filesystem::start_commit_timer(&fs, Duration::from_secs(a.commit_interval.max(1)));
        Filesystem::start_preparer(&fs);
    }
    let config = MountConfig {
        source: image.display().to_string(),
        read_only: a.read_only,
        allow_other: a.allow_other,
        threads: a.threads.map(usize::from),
        control_sockets: paths::control_sockets(mp),
        kernel_writeback: a.kernel_writeback,
        no_atime: atime == AtimeMode::NoAtime,
        no_dev: o.no_dev,
        no_suid: o.no_suid,
        no_exec: o.no_exec,
    };
    let mut note = |n: String| report(format!("note: {n}"));
    let mut daemon = Daemon::mount(fs, choice, mp, config, &mut note).inspect_err(failed)?;
    let pid_path = paths::pid_file(mp);
    if let Some(dir) = pid_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&pid_path, format!("{}\n", std::process::id()));
    unmount_on_signals(daemon.unmounter())?;
    report("ready".into());
    let served = daemon.serve();
    let _ = std::fs::remove_file(&pid_path);
    served
}

/// Unmounts (and so ends the daemon, after its final checkpoint) on SIGTERM, SIGINT or
/// SIGHUP.
fn unmount_on_signals(mut unmounter: SessionUnmounter) -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot handle signals: {e}"))?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            if let Err(e) = unmounter.unmount() {
                tracing::error!("unmount on signal failed: {e}");
            }
        }
    });
    Ok(())
}
