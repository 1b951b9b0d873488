//! `dedup`: shares the equal records of every file under the given paths. The header
//! comes at once (or a refusal naming a path that does not resolve); then a
//! `P done total bytes_hashed` record after each batch, and a last `R <json report>`
//! record (`E <error>` if it failed part way). A client that goes away stops it after
//! the batch in hand; what was shared stays shared.

use std::io::Write;

use serde_json::{json, Value};

use super::request::fail;
use super::{stream, Server};

pub(super) fn answer(server: &Server, req: &Value, out: &mut impl Write) -> std::io::Result<()> {
    let paths: Vec<Vec<u8>> = req["paths"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    p.as_array()?
                        .iter()
                        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut roots = Vec::with_capacity(paths.len());
    for p in &paths {
        match server.fs.resolve_path(p) {
            Ok(i) => roots.push(i),
            Err(e) => return fail(out, &e),
        }
    }
    stream::run(
        out,
        |progress| {
            server.fs.dedup(&roots, &mut |p| {
                progress([p.records_done, p.records_total, p.bytes_hashed])
            })
        },
        |r| {
            json!({"files": r.files, "records": r.records, "shared": r.shared,
                   "changed": r.changed, "bytes_reclaimed": r.bytes_reclaimed,
                   "bytes_hashed": r.progress.bytes_hashed})
        },
    )
}
