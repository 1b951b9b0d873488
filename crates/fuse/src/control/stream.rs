//! The shape of a long operation's answer (scrub, dedup): the header at once, then a
//! `P a b c` record after each batch (three counters of progress), and a last
//! `R <json report>` record, or `E <error>` when it failed after the header.

use std::io::Write;

use serde_json::{json, Value};

use super::request::header;

/// Sends the header, runs `op` with a progress callback that writes `P` records (and
/// tells `op` to stop once the client has gone), then the report or the error.
pub(super) fn run<T, E: std::fmt::Display>(
    out: &mut impl Write,
    op: impl FnOnce(&mut dyn FnMut([u64; 3]) -> bool) -> Result<T, E>,
    report: impl FnOnce(&T) -> Value,
) -> std::io::Result<()> {
    header(out, &json!({"ok": true, "count": 0}))?;
    out.flush()?;
    let mut client_gone = false;
    let result = op(&mut |[a, b, c]| {
        let sent = write!(out, "P {a} {b} {c}\0").and_then(|()| out.flush());
        client_gone = sent.is_err();
        !client_gone
    });
    if client_gone {
        return Ok(());
    }
    match result {
        Ok(r) => write!(out, "R {}\0", report(&r))?,
        Err(e) => write!(out, "E {e}\0")?,
    }
    out.flush()
}
