//! `du`: the totals of a directory and the directories below it, one NUL-ended record
//! each (`bytes allocated files dirs<TAB>path`); the header also says how many bytes of
//! the directory's records are shared (clones, dedup).

use std::io::Write;

use gpufs_compute::Compute;
use gpufs_core::fs::DuRows;
use serde_json::{json, Value};

use super::request::{bytes_field, fail, header, Asker};
use super::Server;

pub(super) fn answer(
    server: &Server,
    compute: &Compute,
    req: &Value,
    asker: &Asker,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let rel = bytes_field(req, "path").unwrap_or_default();
    let dir = match server.fs.resolve_path(&rel) {
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
    let entries = match server
        .fs
        .du(compute, dir, rows, asker.caller, &asker.groups)
    {
        Ok(entries) => entries,
        Err(e) => return fail(out, &e),
    };
    // How much of the asked directory's physical size other pointers share.
    let shared = server.fs.shared_bytes_under(dir).unwrap_or(0);
    header(
        out,
        &json!({"ok": true, "count": entries.len(), "shared_bytes": shared}),
    )?;
    for e in entries {
        let t = e.totals;
        write!(out, "{} {} {} {}\t", t.bytes, t.allocated, t.files, t.dirs)?;
        out.write_all(&e.path)?;
        out.write_all(b"\0")?;
    }
    Ok(())
}
