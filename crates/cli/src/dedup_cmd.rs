//! `gpufs dedup PATH...`: finds records with equal bytes among the files under the given
//! paths of a mounted filesystem (any filesystem: the `dedup` property need not be on)
//! and makes them share one record, then reports the space it gave back. Safe on files
//! that change while it runs: the daemon compares both records byte for byte, under its
//! lock, right before sharing. Shows progress on a terminal.
//!
//! Exit codes: 0 done; 1 it failed (not a gpufs mount, paths in two mounts, a path that
//! does not resolve, an error part way: what was shared stays shared).

use std::io::IsTerminal;
use std::path::PathBuf;

use serde_json::json;

use crate::client::{self, locate};
use crate::exit::Failure;

#[derive(clap::Args, Debug)]
pub struct DedupArgs {
    /// Files or directories (searched whole) inside one gpufs mount.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: DedupArgs) -> Result<(), Failure> {
    let mut mount: Option<PathBuf> = None;
    let mut rels: Vec<Vec<u8>> = Vec::new();
    for p in &a.paths {
        let (mp, rel) = locate(None, p).map_err(Failure::error)?;
        if mount.as_ref().is_some_and(|m| *m != mp) {
            return Err(Failure::error(format!(
                "{} is in another gpufs mount than {}: dedup one mount at a time",
                p.display(),
                a.paths[0].display()
            )));
        }
        mount = Some(mp);
        rels.push(rel);
    }
    let Some(mp) = mount else {
        return Err(Failure::usage("no path given"));
    };
    let show = std::io::stderr().is_terminal() && !a.json;
    let req = json!({"op": "dedup", "paths": rels});
    let done =
        client::ask_with_progress(&mp, &req, show, "dedup", "hashed").map_err(Failure::error)?;
    client::refusal(&done.head, "dedup")?;
    if let Some(e) = done.failure {
        return Err(Failure::error(e));
    }
    let r = done
        .report
        .ok_or_else(|| Failure::error("the mount's daemon ended without a report"))?;
    if a.json {
        println!("{r}");
    } else {
        let reclaimed = r["bytes_reclaimed"].as_u64().unwrap_or(0);
        println!(
            "{} files, {} records: {} now share an equal record, {:.1} MiB reclaimed{}",
            r["files"],
            r["records"],
            r["shared"],
            reclaimed as f64 / (1u64 << 20) as f64,
            match r["changed"].as_u64() {
                Some(0) | None => String::new(),
                Some(n) => format!(" ({n} records changed while it ran: left alone)"),
            }
        );
    }
    Ok(())
}
