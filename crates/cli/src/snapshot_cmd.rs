//! `gpufs snapshot create|list|delete MOUNTPOINT [NAME]`: the snapshots of a mounted
//! filesystem, asked of its daemon.
//!
//! Exit codes: 0 done; 1 it failed (no space, read-only, not root, an I/O error);
//! 2 a bad name or arguments; 3 a snapshot of that name exists; 4 no snapshot of that
//! name; 5 (rollback) the mount is busy, nothing changed; 8 the path is not a gpufs
//! mount.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::client::{self, locate};
use crate::du_cmd::human;
use crate::exit::{printed, Failure};

use crate::offline::{self, ask, NOT_A_MOUNT};

#[derive(clap::Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Snapshot the filesystem as it is now (everything written so far is in it).
    Create {
        /// A gpufs mount point.
        mountpoint: PathBuf,
        /// The snapshot's name: 1 to 255 bytes, no '/', not '.' or '..'.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the snapshots, oldest first: name, creation time, bytes referenced, bytes
    /// only it holds (what deleting it would free).
    List {
        /// A gpufs mount point.
        mountpoint: PathBuf,
        /// Print JSON, one object per snapshot.
        #[arg(long)]
        json: bool,
    },
    /// Make the filesystem the snapshot again (every snapshot kept, newer ones too): the
    /// mount is unmounted (refused, exit 5, while files are open under it), rolled back
    /// and mounted again with its options.
    Rollback {
        /// A gpufs mount point.
        mountpoint: PathBuf,
        /// The snapshot's name.
        name: String,
    },
    /// What changed from snapshot FROM to snapshot TO (or to the live filesystem); the
    /// same as `gpufs diff`.
    Diff(DiffArgs),
    /// Delete a snapshot; the space only it held is free when this returns.
    Delete {
        /// A gpufs mount point.
        mountpoint: PathBuf,
        /// The snapshot's name.
        name: String,
    },
}

/// `gpufs diff MOUNTPOINT FROM [TO]`: one line per path, `+` created, `-` deleted, `M`
/// modified (size, mtime, mode, owner, data or xattrs), `R` renamed (old -> new).
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// A gpufs mount point.
    pub mountpoint: PathBuf,
    /// The older snapshot.
    pub from: String,
    /// The newer snapshot [default: the live filesystem].
    pub to: Option<String>,
    /// Print JSON, one object per change.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

/// The mount `path` names, or exit 8.
pub fn mount_of(path: &Path) -> Result<PathBuf, Failure> {
    let (mp, rel) = locate(None, path).map_err(|msg| Failure {
        code: NOT_A_MOUNT,
        msg,
    })?;
    if rel != b"/" {
        return Err(Failure {
            code: NOT_A_MOUNT,
            msg: format!(
                "{} is not a gpufs mount point (it is inside {})",
                path.display(),
                mp.display()
            ),
        });
    }
    Ok(mp)
}

/// Refuses a name the daemon would refuse, before asking it (exit 2).
pub fn check_name(name: &str) -> Result<(), Failure> {
    if gpufs_format::snapshot::valid_snapshot_name(name.as_bytes()) {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "invalid snapshot name {name:?}: 1 to 255 bytes, no '/', no control characters, \
         not '.' or '..'"
    )))
}

pub fn run(a: SnapshotArgs) -> Result<(), Failure> {
    match &a.command {
        SnapshotCommand::Create {
            mountpoint,
            name,
            json,
        } => {
            check_name(name)?;
            let mp = mount_of(mountpoint)?;
            let t = Instant::now();
            let head = ask(
                &mp,
                &json!({"op": "snapshot", "action": "create", "name": name.as_bytes()}),
            )?;
            let took = t.elapsed();
            let s = &head["snapshot"];
            let out = if *json {
                let mut v = s.clone();
                v["daemon_us"] = head["daemon_us"].clone();
                v["command_us"] = json!(took.as_micros() as u64);
                format!("{v}\n")
            } else {
                format!(
                    "created snapshot {name} ({} in the daemon, {:.1} ms in all)\n",
                    micros(head["daemon_us"].as_u64().unwrap_or(0)),
                    took.as_secs_f64() * 1e3
                )
            };
            printed(std::io::stdout().lock().write_all(out.as_bytes()))
        }
        SnapshotCommand::List { mountpoint, json } => {
            let mp = mount_of(mountpoint)?;
            let head = ask(&mp, &json!({"op": "snapshot", "action": "list"}))?;
            let list = head["snapshots"].as_array().cloned().unwrap_or_default();
            printed(print_list(&list, *json))
        }
        SnapshotCommand::Rollback { mountpoint, name } => {
            check_name(name)?;
            rollback(&mount_of(mountpoint)?, name)
        }
        SnapshotCommand::Diff(d) => diff(d),
        SnapshotCommand::Delete { mountpoint, name } => {
            check_name(name)?;
            let mp = mount_of(mountpoint)?;
            ask(
                &mp,
                &json!({"op": "snapshot", "action": "delete", "name": name.as_bytes()}),
            )?;
            Ok(())
        }
    }
}

