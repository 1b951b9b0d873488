//! `gpufs search [MOUNTPOINT] PATTERN`: names (or paths) matching a pattern, from the
//! running mount's live namespace; nothing to index, nothing stale.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::client::{self, locate};
use crate::exit::{printed, Failure};
use crate::size;

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// [MOUNTPOINT] PATTERN: without MOUNTPOINT, the gpufs mount holding the current
    /// directory.
    #[arg(num_args = 1..=2, value_name = "ARGS", required = true)]
    pub args: Vec<OsString>,
    /// Ignore ASCII case.
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    /// PATTERN is a glob (`*`, `?`, `[...]`), as `find -name`.
    #[arg(long, conflicts_with = "regex")]
    pub glob: bool,
    /// PATTERN is a regular expression (Rust regex syntax), matching anywhere unless
    /// anchored.
    #[arg(long)]
    pub regex: bool,
    /// Match the whole path from the mount root instead of the base name.
    #[arg(long)]
    pub full_path: bool,
    /// Only these kinds: f (file), d (directory), l (symlink); may repeat or combine.
    #[arg(long = "type", short = 't', value_name = "f|d|l")]
    pub kinds: Vec<String>,
    /// Size filter, as find: +1M (more than), -10k (less than), 4096 (exactly).
    #[arg(long, value_name = "[+-]SIZE", allow_hyphen_values = true)]
    pub size: Option<String>,
    /// Modified after TIME (a file's mtime, or seconds since the epoch).
    #[arg(long, value_name = "FILE|SECONDS")]
    pub newer: Option<String>,
    /// Modified before TIME.
    #[arg(long, value_name = "FILE|SECONDS")]
    pub older: Option<String>,
    /// Only below DIR.
    #[arg(long, value_name = "DIR")]
    pub under: Option<PathBuf>,
    /// At most N results.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Print only the number of matches.
    #[arg(short = 'c', long)]
    pub count: bool,
    /// End each path with NUL instead of a newline.
    #[arg(short = '0', long = "print0")]
    pub print0: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Search snapshot NAME instead of the live filesystem (may repeat); hits are shown
    /// where they are readable, under MOUNTPOINT/.gpufs/snapshots/NAME/.
    #[arg(long, value_name = "NAME", conflicts_with = "under")]
    pub snapshot: Vec<String>,
    /// Search every snapshot (each hit labelled by its snapshot's directory).
    #[arg(long, conflicts_with_all = ["snapshot", "under"])]
    pub all_snapshots: bool,
}

/// Bytes from a size like 10k, 1M, 2G (powers of 1024), with an optional sign.
fn parse_size(s: &str) -> Result<(char, u64), Failure> {
    let (sign, rest) = match s.chars().next() {
        Some(c @ ('+' | '-')) => (c, &s[1..]),
        _ => ('=', s),
    };
    Ok((sign, size::parse_size(rest).map_err(Failure::usage)?))
}

/// Nanoseconds since the epoch: a file's mtime, or a number of seconds.
fn parse_time(s: &str) -> Result<i64, Failure> {
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs.saturating_mul(1_000_000_000));
    }
    let meta = std::fs::metadata(s).map_err(|e| Failure::usage(format!("{s}: {e}")))?;
    use std::os::unix::fs::MetadataExt;
    Ok(meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec())
}

fn kinds_mask(kinds: &[String]) -> Result<Option<u32>, Failure> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let mut mask = 0;
    for k in kinds.iter().flat_map(|k| k.chars()) {
        mask |= match k {
            'f' => 1 << 1,
            'd' => 1 << 2,
            'l' => 1 << 3,
            ',' => 0,
            _ => {
                return Err(Failure::usage(format!(
                    "unknown --type {k:?}: use f, d or l"
                )))
            }
        };
    }
    Ok(Some(mask))
}

