//! `gpufs send MOUNTPOINT NAME [--from OLDER] > STREAM`: snapshot NAME as a replication
//! stream on standard output, whole or as the changes since snapshot OLDER, written by
//! the mount's daemon. A progress line on a terminal's standard error.
//!
//! Exit codes: 0 sent; 1 it failed (not root, an I/O error, a damaged record: the bytes
//! written then lack the stream's end, and no receiver applies them); 2 bad arguments
//! (a name, standard output a terminal); 4 no such snapshot; 8 not a gpufs mount.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use serde_json::json;

use crate::client;
use crate::exit::Failure;
use crate::offline::NOT_A_MOUNT;
use crate::snapshot_cmd::{check_name, mount_of};

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// A gpufs mount point.
    pub mountpoint: PathBuf,
    /// The snapshot to send.
    pub name: String,
    /// Send only the changes since this older snapshot (the receiver must hold it).
    #[arg(long)]
    pub from: Option<String>,
}

/// A bar of bytes when standard error is a terminal.
pub fn byte_counter(label: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {label} {{bytes}} ({{bytes_per_sec}}, {{elapsed}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    Some(bar)
}

fn read_u32(r: &mut impl Read) -> Result<u32, Failure> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(|e| {
        Failure::error(format!(
            "the daemon stopped sending ({e}): the stream written is incomplete"
        ))
    })?;
    Ok(u32::from_le_bytes(b))
}

pub fn run(a: SendArgs) -> Result<(), Failure> {
    check_name(&a.name)?;
    if let Some(f) = &a.from {
        check_name(f)?;
    }
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        return Err(Failure::usage(
            "standard output is a terminal: redirect the stream to a file or a pipe",
        ));
    }
    let mp = mount_of(&a.mountpoint)?;
    let mut req = json!({"op": "send", "name": a.name.as_bytes()});
    if let Some(f) = &a.from {
        req["from"] = json!(f.as_bytes());
    }
    let (head, mut reader) = client::ask_raw(&mp, &req).map_err(|msg| Failure {
        code: NOT_A_MOUNT,
        msg,
    })?;
    client::refusal(&head, "send")?;
    let bar = byte_counter("sending");
    let mut out = stdout.lock();
    let mut buf = Vec::new();
    let mut sent = 0u64;
    loop {
        let len = read_u32(&mut reader)?;
        if len == 0 {
            break;
        }
        if len == u32::MAX {
            let n = read_u32(&mut reader)? as usize;
            let mut msg = vec![0u8; n.min(1 << 16)];
            let _ = reader.read_exact(&mut msg);
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            return Err(Failure::error(format!(
                "the send failed after {sent} bytes: {} (the stream written lacks its end: no \
                 receiver applies it)",
                String::from_utf8_lossy(&msg)
            )));
        }
        buf.resize(len as usize, 0);
        reader.read_exact(&mut buf).map_err(|e| {
            Failure::error(format!(
                "the daemon stopped sending ({e}): the stream is incomplete"
            ))
        })?;
        out.write_all(&buf)
            .map_err(|e| Failure::error(format!("writing the stream: {e}")))?;
        sent += u64::from(len);
        if let Some(b) = &bar {
            b.set_position(sent);
        }
    }
    out.flush()
        .map_err(|e| Failure::error(format!("writing the stream: {e}")))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    Ok(())
}