/// Unmounts `mp`, rolls its image back to `name`, and mounts it again as it was mounted.
fn rollback(mp: &Path, name: &str) -> Result<(), Failure> {
    let head = ask(mp, &json!({"op": "snapshot", "action": "list"}))?;
    let exists = head["snapshots"]
        .as_array()
        .is_some_and(|l| l.iter().any(|s| s["name"].as_str() == Some(name)));
    if !exists {
        return Err(Failure {
            code: 4,
            msg: format!("no snapshot named {name:?}"),
        });
    }
    let info = offline::mount_info(mp)?;
    let engine = info.engine.clone();
    offline::with_unmounted(mp, &info, |image| {
        let rolled = Command::new(&engine)
            .arg("rollback-image")
            .arg(image)
            .arg(name)
            .status();
        match rolled {
            Ok(r) if r.success() => Ok(()),
            _ => Err(Failure::error(format!(
                "the rollback of {image} failed (mounted again as it was)"
            ))),
        }
    })
}

/// Prints what changed between two snapshots (or one and the live filesystem).
pub fn diff(d: &DiffArgs) -> Result<(), Failure> {
    check_name(&d.from)?;
    if let Some(t) = &d.to {
        check_name(t)?;
    }
    let mp = mount_of(&d.mountpoint)?;
    let mut req = json!({"op": "snapshot", "action": "diff", "name": d.from.as_bytes()});
    if let Some(t) = &d.to {
        req["to"] = json!(t.as_bytes());
    }
    let head = ask(&mp, &req)?;
    let list = head["changes"].as_array().cloned().unwrap_or_default();
    printed(print_diff(&list, &mp, d.json))
}

/// A path the daemon sent as bytes, under the mount point.
fn under(mp: &Path, v: &Value) -> Vec<u8> {
    let mut p = client::mount_prefix(mp).to_vec();
    p.extend(
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| b.as_u64().map(|b| b as u8))
                    .collect::<Vec<u8>>()
            })
            .unwrap_or_default(),
    );
    p
}

fn print_diff(list: &[Value], mp: &Path, json_out: bool) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for c in list {
        let kind = c["change"].as_str().unwrap_or("?");
        let path = under(mp, &c["path"]);
        if json_out {
            let mut v = json!({"change": kind, "path": String::from_utf8_lossy(&path)});
            if !c["to"].is_null() {
                v["to"] = json!(String::from_utf8_lossy(&under(mp, &c["to"])));
            }
            writeln!(out, "{v}")?;
            continue;
        }
        out.write_all(kind.as_bytes())?;
        out.write_all(b"\t")?;
        out.write_all(&path)?;
        if !c["to"].is_null() {
            out.write_all(b" -> ")?;
            out.write_all(&under(mp, &c["to"]))?;
        }
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn micros(us: u64) -> String {
    if us < 10_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.0} ms", us as f64 / 1e3)
    }
}

fn print_list(list: &[Value], json_out: bool) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !json_out {
        writeln!(out, "NAME\tCREATED\tREFERENCED\tUNIQUE")?;
    }
    for s in list {
        if json_out {
            writeln!(out, "{s}")?;
            continue;
        }
        let created = gpufs_core::time::format_ns(s["created_ns"].as_i64().unwrap_or(0));
        writeln!(
            out,
            "{}\t{created}\t{}\t{}",
            s["name"].as_str().unwrap_or("?"),
            human(s["referenced_bytes"].as_u64().unwrap_or(0)),
            human(s["unique_bytes"].as_u64().unwrap_or(0)),
        )?;
    }
    out.flush()
}
