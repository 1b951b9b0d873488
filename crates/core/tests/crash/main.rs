//! Crash consistency: a seeded workload runs on a device that loses power at a random
//! write; the image it leaves must mount, and hold exactly the state after some op at or
//! after the last successful fsync (the journal replays a prefix of whole commits).
//!
//! `GPUFS_CRASH_CUTS` sets the number of cut points (default 200; a quarter of that on
//! an encrypted filesystem), `GPUFS_CRASH_SEED` the first seed (cut `i` uses seed + i).
//! A failure prints its seed: rerun it alone with `GPUFS_CRASH_SEED=<seed>
//! GPUFS_CRASH_CUTS=1` (and the test's name).

mod check;
mod cut;
mod devices;
mod model;
mod rng;
mod workload;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cut::{run_cut, Outcome};

const DEVICE_BYTES: usize = 32 << 20;
const JOURNAL_BLOCKS: u64 = 64;
const OPS: usize = 150;
const MAX_DIRS: usize = 3;
const MAX_FILES: usize = 30;
const MAX_WRITE: u64 = 200 << 10;
const MAX_FILE: u64 = 700 << 10;
const ROOT: u64 = 1;
const DEFAULT_CUTS: u64 = 200;
const DEFAULT_SEED: u64 = 0x6b70_6673_0000;
/// A file written and synced before the workload, which never touches it: it fills most
/// of the device so the allocator wraps and reuses freed blocks during the workload.
const BALLAST: &str = "ballast";
/// Free space left beside the ballast and the workload's peak of live data.
const HEADROOM: u64 = 4 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        }
        Err(_) => default,
    }
}

#[test]
fn power_cuts_leave_a_committed_prefix() {
    let cuts = env_u64("GPUFS_CRASH_CUTS", DEFAULT_CUTS);
    let base = env_u64("GPUFS_CRASH_SEED", DEFAULT_SEED);
    run_cuts(cuts, base, false);
}

/// The same on an encrypted filesystem: every record, checkpoint page and journal block
/// sealed, every remount and fsck unlocking the image.
#[test]
fn power_cuts_on_an_encrypted_filesystem_leave_a_committed_prefix() {
    let cuts = (env_u64("GPUFS_CRASH_CUTS", DEFAULT_CUTS) / 4).max(1);
    let base = env_u64("GPUFS_CRASH_SEED", DEFAULT_SEED ^ 0xe0c0);
    run_cuts(cuts, base, true);
}

fn run_cuts(cuts: u64, base: u64, encrypted: bool) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(cuts.max(1) as usize);
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let stats: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                devices::set_encrypted(encrypted);
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= cuts {
                    return;
                }
                let seed = base.wrapping_add(i);
                let result = std::panic::catch_unwind(|| run_cut(seed)).unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(format!("panicked: {msg}"))
                });
                match result {
                    Ok(o) => stats.lock().unwrap().push(o),
                    Err(e) => failures.lock().unwrap().push((seed, e)),
                }
            });
        }
    });
    let stats = stats.into_inner().unwrap();
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(s, _)| *s);
    let died = stats.iter().filter(|o| o.died).count();
    let replayed = stats.iter().filter(|o| o.replayed).count();
    let mid = stats.iter().map(|o| o.mid_op_commits).sum::<u64>();
    let enospc = stats.iter().map(|o| o.enospc).sum::<u64>();
    let short_runs = stats.iter().filter(|o| o.enospc > 0).count();
    let skipped = stats.iter().map(|o| o.skipped).sum::<u64>();
    let at_end = stats.iter().filter(|o| o.matched_op == OPS).count();
    println!(
        "crash{}: {} cut points (seeds {base:#x}..{:#x}) in {:.1?} on {threads} threads: \
         {} passed, {} failed; {died} cut mid-workload, {} cut after it; {replayed} replayed \
         a journal; {at_end} recovered the final state; {mid} commits by non-fsync ops; \
         {enospc} ENOSPC results in {short_runs} runs ({skipped} ops skipped after them)",
        if encrypted { " (encrypted)" } else { "" },
        cuts,
        base.wrapping_add(cuts),
        started.elapsed(),
        stats.len(),
        failures.len(),
        stats.len() - died,
    );
    if !failures.is_empty() {
        let mut msg = format!("{} of {cuts} cut points failed:\n", failures.len());
        for (seed, e) in failures.iter().take(5) {
            let _ = writeln!(
                msg,
                "seed {seed:#x} (rerun: GPUFS_CRASH_SEED={seed:#x} GPUFS_CRASH_CUTS=1): {e}"
            );
        }
        panic!("{msg}");
    }
}
