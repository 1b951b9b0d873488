//! `gpufs stats [MOUNTPOINT]`: what the running mount's compute layer ran where and for
//! how long, and the namespace's size in memory.

use std::path::PathBuf;

use serde_json::json;

use crate::client::{self, locate};

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// A gpufs mount [default: the one holding the current directory].
    pub mountpoint: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: StatsArgs) -> Result<(), String> {
    let here = std::env::current_dir().map_err(|e| e.to_string())?;
    let (mp, _) = locate(
        a.mountpoint.as_deref(),
        a.mountpoint.as_deref().unwrap_or(&here),
    )?;
    let (head, _) = client::ask(&mp, &json!({"op": "stats"}))?;
    client::refusal(&head, "stats").map_err(|f| f.msg)?;
    if a.json {
        println!("{head}");
        return Ok(());
    }
    let c = &head["compute"];
    println!(
        "compute: {} (adapter: {})",
        c["choice"].as_str().unwrap_or("?"),
        c["adapter"].as_str().unwrap_or("none")
    );
    println!("namespace in memory: {} bytes", head["namespace_bytes"]);
    if let Some(ks) = c["kernels"].as_array() {
        if ks.is_empty() {
            println!("no kernel has run yet");
        }
        for k in ks {
            println!(
                "{:<12} {:<4} {:>8} calls {:>12} items {:>10.3} s",
                k["kernel"].as_str().unwrap_or("?"),
                k["backend"].as_str().unwrap_or("?"),
                k["calls"],
                k["items"],
                k["seconds"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
