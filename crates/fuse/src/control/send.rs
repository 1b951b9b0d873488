//! `send`: writes a snapshot as a replication stream (`gpufs send`). The header comes
//! once the snapshots are found (exit 4 otherwise); then the stream in chunks, each a
//! little-endian `u32` length and that many bytes; a zero length ends a stream sent
//! whole, `u32::MAX` and a length-prefixed message a stream that failed part way (the
//! client then exits non-zero; the bytes it passed on lack the stream's end, so no
//! receiver applies them). Root only: a stream holds every file's bytes.

use std::io::Write;

use serde_json::{json, Value};

use super::request::{bytes_field, header, Asker};
use super::Server;

/// Bytes gathered before a chunk goes out.
const CHUNK: usize = 1 << 20;

/// Frames what it is given into chunks.
struct Chunks<'a, W: Write> {
    out: &'a mut W,
    buf: Vec<u8>,
}

impl<W: Write> Chunks<'_, W> {
    fn emit(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.out.write_all(&(self.buf.len() as u32).to_le_bytes())?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Write for Chunks<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.emit()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.emit()?;
        self.out.flush()
    }
}

pub(super) fn answer(
    server: &Server,
    req: &Value,
    asker: &Asker,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if asker.caller.uid != 0 {
        return header(
            out,
            &json!({"ok": false, "error": "only root may send (a stream holds every file)",
                    "code": 1}),
        );
    }
    let name = bytes_field(req, "name").unwrap_or_default();
    let from = bytes_field(req, "from");
    let names = server.fs.snapshot_names();
    for n in std::iter::once(&name).chain(from.as_ref()) {
        if !names.iter().any(|(_, have)| have == n) {
            return header(
                out,
                &json!({"ok": false, "code": 4,
                        "error": format!("no snapshot named {:?}", String::from_utf8_lossy(n))}),
            );
        }
    }
    header(out, &json!({"ok": true}))?;
    let mut chunks = Chunks {
        out,
        buf: Vec::with_capacity(CHUNK + (64 << 10)),
    };
    let sent = server
        .fs
        .send(&name, from.as_deref(), &mut chunks, &mut |_, _| true);
    let out = chunks.out;
    match sent {
        Ok(_) => out.write_all(&0u32.to_le_bytes())?,
        Err(e) => {
            let msg = e.to_string();
            out.write_all(&u32::MAX.to_le_bytes())?;
            out.write_all(&(msg.len() as u32).to_le_bytes())?;
            out.write_all(msg.as_bytes())?;
        }
    }
    out.flush()
}
