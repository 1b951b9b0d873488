//! `gpufs du [PATH]`: recursive sizes and file counts of a directory and the
//! directories below it, answered by the running mount from one subtree aggregation
//! instead of a walk.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use serde_json::json;

use crate::client;
use crate::search_cmd::{locate, Failure};

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
    /// Apparent sizes (bytes of content) instead of allocated bytes.
    #[arg(long)]
    pub apparent_size: bool,
    /// Sizes in bytes instead of human units.
    #[arg(short = 'b', long)]
    pub bytes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn human(n: u64) -> String {
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

pub fn run(a: DuArgs) -> Result<(), Failure> {
    let fail = |msg: String| Failure { code: 1, msg };
    let here = std::env::current_dir().map_err(|e| fail(e.to_string()))?;
    let target = a.path.clone().unwrap_or(here);
    let (mp, rel) = locate(None, &target).map_err(fail)?;
    let req = json!({"op": "du", "path": rel, "all": a.all, "summary": a.summarize});
    let (head, records) = client::ask(&mp, &req).map_err(fail)?;
    if head["ok"].as_bool() != Some(true) {
        return Err(Failure {
            code: head["code"].as_u64().unwrap_or(1) as u8,
            msg: head["error"].as_str().unwrap_or("du failed").to_string(),
        });
    }
    let base = mp.as_os_str().as_bytes();
    let base = if base == b"/" { &b""[..] } else { base };
    let mut rows = Vec::new();
    for r in &records {
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
    if a.summarize {
        rows.truncate(1);
    }
    // Children first, the asked directory last, as du prints.
    if rows.len() > 1 {
        rows[1..].sort_by(|x, y| x.0.cmp(&y.0));
        rows.rotate_left(1);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let res = (|| -> std::io::Result<()> {
        for (path, bytes, allocated, files, dirs) in &rows {
            if a.json {
                let v = json!({"path": String::from_utf8_lossy(path), "bytes": bytes,
                               "allocated": allocated, "files": files, "dirs": dirs});
                writeln!(out, "{v}")?;
                continue;
            }
            let size = if a.apparent_size { *bytes } else { *allocated };
            let shown = if a.bytes {
                size.to_string()
            } else {
                human(size)
            };
            write!(out, "{shown}\t{files} files\t")?;
            out.write_all(path)?;
            writeln!(out)?;
        }
        out.flush()
    })();
    match res {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(fail(e.to_string())),
        _ => Ok(()),
    }
}
