//! `gpufs scrub MOUNTPOINT`: verify every record and every metadata copy of a mounted
//! filesystem while it stays in use, and repair bad copies from good ones.
//!
//! Exit codes: 0 clean; 1 damage found and all of it repaired; 4 damage left (every
//! affected file and byte range printed); 8 the scrub could not run (not a gpufs mount,
//! or it failed).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::client::{self, locate};

#[derive(clap::Args, Debug)]
pub struct ScrubArgs {
    /// A gpufs mount [default: the one holding the current directory].
    pub mountpoint: Option<PathBuf>,
    /// Start from the beginning instead of where an interrupted scrub stopped.
    #[arg(long)]
    pub restart: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

const COULD_NOT_RUN: u8 = 8;

pub fn run(a: ScrubArgs) -> ExitCode {
    match scrub(&a) {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            eprintln!("gpufs scrub: {msg}");
            ExitCode::from(COULD_NOT_RUN)
        }
    }
}

fn scrub(a: &ScrubArgs) -> Result<u8, String> {
    let here = std::env::current_dir().map_err(|e| e.to_string())?;
    let target = a.mountpoint.clone().unwrap_or(here);
    let (mp, _) = locate(None, &target)?;
    let show = std::io::stderr().is_terminal() && !a.json;
    let req = json!({"op": "scrub", "restart": a.restart});
    let done = client::ask_with_progress(&mp, &req, show, "scrubbing", "read")?;
    client::refusal(&done.head, "scrub").map_err(|f| f.msg)?;
    if let Some(e) = done.failure {
        return Err(e);
    }
    let r = done
        .report
        .ok_or("the mount's daemon ended the scrub without a report")?;
    if a.json {
        println!("{r}");
    } else {
        print_report(&r, &String::from_utf8_lossy(client::mount_prefix(&mp)));
    }
    Ok(if r["unrepaired_damage"].as_bool() == Some(true) {
        4
    } else if r["found_damage"].as_bool() == Some(true) {
        1
    } else {
        0
    })
}

/// The report for a person; paths made whole with the mount point `base`.
fn print_report(r: &Value, base: &str) {
    let resumed = r["resumed_from_block"].as_u64().unwrap_or(0);
    if resumed > 0 {
        println!("resumed an interrupted scrub at block {resumed}");
    }
    println!(
        "scrubbed {} records ({} MiB read) and {} metadata copies",
        r["records"],
        r["bytes_read"].as_u64().unwrap_or(0) >> 20,
        r["metadata"]["checked"]
    );
    if let Some(m) = r["metadata"]["damaged"].as_array() {
        let fixed = r["metadata"]["repaired"].as_bool() == Some(true);
        for d in m {
            let state = if fixed { "repaired" } else { "NOT repaired" };
            println!("metadata: {} ({state})", d.as_str().unwrap_or("?"));
        }
    }
    for d in r["metadata"]["unrepaired"].as_array().into_iter().flatten() {
        println!(
            "metadata: {} (NOT repaired: no good copy)",
            d.as_str().unwrap_or("?")
        );
    }
    println!(
        "damaged record copies: {}, repaired from a good copy: {}",
        r["damaged_copies"], r["repaired_copies"]
    );
    for f in r["unrepaired"].as_array().into_iter().flatten() {
        let ranges: Vec<String> = f["ranges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| format!("{}..{}", x[0], x[1]))
            .collect();
        let path = f["path"].as_str().filter(|p| !p.is_empty()).map_or_else(
            || "(no name: open and unlinked)".to_string(),
            |p| format!("{base}{p}"),
        );
        println!(
            "LOST: {path} (inode {}), bytes {}",
            f["ino"],
            ranges.join(", ")
        );
    }
}