/// The mount to ask and the request to send it.
fn request(a: &SearchArgs) -> Result<(PathBuf, Value), Failure> {
    let (mp_arg, pattern) = match a.args.as_slice() {
        [p] => (None, p.clone()),
        [m, p] => (Some(PathBuf::from(m)), p.clone()),
        _ => return Err(Failure::usage("give [MOUNTPOINT] PATTERN")),
    };
    let pattern = pattern.into_vec();
    if pattern.is_empty() {
        return Err(Failure::usage("empty pattern"));
    }
    let here = std::env::current_dir().map_err(|e| Failure::error(e.to_string()))?;
    let (mp, _) =
        locate(mp_arg.as_deref(), mp_arg.as_deref().unwrap_or(&here)).map_err(Failure::error)?;
    let mut req = json!({
        "op": "search",
        "pattern": pattern,
        "mode": if a.glob { "glob" } else if a.regex { "regex" } else { "substring" },
        "ignore_case": a.ignore_case,
        "full_path": a.full_path,
        "count_only": a.count,
    });
    add_filters(a, &mp, &mut req)?;
    Ok((mp, req))
}

/// The filters (`--type`, `--size`, `--newer`, `--older`, `--under`, `--limit`) added
/// to `req`.
fn add_filters(a: &SearchArgs, mp: &Path, req: &mut Value) -> Result<(), Failure> {
    if let Some(mask) = kinds_mask(&a.kinds)? {
        req["kinds"] = json!(mask);
    }
    if let Some(s) = &a.size {
        let (sign, n) = parse_size(s)?;
        match sign {
            '+' => req["min_size"] = json!(n.saturating_add(1)),
            '-' => req["max_size"] = json!(n.saturating_sub(1)),
            _ => {
                req["min_size"] = json!(n);
                req["max_size"] = json!(n);
            }
        }
    }
    if let Some(t) = &a.newer {
        req["newer_ns"] = json!(parse_time(t)?.saturating_add(1));
    }
    if let Some(t) = &a.older {
        req["older_ns"] = json!(parse_time(t)?);
    }
    if let Some(u) = &a.under {
        let (_, rel) = locate(Some(mp), u).map_err(Failure::usage)?;
        req["under"] = json!(rel);
    }
    if let Some(l) = a.limit {
        req["limit"] = json!(l);
    }
    if a.all_snapshots {
        req["all_snapshots"] = json!(true);
    } else if !a.snapshot.is_empty() {
        let names: Vec<&[u8]> = a.snapshot.iter().map(|n| n.as_bytes()).collect();
        req["snapshots"] = json!(names);
    }
    Ok(())
}

pub fn run(a: SearchArgs) -> Result<(), Failure> {
    let (mp, req) = request(&a)?;
    let base = client::mount_prefix(&mp);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    // Plain path output streams straight through; --json and --count collect.
    if !a.json && !a.count {
        // The daemon writes the lines out whole, straight to our standard output,
        // through a pipe made larger so the reader wakes less often.
        grow_stdout_pipe();
        let stdout_fd = std::io::stdout();
        let direct = std::os::fd::AsFd::as_fd(&stdout_fd);
        let end = if a.print0 { 0 } else { b'\n' };
        let head = client::ask_text(&mp, &req, (base, end), Some(direct), out.get_mut())
            .map_err(Failure::error)?;
        client::refusal(&head, "search")?;
        return printed(out.flush());
    }
    let mut records = Vec::new();
    let head = client::ask_each(&mp, &req, |r| {
        records.push(r.to_vec());
        Ok(())
    })
    .map_err(Failure::error)?;
    client::refusal(&head, "search")?;
    let count = head["count"].as_u64().unwrap_or(0);
    let shown = if a.count && a.json {
        writeln!(out, "{}", json!({ "count": count }))
    } else if a.count {
        writeln!(out, "{count}")
    } else {
        let paths: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8_lossy(&[base, r].concat()).into_owned())
            .collect();
        writeln!(out, "{}", json!({ "count": count, "paths": paths }))
    };
    printed(shown.and_then(|()| out.flush()))
}

/// Raises the buffer of a pipe on standard output to 256 KiB, so a large result wakes
/// its reader a quarter as often. Not larger: a reader that takes in a whole 1 MiB
/// pipe at once works on it out of cache (30 MB of paths through `cat` into a reader
/// counting lines, one-off on a dev machine: 17.8 ms with a 1 MiB pipe, 15.3 ms with
/// 256 KiB, 16.1 ms with the default 64 KiB). Anything else on standard output, or a
/// refusal, leaves it as is.
#[cfg(target_os = "linux")]
fn grow_stdout_pipe() {
    use nix::fcntl::{fcntl, FcntlArg};
    let _ = fcntl(std::io::stdout(), FcntlArg::F_SETPIPE_SZ(256 << 10));
}

#[cfg(not(target_os = "linux"))]
fn grow_stdout_pipe() {}
