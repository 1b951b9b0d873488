//! `gpufs du [PATH]`: recursive sizes and file counts of a directory and the
//! directories below it, answered by the running mount from one subtree aggregation
//! instead of a walk. Each row shows the logical size (bytes of content) and the
//! physical size (blocks allocated, after compression) side by side; the asked
//! directory's row also the part of it in records shared with other files or offsets
//! (clones, dedup), counted once.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use crate::client::{self, locate};
use crate::exit::{printed, Failure};

#[derive(clap::Args, Debug)]
pub struct DuArgs {
    /// Directory inside a gpufs mount [default: the current directory].
    pub path: Option<PathBuf>,
    /// Every directory below PATH, not only PATH and its children.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only PATH's own total (`du -s`).
    #[arg(short = 's', long, conflicts_with = "all")]
    pub summarize: bool,
    /// Only apparent sizes (logical bytes of content), as `du --apparent-size`.
    #[arg(long, conflicts_with = "physical")]
    pub apparent_size: bool,
    /// Only physical sizes (bytes allocated after compression), as `du`.
    #[arg(long)]
    pub physical: bool,
    /// Sizes in bytes instead of human units.
    #[arg(short = 'b', long)]
    pub bytes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Bytes in the units `du -h` and `df -h` use.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// One row: path, bytes, allocated bytes, files, directories.
type Row = (Vec<u8>, u64, u64, u64, u64);

/// The rows of the daemon's records (`bytes allocated files dirs<TAB>path`), each path
/// made whole with the mount point `base`.
fn rows(records: &[Vec<u8>], base: &[u8]) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in records {
        let Some(tab) = r.iter().position(|&b| b == b'\t') else {
            continue;
        };
        let nums: Vec<u64> = String::from_utf8_lossy(&r[..tab])
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [bytes, allocated, files, dirs] = nums[..] else {
            continue;
        };
        let rel = &r[tab + 1..];
        let path = if rel == b"/" {
            base.to_vec()
        } else {
            [base, rel].concat()
        };
        let path = if path.is_empty() { b"/".to_vec() } else { path };
        rows.push((path, bytes, allocated, files, dirs));
    }
    rows
}

fn print(a: &DuArgs, rows: &[Row], shared: u64) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let last = rows.len().saturating_sub(1);
    for (i, (path, bytes, allocated, files, dirs)) in rows.iter().enumerate() {
        // The asked directory is the last row.
        let shared_here = (i == last).then_some(shared);
        if a.json {
            let mut v = json!({"path": String::from_utf8_lossy(path), "bytes": bytes,
                               "allocated": allocated, "files": files, "dirs": dirs});
            if let Some(s) = shared_here {
                v["shared"] = json!(s);
            }
            writeln!(out, "{v}")?;
            continue;
        }
        let shown = |n: u64| if a.bytes { n.to_string() } else { human(n) };
        if a.apparent_size {
            write!(out, "{}\t", shown(*bytes))?;
        } else if a.physical {
            write!(out, "{}\t", shown(*allocated))?;
        } else {
            // Logical (apparent) and physical (after compression) side by side.
            write!(out, "{}\t{}\t", shown(*bytes), shown(*allocated))?;
        }
        write!(out, "{files} files\t")?;
        out.write_all(path)?;
        match shared_here {
            Some(s) if s > 0 && !a.apparent_size => writeln!(out, "\t({} shared)", shown(s))?,
            _ => writeln!(out)?,
        }
    }
    out.flush()
}

pub fn run(a: DuArgs) -> Result<(), Failure> {
    let here = std::env::current_dir().map_err(|e| Failure::error(e.to_string()))?;
    let target = a.path.clone().unwrap_or(here);
    let (mp, rel) = locate(None, &target).map_err(Failure::error)?;
    let req = json!({"op": "du", "path": rel, "all": a.all, "summary": a.summarize});
    let (head, records) = client::ask(&mp, &req).map_err(Failure::error)?;
    client::refusal(&head, "du")?;
    let mut rows = rows(&records, client::mount_prefix(&mp));
    if a.summarize {
        rows.truncate(1);
    }
    // Children first, the asked directory last, as du prints.
    if rows.len() > 1 {
        rows[1..].sort_by(|x, y| x.0.cmp(&y.0));
        rows.rotate_left(1);
    }
    let shared = head["shared_bytes"].as_u64().unwrap_or(0);
    printed(print(&a, &rows, shared))
}
