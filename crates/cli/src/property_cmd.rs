//! `gpufs property set PATH NAME VALUE` and `gpufs property get PATH [NAME]`: settings
//! of a directory (or file) of a mounted filesystem, inherited by what is created below
//! it. Answered by the mount's daemon.

use std::io::Write;
use std::path::PathBuf;

use gpufs_format::Compression;
use serde_json::{json, Value};

use crate::client::{self, locate};
use crate::exit::{printed, Failure};

/// Property names this build knows (the daemon checks them too).
const NAMES: &[&str] = &["compression", "copies", "dedup"];

#[derive(clap::Subcommand, Debug)]
pub enum PropertyCommand {
    /// Set a property: compression none|lz4|zstd|zstd:LEVEL, copies 1|2, dedup on|off, or
    /// default.
    Set {
        /// A directory or file inside a gpufs mount.
        path: PathBuf,
        /// Property name (compression, copies, dedup).
        name: String,
        /// Its new value; `default` follows the filesystem's default again.
        value: String,
    },
    /// Show properties: one, or all of them.
    Get {
        /// A directory or file inside a gpufs mount.
        path: PathBuf,
        /// Property name [default: all].
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct PropertyArgs {
    #[command(subcommand)]
    pub command: PropertyCommand,
}

/// Refuses what the daemon would refuse, before asking it (exit 2).
fn check(name: &str, value: Option<&str>) -> Result<(), Failure> {
    if !NAMES.contains(&name) {
        return Err(Failure::usage(format!(
            "unknown property {name:?} (known: {})",
            NAMES.join(", ")
        )));
    }
    let checked = match (name, value) {
        (_, Some("default" | "inherit") | None) => Ok(()),
        ("copies", Some(v)) => gpufs_format::props::parse_copies(v).map(|_| ()),
        ("dedup", Some(v)) => gpufs_format::props::parse_dedup(v).map(|_| ()),
        (_, Some(v)) => Compression::parse(v).map(|_| ()),
    };
    checked.map_err(|e| Failure::usage(e.to_string()))
}

pub fn run(a: PropertyArgs) -> Result<(), Failure> {
    let (path, req, json_out) = match &a.command {
        PropertyCommand::Set { path, name, value } => {
            check(name, Some(value))?;
            (
                path,
                json!({"op": "property", "name": name, "value": value}),
                false,
            )
        }
        PropertyCommand::Get { path, name, json } => {
            if let Some(n) = name {
                check(n, None)?;
            }
            (path, json!({"op": "property", "name": name}), *json)
        }
    };
    let (mp, rel) = locate(None, path).map_err(Failure::error)?;
    let mut req = req;
    req["path"] = json!(rel);
    let (head, _) = client::ask(&mp, &req).map_err(Failure::error)?;
    client::refusal(&head, "property")?;
    if matches!(a.command, PropertyCommand::Set { .. }) {
        return Ok(());
    }
    let props = head["properties"].as_array().cloned().unwrap_or_default();
    printed(print(path, &props, json_out))
}

fn print(path: &std::path::Path, props: &[Value], json_out: bool) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for p in props {
        let (name, value, source) = (
            p["name"].as_str().unwrap_or("?"),
            p["value"].as_str().unwrap_or("?"),
            p["source"].as_str().unwrap_or("?"),
        );
        if json_out {
            let v = json!({"path": path.display().to_string(), "name": name, "value": value,
                           "source": source});
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{name}\t{value}\t{source}")?;
        }
    }
    out.flush()
}
