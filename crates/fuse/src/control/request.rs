//! One connection: who asks (the peer's credentials), the request line with the
//! descriptor it may carry, and the answer's header, whichever operation it asks for.

use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use gpufs_core::{Caller, FsError};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

use super::{dedup, du, property, scrub, search, send, snapshot, stats, Server};

/// Most bytes of one request line.
const MAX_REQUEST: u64 = 1 << 20;

/// Who asks: the peer's credentials and supplementary groups.
pub(super) struct Asker {
    pub caller: Caller,
    pub groups: Vec<u32>,
}

/// The peer's credentials and groups, or `None` when the kernel will not say.
fn peer(stream: &UnixStream) -> Option<Asker> {
    let cred =
        nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    let caller = Caller {
        uid: cred.uid(),
        gid: cred.gid(),
        umask: 0,
    };
    // Root passes every permission check: its groups are never asked for.
    let groups = match u32::try_from(cred.pid()) {
        Ok(pid) if caller.uid != 0 => crate::caller::supplementary_groups(pid),
        _ => Vec::new(),
    };
    Some(Asker { caller, groups })
}

/// Writes the answer's header line.
pub(super) fn header(w: &mut impl Write, v: &Value) -> std::io::Result<()> {
    writeln!(w, "{v}")
}

/// A refusal: the header with the message and the exit code the client should end
/// with (2: the request or its pattern is wrong; 1: anything else).
fn refuse(w: &mut impl Write, error: &str, code: u8) -> std::io::Result<()> {
    header(w, &json!({"ok": false, "error": error, "code": code}))
}

/// The refusal for a failed filesystem call.
pub(super) fn fail(w: &mut impl Write, e: &FsError) -> std::io::Result<()> {
    let code = match e {
        FsError::BadQuery(_) => 2,
        _ => 1,
    };
    refuse(w, &e.to_string(), code)
}

/// A byte string sent as a JSON array of numbers (paths and patterns may hold any
/// bytes).
pub(super) fn bytes_field(v: &Value, key: &str) -> Option<Vec<u8>> {
    v.get(key)?
        .as_array()?
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect()
}

/// Reads one request from `stream` and answers it there.
pub(super) fn answer(server: &Server, stream: UnixStream) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(stream.try_clone()?);
    let Some(asker) = peer(&stream) else {
        return refuse(&mut out, "no peer credentials", 1);
    };
    // Without --allow-other only the mounting user and root may ask.
    let me = nix::unistd::getuid().as_raw();
    if !server.allow_other && asker.caller.uid != 0 && asker.caller.uid != me {
        return refuse(&mut out, "permission denied", 1);
    }
    let (line, passed) = read_request(&stream)?;
    let req: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => return refuse(&mut out, &format!("bad request: {e}"), 2),
    };
    // Properties, scrub, dedup and snapshots need no compute layer.
    match req.get("op").and_then(Value::as_str) {
        Some("property") => {
            property::answer(server, &req, &asker, &mut out)?;
            return out.flush();
        }
        Some("scrub") => {
            scrub::answer(server, &req, &mut out)?;
            return out.flush();
        }
        Some("dedup") => {
            dedup::answer(server, &req, &mut out)?;
            return out.flush();
        }
        Some("snapshot") => {
            snapshot::answer(server, &req, &asker, &mut out)?;
            return out.flush();
        }
        Some("send") => {
            send::answer(server, &req, &asker, &mut out)?;
            return out.flush();
        }
        _ => {}
    }
    let compute = match server.compute() {
        Ok(c) => c,
        Err(e) => return refuse(&mut out, &e, 1),
    };
    match req.get("op").and_then(Value::as_str) {
        Some("search") => search::answer(server, compute, &req, &asker, passed, &mut out),
        Some("du") => du::answer(server, compute, &req, &asker, &mut out),
        Some("stats") => stats::answer(server, compute, &mut out),
        _ => refuse(&mut out, "unknown op", 2),
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
