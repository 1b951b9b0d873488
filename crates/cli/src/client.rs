//! The client side of the control socket (the daemon's side is `gpufs_fuse`'s
//! `control` module): `gpufs search`, `gpufs du` and `gpufs stats` send one JSON
//! request line to the mount's daemon and read its answer. Kept apart from the daemon's
//! side, which needs the filesystem, so that the small `gpufs` front program holds only
//! this.

use std::io::{BufRead, BufReader, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde_json::{json, Value};

use crate::exit::Failure;
use crate::paths;

/// The mount point to ask and a path relative to its root for `p` (`mountpoint`, or
/// else the gpufs mount holding `p`).
pub fn locate(mountpoint: Option<&Path>, p: &Path) -> Result<(PathBuf, Vec<u8>), String> {
    let abs = std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mp = match mountpoint {
        Some(m) => std::fs::canonicalize(m).map_err(|e| format!("{}: {e}", m.display()))?,
        None => mount_of(&abs)
            .ok_or_else(|| format!("{} is not inside a gpufs mount", abs.display()))?,
    };
    let rel = abs
        .strip_prefix(&mp)
        .map_err(|_| format!("{} is not inside {}", abs.display(), mp.display()))?;
    let mut bytes = b"/".to_vec();
    bytes.extend_from_slice(rel.as_os_str().as_bytes());
    Ok((mp, bytes))
}

/// What goes before a path relative to the mount root to make it whole: the mount
/// point, empty for a mount on `/`.
pub fn mount_prefix(mountpoint: &Path) -> &[u8] {
    let base = mountpoint.as_os_str().as_bytes();
    if base == b"/" {
        b""
    } else {
        base
    }
}

/// What a long operation (scrub, dedup) answered: the header, the report of its last
/// `R` record, and the error of an `E` record.
pub struct Streamed {
    pub head: Value,
    pub report: Option<Value>,
    pub failure: Option<String>,
}

/// Asks a long operation, showing its `P done total bytes` records as a progress bar
/// (`label` before it, `bytes` named by `unit` after it) when `bar` is set.
pub fn ask_with_progress(
    mountpoint: &Path,
    req: &Value,
    bar: bool,
    label: &str,
    unit: &str,
) -> Result<Streamed, String> {
    let bar = bar.then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{label} {{bar:40}} {{pos}}/{{len}} {{msg}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut report = None;
    let mut failure = None;
    let head = ask_each(mountpoint, req, |rec| {
        let text = String::from_utf8_lossy(rec);
        if let Some(p) = text.strip_prefix("P ") {
            let n: Vec<u64> = p.split(' ').filter_map(|x| x.parse().ok()).collect();
            if let (Some(b), &[done, total, bytes]) = (&bar, &n[..]) {
                b.set_length(total);
                b.set_position(done);
                b.set_message(format!("{} MiB {unit}", bytes >> 20));
            }
        } else if let Some(r) = text.strip_prefix("R ") {
            report = serde_json::from_str(r).ok();
        } else if let Some(e) = text.strip_prefix("E ") {
            failure = Some(e.to_string());
        }
        Ok(())
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(Streamed {
        head,
        report,
        failure,
    })
}

/// The daemon's refusal in an answer's header, with the exit code it asks for (else 1).
pub fn refusal(head: &Value, what: &str) -> Result<(), Failure> {
    if head["ok"].as_bool() == Some(true) {
        return Ok(());
    }
    Err(Failure {
        code: head["code"].as_u64().unwrap_or(1) as u8,
        msg: head["error"]
            .as_str()
            .map_or_else(|| format!("{what} failed"), str::to_string),
    })
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
    each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<Value, String> {
    let mut reader = connect(mountpoint, req)?;
    let head = read_head(&mut reader)?;
    each_record(reader, each)?;
    Ok(head)
}

/// One request whose answer's body the caller reads itself: the header, and the
/// connection positioned after it.
pub fn ask_raw(mountpoint: &Path, req: &Value) -> Result<(Value, BufReader<UnixStream>), String> {
    let mut reader = connect(mountpoint, req)?;
    let head = read_head(&mut reader)?;
    Ok((head, reader))
}

/// Hands each NUL-ended record of the answer's body to `each`.
fn each_record(
    mut reader: BufReader<UnixStream>,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), String> {
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
    Ok(())
}

/// Like [`ask`], for an answer whose body is text to pass on as is: each path written
/// as `prefix`, path, `end`. After the header, everything the daemon sends is copied to
/// `out` in large blocks. A reader of `out` that went away (| head) ends the copy
/// quietly.
///
/// `direct`, when given, is the descriptor `out` writes to: it goes to the daemon, which
/// then writes the text there itself (one copy instead of three) and answers only the
/// header.
pub fn ask_text(
    mountpoint: &Path,
    req: &Value,
    (prefix, end): (&[u8], u8),
    direct: Option<BorrowedFd<'_>>,
    out: &mut impl Write,
) -> Result<Value, String> {
    let mut req = req.clone();
    req["text_prefix"] = json!(prefix);
    req["text_end"] = json!(end);
    if direct.is_some() {
        req["text_fd"] = json!(true);
    }
    let mut reader = connect_passing(mountpoint, &req, direct)?;
    let head = read_head(&mut reader)?;
    if head["ok"].as_bool() != Some(true) || head["text"] == "written" {
        return Ok(head);
    }
    if head["text"] != "socket" {
        // A daemon from before the text answers sends NUL-ended paths: format them here.
        each_record(reader, |r| {
            out.write_all(prefix)?;
            out.write_all(r)?;
            out.write_all(&[end])
        })?;
        return Ok(head);
    }
    // What the header read brought along first, then the socket directly.
    let mut pass = |bytes: &[u8]| match out.write_all(bytes) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.to_string()),
    };
    if !pass(reader.buffer())? {
        return Ok(head);
    }
    let mut stream = reader.into_inner();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        if !pass(&buf[..n])? {
            break;
        }
    }
    Ok(head)
}

/// Connects to the mount's daemon and sends `req`, passing `fd` along with it
/// (SCM_RIGHTS) when given.
fn connect_passing(
    mountpoint: &Path,
    req: &Value,
    fd: Option<BorrowedFd<'_>>,
) -> Result<BufReader<UnixStream>, String> {
    let path = socket_of(mountpoint).ok_or_else(|| {
        format!(
            "{} is not a running gpufs mount (no control socket)",
            mountpoint.display()
        )
    })?;
    let mut stream = UnixStream::connect(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = format!("{req}\n");
    let mut sent = 0;
    if let Some(fd) = fd {
        let fds = [fd.as_raw_fd()];
        sent = sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(line.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    stream
        .write_all(&line.as_bytes()[sent..])
        .map_err(|e| e.to_string())?;
    Ok(BufReader::with_capacity(1 << 16, stream))
}

fn connect(mountpoint: &Path, req: &Value) -> Result<BufReader<UnixStream>, String> {
    connect_passing(mountpoint, req, None)
}

/// The answer's header line.
fn read_head(reader: &mut BufReader<UnixStream>) -> Result<Value, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("bad answer from the daemon: {e}"))
}

/// The control socket of the mount at `mountpoint`, if its daemon made one.
fn socket_of(mountpoint: &Path) -> Option<PathBuf> {
    paths::control_sockets(mountpoint)
        .into_iter()
        .find(|p| p.exists())
}

/// The gpufs mount holding `path` (the longest mount point that is a prefix of it).
fn mount_of(path: &Path) -> Option<PathBuf> {
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
