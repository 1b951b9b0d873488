//! `gpufs receive TARGET < STREAM`: applies a replication stream (`gpufs send`) and
//! creates its snapshot. TARGET is a gpufs mount point (unmounted for the receive and
//! mounted again, as `zfs receive` does with a mounted dataset) or an unmounted image.
//! All or nothing: until the stream's end has been checked nothing is durable, so a
//! damaged stream, a refusal, a crash or a power cut leaves the target as it was.
//!
//! Exit codes: 0 received; 1 it failed (no space, an I/O error, not root); 2 bad
//! arguments; 3 a snapshot of the stream's name exists; 4 the stream's base is not here
//! (or is another filesystem's snapshot); 5 the mount is busy; 6 the target is not what
//! the stream applies to (changed since the base, or not empty for a full stream);
//! 7 the stream is damaged, truncated or not a stream; 8 TARGET is neither a gpufs mount
//! nor an image. Every refusal is made before the target changes.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gpufs_core::device::{Device, FileDevice};
use gpufs_core::fs::ReceiveError;
use gpufs_core::{Filesystem, OpenOptions};
use gpufs_format::send::{StreamHeader, STREAM_HEADER_LEN};
use serde_json::json;

use crate::exit::{printed, Failure};
use crate::offline::{self, ask, NOT_A_MOUNT};
use crate::paths;
use crate::send_cmd::byte_counter;

/// Exit code: the target changed since the stream's base (or holds files, for a full one).
const TARGET_CHANGED: u8 = 6;
/// Exit code: the stream is damaged, truncated or not a stream.
const DAMAGED: u8 = 7;

#[derive(clap::Args, Debug)]
pub struct ReceiveArgs {
    /// A gpufs mount point, or an unmounted image.
    pub target: PathBuf,
    /// Print what was received as JSON.
    #[arg(long)]
    pub json: bool,
    /// The key of an unmounted encrypted image (a file: standard input is the stream).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

fn failure(e: ReceiveError) -> Failure {
    let code = match &e {
        ReceiveError::Damaged(_) => DAMAGED,
        ReceiveError::Exists(_) => 3,
        ReceiveError::BaseMissing(_) => 4,
        ReceiveError::TargetChanged(_) => TARGET_CHANGED,
        ReceiveError::Fs(_) => 1,
    };
    Failure {
        code,
        msg: format!("{e}; nothing was received"),
    }
}

/// Reads the stream's header (checked), so that a stream that is not one is refused
/// before anything is unmounted.
fn read_header(input: &mut impl Read) -> Result<(Vec<u8>, StreamHeader), Failure> {
    let mut raw = vec![0u8; STREAM_HEADER_LEN];
    input.read_exact(&mut raw).map_err(|e| Failure {
        code: DAMAGED,
        msg: format!("reading the stream's header: {e} (an empty or truncated stream?)"),
    })?;
    let header = StreamHeader::decode(&raw).map_err(|e| Failure {
        code: DAMAGED,
        msg: format!("not a stream this build applies: {e}"),
    })?;
    Ok((raw, header))
}

/// Refusals the daemon of a mounted target can answer before it is unmounted.
fn precheck(mp: &Path, header: &StreamHeader) -> Result<(), Failure> {
    let head = ask(mp, &json!({"op": "snapshot", "action": "list"}))?;
    let names: Vec<&str> = head["snapshots"]
        .as_array()
        .map(|l| l.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    let name = String::from_utf8_lossy(header.name());
    if names.contains(&name.as_ref()) {
        return Err(failure(ReceiveError::Exists(name.into_owned())));
    }
    if let Some(base) = header.base() {
        let base = String::from_utf8_lossy(&base.name);
        if !names.contains(&base.as_ref()) {
            return Err(failure(ReceiveError::BaseMissing(format!(
                "the stream's base, snapshot {base:?}, is not here: receive the streams before \
                 it first"
            ))));
        }
    }
    Ok(())
}

/// Applies the stream to the unmounted `image`.
fn receive_into(
    image: &Path,
    input: impl Read,
    key_file: Option<&Path>,
) -> Result<gpufs_core::fs::ReceiveSummary, Failure> {
    let dev: Arc<dyn Device> = Arc::new(
        FileDevice::open(image, true).map_err(|e| Failure::error(paths::open_error(image, &e)))?,
    );
    if key_file == Some(Path::new("-")) {
        return Err(Failure::usage(
            "--key-file -: standard input carries the stream; give the key in a file",
        ));
    }
    let keys = crate::key_input::keys_for(dev.as_ref(), image, key_file)
        .map_err(crate::key_input::failure_of)?;
    let opts = OpenOptions {
        holder: Some(paths::holder("(receive)")),
        ..OpenOptions::default()
    };
    let fs = Filesystem::mount_with_keys(dev, opts, keys).map_err(|e| {
        crate::key_input::failure_of(format!(
            "{}: {}",
            image.display(),
            crate::key_input::describe(&e)
        ))
    })?;
    let bar = byte_counter("receiving");
    let received = fs.receive(input, &mut |bytes| {
        if let Some(b) = &bar {
            b.set_position(bytes);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match received {
        Ok(summary) => {
            fs.close()
                .map_err(|e| Failure::error(format!("{}: {e}", image.display())))?;
            Ok(summary)
        }
        Err(e) => {
            if let Err(again) = fs.abandon() {
                tracing::warn!("clearing the in-use marker of {}: {again}", image.display());
            }
            Err(failure(e))
        }
    }
}

pub fn run(a: ReceiveArgs) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Failure::usage(
            "standard input is a terminal: give the stream on it (gpufs receive TARGET < STREAM)",
        ));
    }
    let mut input = stdin.lock();
    let (raw, header) = read_header(&mut input)?;
    let stream = std::io::Cursor::new(raw).chain(input);
    let target = crate::absolute(&a.target);
    let summary = if target.is_dir() {
        let mp = crate::snapshot_cmd::mount_of(&target)?;
        precheck(&mp, &header)?;
        let info = offline::mount_info(&mp)?;
        offline::with_unmounted(&mp, &info, |image| {
            receive_into(Path::new(image), stream, None)
        })?
    } else if target.exists() {
        receive_into(&target, stream, a.key_file.as_deref())?
    } else {
        return Err(Failure {
            code: NOT_A_MOUNT,
            msg: format!("{}: no such mount point or image", target.display()),
        });
    };
    let out = if a.json {
        format!(
            "{}\n",
            json!({"snapshot": summary.name, "incremental": summary.incremental,
                   "frames": summary.frames, "bytes": summary.bytes,
                   "data_bytes": summary.data_bytes})
        )
    } else {
        format!(
            "received snapshot {} ({}, {} bytes of stream, {} of data)\n",
            summary.name,
            if summary.incremental {
                "incremental"
            } else {
                "full"
            },
            summary.bytes,
            summary.data_bytes
        )
    };
    printed(std::io::stdout().lock().write_all(out.as_bytes()))
}
