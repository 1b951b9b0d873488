//! The control socket of a running mount: `gpufs search`, `gpufs du` and `gpufs stats`
//! ask the daemon, which answers from the live namespace. One JSON request line; the
//! answer is one JSON header line, then (search, du) records ending in NUL, so paths
//! with any bytes pass unchanged.
//!
//! Who may ask: without `--allow-other` the socket is mode 0600 and only the mounting
//! user (and root) may connect; with it, anyone. Every request runs with the peer's
//! uid, gid and groups (`SO_PEERCRED`), so search never shows a name in a directory
//! that user could not list.

use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use gpufs_compute::kernels::name_match::NameQuery;
use gpufs_compute::kernels::path_build::PathFormat;
use gpufs_compute::{Compute, LazyCompute};
use gpufs_core::fs::{DuRows, SearchQuery};
use gpufs_core::{Caller, Filesystem, FsError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

use crate::client::bytes_field;
use crate::paths;

/// Most bytes of one request line.
const MAX_REQUEST: u64 = 1 << 20;

/// The daemon side: what a request needs.
pub struct Server {
    pub fs: Arc<Filesystem>,
    pub allow_other: bool,
    /// Shared with the FUSE adapter's search directory.
    compute: Arc<LazyCompute>,
}

/// Binds the socket for `mountpoint` and serves it on a thread. Returns its path.
pub fn start(server: Server, mountpoint: &Path) -> Result<PathBuf, String> {
    let name = paths::control_name(mountpoint);
    let mut last_err = String::new();
    for dir in paths::control_dirs() {
        if std::fs::create_dir_all(&dir).is_err() {
            continue;
        }
        let path = dir.join(&name);
        let _ = std::fs::remove_file(&path);
        match UnixListener::bind(&path) {
            Ok(listener) => {
                let mode = if server.allow_other { 0o666 } else { 0o600 };
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let server = Arc::new(server);
                std::thread::Builder::new()
                    .name("gpufs-control".into())
                    .spawn(move || serve(listener, server))
                    .map_err(|e| format!("cannot start the control thread: {e}"))?;
                return Ok(path);
            }
            Err(e) => last_err = format!("{}: {e}", path.display()),
        }
    }
    Err(format!("cannot create the control socket: {last_err}"))
}

/// Removes the socket of `mountpoint` (at unmount).
pub fn remove(mountpoint: &Path) {
    let name = paths::control_name(mountpoint);
    for dir in paths::control_dirs() {
        let _ = std::fs::remove_file(dir.join(&name));
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
                if let Err(e) = answer(&server, stream) {
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

/// The peer's credentials and groups, or `None` when the kernel will not say.
fn peer(stream: &UnixStream) -> Option<(Caller, Vec<u32>)> {
    let cred =
        nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    let caller = Caller {
        uid: cred.uid(),
        gid: cred.gid(),
    };
    // Root passes every permission check: its groups are never asked for.
    let groups = match u32::try_from(cred.pid()) {
        Ok(pid) if caller.uid != 0 => gpufs_fuse::caller::supplementary_groups(pid),
        _ => Vec::new(),
    };
    Some((caller, groups))
}

impl Server {
    pub fn new(fs: Arc<Filesystem>, compute: Arc<LazyCompute>, allow_other: bool) -> Server {
        Server {
            fs,
            allow_other,
            compute,
        }
    }

    /// The compute layer, opened on first use (a mount that is never searched never
    /// loads a GPU driver).
    fn compute(&self) -> Result<&Compute, String> {
        self.compute.get()
    }
}

fn header(w: &mut impl Write, v: &Value) -> std::io::Result<()> {
    writeln!(w, "{v}")
}

fn fail(w: &mut impl Write, e: &FsError) -> std::io::Result<()> {
    let code = match e {
        FsError::BadQuery(_) => 2,
        _ => 1,
    };
    header(
        w,
        &json!({"ok": false, "error": e.to_string(), "code": code}),
    )
}

fn answer(server: &Server, stream: UnixStream) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(stream.try_clone()?);
    let Some((caller, groups)) = peer(&stream) else {
        return header(
            &mut out,
            &json!({"ok": false, "error": "no peer credentials", "code": 1}),
        );
    };
    // Without --allow-other only the mounting user and root may ask.
    let me = nix::unistd::getuid().as_raw();
    if !server.allow_other && caller.uid != 0 && caller.uid != me {
        return header(
            &mut out,
            &json!({"ok": false, "error": "permission denied", "code": 1}),
        );
    }
    let (line, passed) = read_request(&stream)?;
    let req: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => {
            return header(
                &mut out,
                &json!({"ok": false, "error": format!("bad request: {e}"), "code": 2}),
            )
        }
    };
    let compute = match server.compute() {
        Ok(c) => c,
        Err(e) => return header(&mut out, &json!({"ok": false, "error": e, "code": 1})),
    };
    match req.get("op").and_then(Value::as_str) {
        Some("search") => search(server, compute, &req, caller, &groups, passed, &mut out),
        Some("du") => du(server, compute, &req, caller, &groups, &mut out),
        Some("stats") => stats(server, compute, &mut out),
        _ => header(
            &mut out,
            &json!({"ok": false, "error": "unknown op", "code": 2}),
        ),
    }?;
    out.flush()
}

/// The request line, and the descriptor the client passed with it (SCM_RIGHTS), if any:
/// the client's standard output, for answers it prints as they are.
fn read_request(stream: &UnixStream) -> std::io::Result<(String, Option<OwnedFd>)> {
    let mut line = Vec::new();
    let mut passed = None;
    let mut chunk = [0u8; 8192];
    while !line.contains(&b'\n') && (line.len() as u64) < MAX_REQUEST {
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let mut iov = [IoSliceMut::new(&mut chunk)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        let n = msg.bytes;
        for c in msg.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: the kernel has just installed `raw` in this process's
                    // table for this message; nothing else holds it, so it is owned
                    // here exactly once (extra ones close when dropped).
                    #[allow(unsafe_code)]
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    passed.get_or_insert(owned);
                }
            }
        }
        if n == 0 {
            break;
        }
        line.extend_from_slice(&chunk[..n]);
    }
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    line.truncate(end);
    Ok((String::from_utf8_lossy(&line).into_owned(), passed))
}

