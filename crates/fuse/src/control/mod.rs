//! The control socket of a running mount: `gpufs search`, `gpufs du` and `gpufs stats`
//! ask the daemon, which answers from the live namespace. One JSON request line; the
//! answer is one JSON header line, then (search, du) records ending in NUL, so paths
//! with any bytes pass unchanged.
//!
//! Who may ask: without `--allow-other` the socket is mode 0600 and only the mounting
//! user (and root) may connect; with it, anyone. Every request runs with the peer's
//! uid, gid and groups (`SO_PEERCRED`), so search never shows a name in a directory
//! that user could not list.
//!
//! `mod.rs` binds the socket and hands connections to request threads; `request.rs`
//! reads a request and dispatches it; `search.rs`, `du.rs` and `stats.rs` answer.

mod dedup;
mod du;
mod property;
mod request;
mod scrub;
mod search;
mod send;
mod snapshot;
mod stats;
mod stream;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use gpufs_compute::{Compute, LazyCompute};
use gpufs_core::Filesystem;

/// The daemon side: what a request needs.
pub(crate) struct Server {
    fs: Arc<Filesystem>,
    allow_other: bool,
    /// Shared with the FUSE adapter's search directory.
    compute: Arc<LazyCompute>,
    /// How this mount was made (image, program, arguments, directory): what
    /// `gpufs snapshot rollback` needs to mount it again after rolling the image back.
    mount_info: serde_json::Value,
}

impl Server {
    pub(crate) fn new(fs: Arc<Filesystem>, compute: Arc<LazyCompute>, allow_other: bool) -> Server {
        Server {
            fs,
            allow_other,
            compute,
            mount_info: serde_json::Value::Null,
        }
    }

    /// Records how the mount was made: its image and this process's command line.
    pub(crate) fn with_mount_info(mut self, image: &str) -> Server {
        let args: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        self.mount_info = serde_json::json!({
            "image": image,
            "exe": std::env::current_exe().ok().map(|p| p.display().to_string()),
            "args": args,
            "cwd": std::env::current_dir().ok().map(|p| p.display().to_string()),
        });
        self
    }

    /// The compute layer, opened on first use (a mount that is never searched never
    /// loads a GPU driver).
    fn compute(&self) -> Result<&Compute, String> {
        self.compute.get()
    }
}

/// Binds the first of `sockets` that can be bound (their directories are made as
/// needed) and serves it on a thread. Returns its path.
pub(crate) fn start(server: Server, sockets: &[PathBuf]) -> Result<PathBuf, String> {
    let mut last_err = String::new();
    for path in sockets {
        let Some(dir) = path.parent() else { continue };
        if std::fs::create_dir_all(dir).is_err() {
            continue;
        }
        let _ = std::fs::remove_file(path);
        match UnixListener::bind(path) {
            Ok(listener) => {
                let mode = if server.allow_other { 0o666 } else { 0o600 };
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let server = Arc::new(server);
                std::thread::Builder::new()
                    .name("gpufs-control".into())
                    .spawn(move || serve(listener, server))
                    .map_err(|e| format!("cannot start the control thread: {e}"))?;
                return Ok(path.clone());
            }
            Err(e) => last_err = format!("{}: {e}", path.display()),
        }
    }
    Err(format!("cannot create the control socket: {last_err}"))
}

/// Removes every one of `sockets` (at unmount).
pub(crate) fn remove(sockets: &[PathBuf]) {
    for path in sockets {
        let _ = std::fs::remove_file(path);
    }
}

/// Request threads kept waiting for the next request, at most; more run while more
/// requests are in flight, and end when theirs is answered.
const IDLE_REQUEST_THREADS: usize = 4;

/// Answers each connection on a thread of its own (a slow reader of one answer holds
/// up no other), reusing threads that finished an earlier one, so a query answered in
/// a millisecond does not also pay for starting a thread. A connection goes to a
/// waiting thread only after claiming one (the count of waiting threads taken down by
/// one), so none waits in the queue while every thread is busy.
fn serve(listener: UnixListener, server: Arc<Server>) {
    let (to_waiting, queue) = std::sync::mpsc::channel::<UnixStream>();
    let queue = Arc::new(std::sync::Mutex::new(queue));
    let waiting = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(mut stream) = conn else { continue };
        if waiting
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            match to_waiting.send(stream) {
                Ok(()) => continue,
                // Cannot happen (the queue lives as long as this loop): answer it anew.
                Err(back) => stream = back.0,
            }
        }
        let (server, queue, waiting) = (server.clone(), queue.clone(), waiting.clone());
        let _ = std::thread::Builder::new()
            .name("gpufs-request".into())
            .spawn(move || loop {
                if let Err(e) = request::answer(&server, stream) {
                    tracing::info!("control request failed: {e}");
                }
                let wait = |n: usize| (n < IDLE_REQUEST_THREADS).then_some(n + 1);
                if waiting.fetch_update(SeqCst, SeqCst, wait).is_err() {
                    return;
                }
                let next = match queue.lock() {
                    Ok(q) => q.recv(),
                    Err(_) => return,
                };
                match next {
                    Ok(s) => stream = s,
                    Err(_) => return,
                }
            });
    }
}
