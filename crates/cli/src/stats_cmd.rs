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
    print_records(&head["records"]);
    let d = &head["dedup"];
    if !d.is_null() {
        println!(
            "dedup since mount: {} of {} records found stored already ({} bytes not written); \
             table: {} records in {} bytes",
            d["hits"], d["lookups"], d["bytes_saved"], d["table_entries"], d["table_bytes"]
        );
    }
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

/// The records written since mount: how each algorithm did, and where they were made.
fn print_records(r: &serde_json::Value) {
    if r.is_null() {
        return;
    }
    println!("records written since mount (logical -> physical bytes):");
    for alg in ["lz4", "zstd", "raw", "holes"] {
        let t = &r[alg];
        let ratio = t["ratio"]
            .as_f64()
            .map_or_else(|| "-".to_string(), |x| format!("{x:.2}x"));
        println!(
            "  {alg:<6} {:>10} records {:>14} -> {:>14}  {ratio}",
            t["records"], t["logical_bytes"], t["physical_bytes"]
        );
    }
    println!(
        "  raw because the sample looked incompressible: {}, because compression saved too \
         little: {}",
        r["raw_because_sample_incompressible"], r["raw_because_saving_too_small"]
    );
    println!(
        "  prepared on: cpu {} records, gpu {} records",
        r["backend"]["cpu"], r["backend"]["gpu"]
    );
}
