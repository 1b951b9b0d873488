//! A mount being served: the FUSE session over a gpufs [`Filesystem`], the control
//! socket beside it (search, du and stats for the `gpufs` front), and the threads that
//! tune the mount once it is live (readahead, one pinned request thread per CPU).
//! The program that mounts opens the filesystem, calls [`Daemon::mount`], says it is
//! ready, and calls [`Daemon::serve`] until the mount goes away.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};
use gpufs_compute::{Choice, LazyCompute};
use gpufs_core::Filesystem;

use crate::{control, readahead, workers, GpufsFuse};

/// How to mount.
pub struct MountConfig {
    /// What the mount table shows as the mount's source (the image).
    pub source: String,
    /// Mount read-only.
    pub read_only: bool,
    /// Let users other than the mounting one use the mount (and its control socket).
    pub allow_other: bool,
    /// Request threads, each pinned to one CPU [default: one per allowed CPU, at most
    /// 16].
    pub threads: Option<usize>,
    /// Where the control socket may go, in order: the first that binds is used; all
    /// are removed at unmount.
    pub control_sockets: Vec<PathBuf>,
    /// Let the kernel's page cache absorb writes (FUSE write-back cache): much faster
    /// small writes; a full disk is then reported at fsync or close.
    pub kernel_writeback: bool,
    /// Kernel mount flags (`-o noatime,nodev,nosuid,noexec`); the daemon keeps access
    /// times itself, the flag shows the mode in the mount table.
    pub no_atime: bool,
    pub no_dev: bool,
    pub no_suid: bool,
    pub no_exec: bool,
}

/// A live mount, until [`Daemon::serve`] returns.
pub struct Daemon {
    session: Session<GpufsFuse>,
    fs: Arc<Filesystem>,
    mountpoint: PathBuf,
    config: MountConfig,
}

impl Daemon {
    /// Mounts `fs` on `mountpoint`, its kernels run as `choice` says (the compute layer
    /// is opened at the first request that needs it). What the person mounting should
    /// know without the mount failing (no control socket) goes to `note`.
    pub fn mount(
        fs: Arc<Filesystem>,
        choice: Choice,
        mountpoint: &Path,
        config: MountConfig,
        note: &mut dyn FnMut(String),
    ) -> Result<Daemon, String> {
        let threads = config.threads.unwrap_or_else(workers::default_count);
        // The control socket exists before the mount appears, so a search right after
        // `gpufs mount` returns finds it.
        let compute = Arc::new(LazyCompute::new(choice));
        fs.set_compute(compute.clone());
        let server = control::Server::new(fs.clone(), compute.clone(), config.allow_other)
            .with_mount_info(&config.source);
        match control::start(server, &config.control_sockets) {
            Ok(path) => tracing::info!("control socket {}", path.display()),
            Err(e) => note(format!("search and du unavailable: {e}")),
        }
        let fuse_config = fuse_config(&config, threads);
        let session = match Session::new(
            GpufsFuse::new(
                fs.clone(),
                compute,
                config.kernel_writeback && !config.read_only,
            ),
            mountpoint,
            &fuse_config,
        ) {
            Ok(s) => s,
            Err(e) => {
                control::remove(&config.control_sockets);
                return Err(format!(
                    "cannot mount {} on {}: {e}",
                    config.source,
                    mountpoint.display()
                ));
            }
        };
        // Finding the mount's device means a stat that this daemon must answer, so it
        // runs on its own thread while the session serves.
        let tune_at = mountpoint.to_path_buf();
        std::thread::spawn(move || readahead::raise(&tune_at));
        std::thread::spawn(move || workers::pin_when_started(threads, Duration::from_secs(5)));
        Ok(Daemon {
            session,
            fs,
            mountpoint: mountpoint.to_path_buf(),
            config,
        })
    }

    /// What ends the mount from another thread (a signal handler's).
    pub fn unmounter(&mut self) -> SessionUnmounter {
        self.session.unmount_callable()
    }

    /// Serves requests until the mount goes away, then writes the final checkpoint and
    /// removes the control socket.
    pub fn serve(self) -> Result<(), String> {
        let served = self.session.run();
        let closed = self.fs.close();
        control::remove(&self.config.control_sockets);
        served.map_err(|e| format!("serving {}: {e}", self.mountpoint.display()))?;
        closed.map_err(|e| format!("final checkpoint of {}: {e}", self.config.source))
    }
}

/// The FUSE session's settings.
fn fuse_config(config: &MountConfig, threads: usize) -> Config {
    let mut fuse = Config::default();
    fuse.mount_options = vec![
        MountOption::FSName(config.source.clone()),
        // The kernel option, not fuser's `Subtype` (which only fusermount passes on):
        // the mount table then says `fuse.gpufs`, as mount(8) and fstab name the type.
        MountOption::CUSTOM("subtype=gpufs".into()),
        MountOption::DefaultPermissions,
        if config.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
        if config.no_dev {
            MountOption::NoDev
        } else {
            MountOption::Dev
        },
        if config.no_suid {
            MountOption::NoSuid
        } else {
            MountOption::Suid
        },
    ];
    if config.no_exec {
        fuse.mount_options.push(MountOption::NoExec);
    }
    if config.no_atime {
        fuse.mount_options.push(MountOption::NoAtime);
    }
    fuse.n_threads = Some(threads);
    fuse.clone_fd = true;
    if config.allow_other {
        fuse.acl = SessionACL::All;
    }
    fuse
}
