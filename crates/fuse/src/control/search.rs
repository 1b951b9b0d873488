//! `search`: the query a request asks for, answered on the socket (JSON and counts,
//! and text for a client that passed no descriptor) or, for plain path output, written
//! straight into the client's standard output while it is found.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use gpufs_compute::kernels::name_match::{NameQuery, ALL_KINDS};
use gpufs_compute::kernels::path_build::PathFormat;
use gpufs_compute::Compute;
use gpufs_core::fs::SearchQuery;
use gpufs_core::FsError;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::{json, Value};

use super::request::{bytes_field, fail, header, Asker};
use super::Server;

/// The pattern a request asks for.
fn pattern(req: &Value) -> Result<NameQuery, FsError> {
    let pattern = bytes_field(req, "pattern").unwrap_or_default();
    let fold = req["ignore_case"].as_bool().unwrap_or(false);
    Ok(match req["mode"].as_str().unwrap_or("substring") {
        "glob" => NameQuery::Glob { pattern, fold },
        "regex" => match String::from_utf8(pattern) {
            Ok(pattern) => NameQuery::Regex { pattern, fold },
            Err(_) => return Err(FsError::BadQuery("regex is not UTF-8".into())),
        },
        _ => NameQuery::Substring {
            needle: pattern,
            fold,
        },
    })
}

/// The whole query a request asks for.
fn query(server: &Server, req: &Value) -> Result<SearchQuery, FsError> {
    let pattern = pattern(req)?;
    let under = match bytes_field(req, "under") {
        Some(rel) => Some(server.fs.resolve_path(&rel)?),
        None => None,
    };
    Ok(SearchQuery {
        pattern,
        full_path: req["full_path"].as_bool().unwrap_or(false),
        kinds: req["kinds"]
            .as_u64()
            .and_then(|k| u32::try_from(k).ok())
            .unwrap_or(ALL_KINDS),
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
    })
}

pub(super) fn answer(
    server: &Server,
    compute: &Compute,
    req: &Value,
    asker: &Asker,
    passed: Option<OwnedFd>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let q = match query(server, req) {
        Ok(q) => q,
        Err(e) => return fail(out, &e),
    };
    if let Some(names) = snapshots_asked(server, req) {
        return answer_snapshots(server, &q, asker, &names, out);
    }
    if let (true, Some(fd)) = (q.text.is_some() && q.want_paths, passed) {
        return answer_into(server, compute, &q, asker, fd, out);
    }
    let hits = match server.fs.search(compute, &q, asker.caller, &asker.groups) {
        Ok(hits) => hits,
        Err(e) => return fail(out, &e),
    };
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

/// The snapshots a request asks to search (`snapshots`: names; `all_snapshots`), if any.
fn snapshots_asked(server: &Server, req: &Value) -> Option<Vec<Vec<u8>>> {
    if req["all_snapshots"].as_bool() == Some(true) {
        return Some(
            server
                .fs
                .snapshot_names()
                .into_iter()
                .map(|(_, n)| n)
                .collect(),
        );
    }
    let list = req["snapshots"].as_array()?;
    Some(
        list.iter()
            .map(|v| {
                v.as_array()
                    .map(|b| {
                        b.iter()
                            .filter_map(|x| x.as_u64().map(|x| x as u8))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect(),
    )
}

/// A search of snapshots, answered on the socket: each hit labelled by where it is
/// readable, `/.gpufs/snapshots/NAME/...` under the mount.
fn answer_snapshots(
    server: &Server,
    q: &gpufs_core::fs::SearchQuery,
    asker: &Asker,
    names: &[Vec<u8>],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut found = Vec::new();
    for name in names {
        let mut label = b"/.gpufs/snapshots/".to_vec();
        label.extend_from_slice(name);
        let mut qs = q.clone();
        if let Some(t) = &mut qs.text {
            let mut prefix = std::mem::take(&mut t.prefix);
            prefix.extend_from_slice(&label);
            t.prefix = prefix;
        }
        match server
            .fs
            .search_snapshot(name, &qs, asker.caller, &asker.groups)
        {
            Ok(hits) => found.push((label, hits)),
            Err(FsError::NotFound) => {
                let error = format!("no snapshot named {:?}", String::from_utf8_lossy(name));
                return header(out, &json!({"ok": false, "error": error, "code": 4}));
            }
            Err(e) => return fail(out, &e),
        }
    }
    let count: usize = found.iter().map(|(_, h)| h.len()).sum();
    let how = if q.text.is_some() {
        json!("socket")
    } else {
        Value::Null
    };
    header(out, &json!({"ok": true, "count": count, "text": how}))?;
    for (label, hits) in &found {
        if q.text.is_some() {
            for piece in hits.text() {
                out.write_all(piece)?;
            }
        } else if q.want_paths {
            for i in 0..hits.len() {
                out.write_all(label)?;
                out.write_all(hits.path(i))?;
                out.write_all(b"\0")?;
            }
        }
    }
    Ok(())
}

/// A search whose text goes straight to the client's output `fd`, which it passed:
/// each piece is written there by a thread of its own as soon as the search hands it
/// over, so the client's reader starts on the first piece while the rest are found,
/// and a slow reader never holds the namespace lock. The header follows the text, so
/// the client ends after its output.
fn answer_into(
    server: &Server,
    compute: &Compute,
    q: &SearchQuery,
    asker: &Asker,
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
    let found = server.fs.search_text(
        compute,
        q,
        asker.caller,
        &asker.groups,
        &backlog,
        &mut |piece| {
            sent.set(sent.get() + piece.len());
            // The writer only stops early when the reader is gone: nothing to keep then.
            let _ = pieces.send(piece);
        },
    );
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
