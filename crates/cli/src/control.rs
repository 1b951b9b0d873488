//! The control socket of a running mount: `gpufs search`, `gpufs du` and `gpufs stats`
//! ask the daemon, which answers from the live namespace. One JSON request line; the
//! answer is one JSON header line, then (search, du) records ending in NUL, so paths
//! with any bytes pass unchanged.
//!
//! Who may ask: without `--allow-other` the socket is mode 0600 and only the mounting
//! user (and root) may connect; with it, anyone. Every request runs with the peer's
//! uid, gid and groups (`SO_PEERCRED`), so search never shows a name in a directory
//! that user could not list.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gpufs_compute::kernels::name_match::NameQuery;
use gpufs_compute::{Compute, LazyCompute};
use gpufs_core::fs::SearchQuery;
use gpufs_core::{Caller, Filesystem, FsError};
use serde_json::{json, Value};

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

fn serve(listener: UnixListener, server: Arc<Server>) {
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let server = server.clone();
        let _ = std::thread::Builder::new()
            .name("gpufs-request".into())
            .spawn(move || {
                if let Err(e) = answer(&server, stream) {
                    tracing::info!("control request failed: {e}");
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
    let groups = u32::try_from(cred.pid())
        .map(gpufs_fuse::caller::supplementary_groups)
        .unwrap_or_default();
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

fn bytes_field(v: &Value, key: &str) -> Option<Vec<u8>> {
    v.get(key)?
        .as_array()?
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect()
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
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line)?;
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
        Some("search") => search(server, compute, &req, caller, &groups, &mut out),
        Some("du") => du(server, compute, &req, caller, &groups, &mut out),
        Some("stats") => stats(server, compute, &mut out),
        _ => header(
            &mut out,
            &json!({"ok": false, "error": "unknown op", "code": 2}),
        ),
    }?;
    out.flush()
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
    };
    match server.fs.search(compute, &q, caller, groups) {
        Ok(hits) => {
            header(out, &json!({"ok": true, "count": hits.len()}))?;
            if !req["count_only"].as_bool().unwrap_or(false) {
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
    let all = req["all"].as_bool().unwrap_or(false);
    match server.fs.du(compute, dir, all, caller, groups) {
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

/// The client side: one request to the mount at `mountpoint`; the header and the
/// NUL-ended records that follow it.
pub fn ask(mountpoint: &Path, req: &Value) -> Result<(Value, Vec<Vec<u8>>), String> {
    let mut records = Vec::new();
    let head = ask_each(mountpoint, req, |r| {
        records.push(r.to_vec());
        Ok(())
    })?;
    Ok((head, records))
}

/// Like [`ask`], handing each record to `each` as it arrives instead of keeping them.
pub fn ask_each(
    mountpoint: &Path,
    req: &Value,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<Value, String> {
    let path = socket_of(mountpoint).ok_or_else(|| {
        format!(
            "{} is not a running gpufs mount (no control socket)",
            mountpoint.display()
        )
    })?;
    let mut stream = UnixStream::connect(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(stream, "{req}").map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let head: Value =
        serde_json::from_str(&line).map_err(|e| format!("bad answer from the daemon: {e}"))?;
    let mut rec = Vec::new();
    loop {
        rec.clear();
        let n = reader.read_until(0, &mut rec).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        if rec.last() == Some(&0) {
            rec.pop();
        }
        match each(&rec) {
            Ok(()) => {}
            // The reader of our output went away (| head): stop quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(head)
}

/// The control socket of the mount at `mountpoint`, if its daemon made one.
fn socket_of(mountpoint: &Path) -> Option<PathBuf> {
    let name = paths::control_name(mountpoint);
    paths::control_dirs()
        .into_iter()
        .map(|d| d.join(&name))
        .find(|p| p.exists())
}

/// The gpufs mount holding `path` (the longest mount point that is a prefix of it).
pub fn mount_of(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            if !fstype.starts_with("fuse") {
                return None;
            }
            let mp = left.split_whitespace().nth(4)?;
            Some(PathBuf::from(unescape(mp)))
        })
        // A FUSE mount is ours when its daemon has a control socket.
        .filter(|mp| path.starts_with(mp) && socket_of(mp).is_some())
        .max_by_key(|mp| mp.as_os_str().len())
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
