//! `snapshot`: create, list, diff or delete the mount's snapshots, or say how the mount was
//! made (for a rollback, which runs on the unmounted image). Creating, deleting and
//! rolling back need root (as `btrfs subvolume delete` and `zfs snapshot` do by
//! default); anyone who may reach the socket may list.

use std::io::Write;

use gpufs_core::fs::Change;
use gpufs_core::{FsError, SnapshotInfo};
use serde_json::{json, Value};

use super::request::{bytes_field, header, Asker};
use super::Server;

/// Exit codes the client ends with: 2 a bad name, 3 the name exists, 4 no such snapshot,
/// 1 anything else.
fn refusal(out: &mut impl Write, e: &FsError) -> std::io::Result<()> {
    let code = match e {
        FsError::BadQuery(_) | FsError::NameTooLong => 2,
        FsError::Exists => 3,
        FsError::NotFound => 4,
        _ => 1,
    };
    let error = match e {
        FsError::Exists => "a snapshot of that name exists".to_string(),
        FsError::NotFound => "no snapshot of that name".to_string(),
        FsError::NameTooLong => "snapshot name longer than 255 bytes".to_string(),
        other => other.to_string(),
    };
    header(out, &json!({"ok": false, "error": error, "code": code}))
}

pub(crate) fn info_json(s: &SnapshotInfo) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "created_ns": s.created_ns,
        "generation": s.generation,
        "inodes": s.inodes,
        "referenced_bytes": s.referenced_bytes,
        "unique_bytes": s.unique_bytes,
        "damaged": s.damaged,
    })
}

/// One change: its kind (`+` created, `-` deleted, `M` modified, `R` renamed) and paths
/// as byte arrays (any bytes pass).
fn change_json(c: &Change) -> Value {
    match c {
        Change::Created(p) => json!({"change": "+", "path": p}),
        Change::Deleted(p) => json!({"change": "-", "path": p}),
        Change::Modified(p) => json!({"change": "M", "path": p}),
        Change::Renamed { from, to } => json!({"change": "R", "path": from, "to": to}),
    }
}

pub(super) fn answer(
    server: &Server,
    req: &Value,
    asker: &Asker,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let name = bytes_field(req, "name").unwrap_or_default();
    let action = req["action"].as_str().unwrap_or("");
    if matches!(action, "create" | "delete" | "mount-info") && asker.caller.uid != 0 {
        return refusal(out, &FsError::NotPermitted);
    }
    match action {
        "create" => match server.fs.create_snapshot(&name) {
            Ok((info, took)) => header(
                out,
                &json!({"ok": true, "snapshot": info_json(&info),
                        "daemon_us": took.as_micros() as u64}),
            ),
            Err(e) => refusal(out, &e),
        },
        "list" => match server.fs.snapshots() {
            Ok(list) => {
                let list: Vec<Value> = list.iter().map(info_json).collect();
                header(out, &json!({"ok": true, "snapshots": list}))
            }
            Err(e) => refusal(out, &e),
        },
        "mount-info" => header(out, &json!({"ok": true, "mount": server.mount_info})),
        "diff" => {
            let to = bytes_field(req, "to");
            match server.fs.diff(&name, to.as_deref()) {
                Ok(changes) => {
                    let list: Vec<Value> = changes.iter().map(change_json).collect();
                    header(out, &json!({"ok": true, "changes": list}))
                }
                Err(e) => refusal(out, &e),
            }
        }
        "delete" => match server.fs.delete_snapshot(&name) {
            Ok(()) => header(out, &json!({"ok": true})),
            Err(e) => refusal(out, &e),
        },
        _ => header(
            out,
            &json!({"ok": false, "error": "unknown snapshot action", "code": 2}),
        ),
    }
}