/// Writes all of `bytes` to the client's descriptor `fd`, waiting where it is
/// non-blocking and full. Ok(false): its reader went away.
fn write_passed(fd: &mut std::fs::File, mut bytes: &[u8]) -> std::io::Result<bool> {
    while !bytes.is_empty() {
        match fd.write(bytes) {
            Ok(0) => return Ok(false),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
                poll(&mut p, PollTimeout::NONE).map_err(std::io::Error::from)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The inode a path relative to the mount root names.
fn resolve(server: &Server, rel: &[u8]) -> Result<u64, FsError> {
    server.fs.resolve_path(rel)
}

fn search(
    server: &Server,
    compute: &Compute,
    req: &Value,
    caller: Caller,
    groups: &[u32],
    passed: Option<OwnedFd>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let pattern = bytes_field(req, "pattern").unwrap_or_default();
    let fold = req["ignore_case"].as_bool().unwrap_or(false);
    let query = match req["mode"].as_str().unwrap_or("substring") {
        "glob" => NameQuery::Glob { pattern, fold },
        "regex" => match String::from_utf8(pattern) {
            Ok(pattern) => NameQuery::Regex { pattern, fold },
            Err(_) => return fail(out, &FsError::BadQuery("regex is not UTF-8".into())),
        },
        _ => NameQuery::Substring {
            needle: pattern,
            fold,
        },
    };
    let under = match bytes_field(req, "under") {
        Some(rel) => match resolve(server, &rel) {
            Ok(ino) => Some(ino),
            Err(e) => return fail(out, &e),
        },
        None => None,
    };
    let q = SearchQuery {
        pattern: query,
        full_path: req["full_path"].as_bool().unwrap_or(false),
        kinds: req["kinds"]
            .as_u64()
            .and_then(|k| u32::try_from(k).ok())
            .unwrap_or(gpufs_compute::kernels::name_match::ALL_KINDS),
        min_size: req["min_size"].as_u64(),
        max_size: req["max_size"].as_u64(),
        newer_ns: req["newer_ns"].as_i64(),
        older_ns: req["older_ns"].as_i64(),
        under,
        limit: req["limit"].as_u64().map(|l| l as usize),
        want_paths: !req["count_only"].as_bool().unwrap_or(false),
        // "text_end": the client prints the paths as they come (`prefix` + path +
        // `end`), so they are written out here once, on every core, and sent as is.
        text: req["text_end"]
            .as_u64()
            .and_then(|e| u8::try_from(e).ok())
            .map(|end| PathFormat {
                prefix: bytes_field(req, "text_prefix").unwrap_or_default(),
                end,
            }),
    };
    if let (true, Some(fd)) = (q.text.is_some() && q.want_paths, passed) {
        return search_to(server, compute, &q, caller, groups, fd, out);
    }
    match server.fs.search(compute, &q, caller, groups) {
        Ok(hits) => {
            // The text goes after the header on the socket.
            let how = if q.text.is_some() {
                json!("socket")
            } else {
                Value::Null
            };
            header(out, &json!({"ok": true, "count": hits.len(), "text": how}))?;
            if q.text.is_some() {
                for piece in hits.text() {
                    out.write_all(piece)?;
                }
            } else if q.want_paths {
                for i in 0..hits.len() {
                    out.write_all(hits.path(i))?;
                    out.write_all(b"\0")?;
                }
            }
            Ok(())
        }
        Err(e) => fail(out, &e),
    }
}

/// A search whose text goes straight to the client's output `fd`, which it passed:
/// each piece is written there by a thread of its own as soon as the search hands it
/// over, so the client's reader starts on the first piece while the rest are found,
/// and a slow reader never holds the namespace lock. The header follows the text, so
/// the client ends after its output.
fn search_to(
    server: &Server,
    compute: &Compute,
    q: &SearchQuery,
    caller: Caller,
    groups: &[u32],
    fd: OwnedFd,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let (pieces, to_write) = std::sync::mpsc::channel::<Vec<u8>>();
    // Bytes handed to the writer, and bytes it has written: what lies between waits for
    // the reader.
    let sent = std::cell::Cell::new(0usize);
    let written = Arc::new(AtomicUsize::new(0));
    let writer = std::thread::Builder::new()
        .name("gpufs-output".into())
        .spawn({
            let written = written.clone();
            move || -> std::io::Result<()> {
                let mut fd = std::fs::File::from(fd);
                for piece in to_write {
                    if !write_passed(&mut fd, &piece)? {
                        // Its reader went away: the rest is dropped as it comes.
                        break;
                    }
                    written.fetch_add(piece.len(), SeqCst);
                }
                Ok(())
            }
        })?;
    let backlog = || sent.get().saturating_sub(written.load(SeqCst));
    let found = server
        .fs
        .search_text(compute, q, caller, groups, &backlog, &mut |piece| {
            sent.set(sent.get() + piece.len());
            // The writer only stops early when the reader is gone: nothing to keep then.
            let _ = pieces.send(piece);
        });
    drop(pieces);
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the output thread panicked")));
    match found {
        Ok(count) => {
            written?;
            header(out, &json!({"ok": true, "count": count, "text": "written"}))
        }
        Err(e) => fail(out, &e),
    }
}

fn du(
    server: &Server,
    compute: &Compute,
    req: &Value,
    caller: Caller,
    groups: &[u32],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let rel = bytes_field(req, "path").unwrap_or_default();
    let dir = match resolve(server, &rel) {
        Ok(d) => d,
        Err(e) => return fail(out, &e),
    };
    let rows = if req["all"].as_bool().unwrap_or(false) {
        DuRows::All
    } else if req["summary"].as_bool().unwrap_or(false) {
        DuRows::Dir
    } else {
        DuRows::Children
    };
    match server.fs.du(compute, dir, rows, caller, groups) {
        Ok(entries) => {
            header(out, &json!({"ok": true, "count": entries.len()}))?;
            for e in entries {
                let t = e.totals;
                write!(out, "{} {} {} {}\t", t.bytes, t.allocated, t.files, t.dirs)?;
                out.write_all(&e.path)?;
                out.write_all(b"\0")?;
            }
            Ok(())
        }
        Err(e) => fail(out, &e),
    }
}

fn stats(server: &Server, compute: &Compute, out: &mut impl Write) -> std::io::Result<()> {
    let kernels: Vec<Value> = compute
        .stats
        .snapshot()
        .into_iter()
        .map(|(k, b, t)| {
            json!({"kernel": k, "backend": b.to_string(), "calls": t.calls, "items": t.items,
                   "seconds": t.nanos as f64 / 1e9})
        })
        .collect();
    let c = server.fs.counters();
    header(
        out,
        &json!({"ok": true, "count": 0,
                "compute": {"choice": compute.choice().to_string(),
                            "adapter": compute.gpu().map(|g| g.info.name.clone()),
                            "software": compute.gpu().map(|g| g.software),
                            "kernels": kernels},
                "namespace_bytes": server.fs.namespace_bytes(),
                "counters": format!("{c:?}")}),
    )
}
