//! `scrub`: verifies and repairs the mounted filesystem while it stays in use. The header
//! comes at once; then a `P done total bytes` record after each batch, and a last
//! `R <json report>` record. A client that goes away stops the scrub after the batch in
//! hand; the next scrub resumes there. Only root or the mounting user may ask (the
//! socket's rule), since it reads every file.

use std::io::Write;

use gpufs_core::fs::ScrubReport;
use serde_json::{json, Value};

use super::{stream, Server};

pub(super) fn answer(server: &Server, req: &Value, out: &mut impl Write) -> std::io::Result<()> {
    let restart = req["restart"].as_bool().unwrap_or(false);
    stream::run(
        out,
        |progress| {
            server.fs.scrub(restart, &mut |p| {
                progress([p.records_done, p.records_total, p.bytes_read])
            })
        },
        report_json,
    )
}

fn report_json(r: &ScrubReport) -> Value {
    let unrepaired: Vec<Value> = r
        .unrepaired
        .iter()
        .map(|f| {
            json!({"ino": f.ino, "path": String::from_utf8_lossy(&f.path),
                   "ranges": f.ranges.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>()})
        })
        .collect();
    json!({
        "finished": r.finished,
        "resumed_from_block": r.resumed_from,
        "records": r.progress.records_done,
        "records_total": r.progress.records_total,
        "bytes_read": r.progress.bytes_read,
        "metadata": {"checked": r.metadata.checked, "damaged": r.metadata.damaged,
                     "repaired": r.metadata.repaired,
                     "unrepaired": r.metadata.unrepaired},
        "damaged_copies": r.damaged_copies,
        "repaired_copies": r.repaired_copies,
        "unrepaired": unrepaired,
        "found_damage": r.found_damage(),
        "unrepaired_damage": r.unrepaired_damage(),
    })
}
