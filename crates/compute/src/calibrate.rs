//! Calibration: for each kernel, the smallest batch at which the GPU beats the CPU twin
//! on all cores on this machine, measured on a synthetic namespace. `auto` sends a
//! kernel to the GPU only from that size on. Results are cached per adapter and driver
//! so a mount does not measure again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::compute::Policy;
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::GpuContext;
use crate::kernels::dir_sort::{self, SortKey};
use crate::kernels::name_match::{NameMatcher, NameQuery, ALL_KINDS};
use crate::kernels::path_match::PathMatcher;
use crate::kernels::{path_build, path_lookup, subtree_sum};
use crate::mirror::NamespaceMirror;
use crate::synth::SynthNamespace;

/// Batch sizes tried, ascending.
pub const SIZES: [usize; 5] = [1_000, 10_000, 100_000, 300_000, 1_000_000];

/// Median wall time of `reps` runs of `f` after one warm-up run.
pub fn median_time(reps: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

/// Per size, whether the GPU was faster; the threshold is the smallest size from which
/// on it always was.
fn threshold(wins: &[(usize, bool)]) -> Option<u64> {
    let mut from = None;
    for &(n, gpu_faster) in wins.iter().rev() {
        if gpu_faster {
            from = Some(n as u64);
        } else {
            break;
        }
    }
    from
}

/// Measures every kernel on `ctx` against the CPU twins.
pub fn calibrate(ctx: &GpuContext) -> ComputeResult<Policy> {
    let largest = SIZES[SIZES.len() - 1];
    let ns = SynthNamespace::generate(7, largest, 40);
    let mut policy = Policy::default();
    let matcher = NameMatcher::new(&NameQuery::Substring {
        needle: b"report".to_vec(),
        fold: true,
    })?;
    // A full-path glob that every directory's state leaves open: the pass over every
    // entry, the case the GPU twin is for.
    let path_matcher = PathMatcher::new(&NameQuery::Glob {
        pattern: b"*/src/*.rs".to_vec(),
        fold: false,
    })
    .ok_or_else(|| ComputeError::BadQuery("calibration glob".into()))?;
    let mut wins = Vec::new();
    let mut path_wins = Vec::new();
    for &n in &SIZES {
        let view = ns.prefix_view(n);
        let mirror = NamespaceMirror::upload(ctx, &view)?;
        let cpu = median_time(3, || {
            std::hint::black_box(matcher.cpu(&view));
        });
        let mut err = None;
        let gpu = median_time(3, || {
            if let Err(e) = matcher.gpu(ctx, &mirror) {
                err = Some(e);
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        wins.push((n, gpu < cpu));
        let cpu = median_time(3, || {
            std::hint::black_box(path_matcher.cpu(&view, ALL_KINDS));
        });
        let gpu = median_time(3, || {
            std::hint::black_box(path_matcher.gpu(ctx, &mirror, &view, ALL_KINDS).ok());
        });
        path_wins.push((n, gpu < cpu));
    }
    if let Some(t) = threshold(&wins) {
        policy
            .gpu_from
            .insert(crate::kernels::name_match::NAME.into(), t);
    }
    if let Some(t) = threshold(&path_wins) {
        policy
            .gpu_from
            .insert(crate::kernels::path_match::NAME.into(), t);
    }
    let view = ns.view();
    let mirror = NamespaceMirror::upload(ctx, &view)?;
    let all: Vec<u32> = (0..ns.dirents.len() as u32).collect();
    let mut build_wins = Vec::new();
    let mut lookup_wins = Vec::new();
    for &n in &SIZES {
        let ids = &all[..n];
        let cpu = median_time(3, || {
            std::hint::black_box(path_build::cpu(&view, ids));
        });
        let gpu = median_time(3, || {
            std::hint::black_box(path_build::gpu(ctx, &mirror, ids).ok());
        });
        build_wins.push((n, gpu < cpu));
        let paths = path_build::cpu(&view, ids);
        let refs: Vec<&[u8]> = paths.iter().collect();
        let cpu = median_time(3, || {
            std::hint::black_box(path_lookup::cpu(&view, &refs));
        });
        let gpu = median_time(3, || {
            std::hint::black_box(path_lookup::gpu(ctx, &mirror, &refs).ok());
        });
        lookup_wins.push((n, gpu < cpu));
    }
    if let Some(t) = threshold(&build_wins) {
        policy.gpu_from.insert(path_build::NAME.into(), t);
    }
    if let Some(t) = threshold(&lookup_wins) {
        policy.gpu_from.insert(path_lookup::NAME.into(), t);
    }
    let mut sort_wins = Vec::new();
    let mut sum_wins = Vec::new();
    for &n in &SIZES {
        let ids = &all[..n];
        let cpu = median_time(3, || {
            std::hint::black_box(dir_sort::cpu(&view, ids, SortKey::Name, false));
        });
        let gpu = median_time(3, || {
            std::hint::black_box(dir_sort::gpu(ctx, &mirror, ids, SortKey::Name, false).ok());
        });
        sort_wins.push((n, gpu < cpu));
        let part = ns.prefix_view(n);
        let part_mirror = NamespaceMirror::upload(ctx, &part)?;
        let cpu = median_time(3, || {
            std::hint::black_box(subtree_sum::cpu(&part));
        });
        let gpu = median_time(3, || {
            std::hint::black_box(subtree_sum::gpu(ctx, &part_mirror).ok());
        });
        sum_wins.push((n, gpu < cpu));
    }
    if let Some(t) = threshold(&sort_wins) {
        policy.gpu_from.insert(dir_sort::NAME.into(), t);
    }
    if let Some(t) = threshold(&sum_wins) {
        policy.gpu_from.insert(subtree_sum::NAME.into(), t);
    }
    // The metadata thresholds stand even when the data kernels cannot be measured;
    // those then stay on the CPU.
    if let Err(e) = calibrate_data(ctx, &mut policy) {
        tracing::info!("compute: data kernels not calibrated ({e}); they stay on the CPU");
    }
    Ok(policy)
}

/// Batch sizes in bytes tried for the data kernels (64 KiB records of text-like data).
pub const DATA_SIZES: [usize; 4] = [64 << 10, 1 << 20, 16 << 20, 64 << 20];

/// The data kernels, whole calls (transfers included: what the filesystem pays)
/// against the CPU twins on all cores; thresholds in bytes.
fn calibrate_data(ctx: &GpuContext, policy: &mut Policy) -> ComputeResult<()> {
    use crate::kernels::blake3::{self, Blake3Mode};
    use crate::kernels::xts::{self, Direction, XtsKey};
    use crate::kernels::{crc32c, lz4};
    use crate::synth_data::{corpus, DataKind};
    let record = 64 << 10;
    let largest = DATA_SIZES[DATA_SIZES.len() - 1] / record;
    let all = corpus(DataKind::Text, 9, largest, record)?;
    let key = XtsKey {
        data: [7; 32],
        tweak: [9; 32],
    };
    let mut wins: [Vec<(usize, bool)>; 5] = Default::default();
    for &bytes in &DATA_SIZES {
        let n = bytes / record;
        let batch = crate::records::RecordBatch::from_records(all.iter().take(n))?;
        let first: Vec<u64> = (0..n as u64).map(|i| i * 16).collect();
        let packed = lz4::compress_cpu(&batch);
        let sizes: Vec<u32> = batch.lens().to_vec();
        let mut failed = None;
        let mut gpu_time = |f: &mut dyn FnMut() -> ComputeResult<()>| {
            median_time(3, || {
                if let Err(e) = f() {
                    failed = Some(e);
                }
            })
        };
        let pairs = [
            (
                median_time(3, || drop(std::hint::black_box(crc32c::cpu(&batch)))),
                gpu_time(&mut || crc32c::gpu(ctx, &batch).map(drop)),
            ),
            (
                median_time(3, || {
                    drop(std::hint::black_box(blake3::cpu(&batch, &Blake3Mode::Hash)))
                }),
                gpu_time(&mut || blake3::gpu(ctx, &batch, &Blake3Mode::Hash).map(drop)),
            ),
            (
                median_time(3, || drop(std::hint::black_box(lz4::compress_cpu(&batch)))),
                gpu_time(&mut || lz4::compress_gpu(ctx, &batch).map(drop)),
            ),
            (
                median_time(3, || {
                    drop(std::hint::black_box(lz4::decompress_cpu(
                        &packed.blocks,
                        &sizes,
                    )))
                }),
                gpu_time(&mut || lz4::decompress_gpu(ctx, &packed.blocks, &sizes).map(drop)),
            ),
            (
                median_time(3, || {
                    drop(std::hint::black_box(xts::cpu(
                        &batch,
                        &key,
                        &first,
                        Direction::Encrypt,
                    )))
                }),
                gpu_time(&mut || xts::gpu(ctx, &batch, &key, &first, Direction::Encrypt).map(drop)),
            ),
        ];
        if let Some(e) = failed {
            return Err(e);
        }
        for (k, (cpu, gpu)) in pairs.into_iter().enumerate() {
            wins[k].push((bytes, gpu < cpu));
        }
    }
    let names = [
        crc32c::NAME,
        blake3::NAME,
        lz4::COMPRESS,
        lz4::DECOMPRESS,
        xts::NAME,
    ];
    for (name, w) in names.iter().zip(&wins) {
        if let Some(t) = threshold(w) {
            policy.gpu_from.insert((*name).into(), t);
        }
    }
    Ok(())
}

/// Where the calibration of `ctx` is cached.
pub fn cache_path(ctx: &GpuContext) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    let key: String = format!(
        "{}-{}-{:?}",
        ctx.info.name, ctx.info.driver_info, ctx.info.backend
    )
    .chars()
    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
    .collect();
    // v2: with the data kernels; an older file lacks them and is measured again.
    base.join("gpufs").join(format!("calibration-v2-{key}.txt"))
}

/// Reads a cached policy ("kernel batch" lines).
pub fn load(path: &Path) -> Option<Policy> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut p = Policy::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if let (Some(k), Some(v)) = (it.next(), it.next()) {
            p.gpu_from.insert(k.to_string(), v.parse().ok()?);
        }
    }
    Some(p)
}

/// Writes `policy` to `path` (best effort: a read-only cache only costs a recalibration).
pub fn store(path: &Path, policy: &Policy) {
    let mut lines: Vec<String> = policy
        .gpu_from
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    lines.sort();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(path, lines.join("\n") + "\n");
}

/// The cached policy for `ctx`, calibrating (and caching) when there is none.
pub fn policy_for(ctx: &GpuContext) -> ComputeResult<Policy> {
    let path = cache_path(ctx);
    if let Some(p) = load(&path) {
        return Ok(p);
    }
    tracing::info!("compute: calibrating {} (once per adapter)", ctx.info.name);
    let p = calibrate(ctx)?;
    store(&path, &p);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_need_a_winning_tail() {
        assert_eq!(threshold(&[(1, false), (2, true), (3, true)]), Some(2));
        assert_eq!(threshold(&[(1, true), (2, false), (3, true)]), Some(3));
        assert_eq!(threshold(&[(1, true), (2, true), (3, false)]), None);
        assert_eq!(threshold(&[]), None);
    }

    #[test]
    fn policies_round_trip_through_the_cache_file() {
        let dir = std::env::temp_dir().join(format!("gpufs-cal-{}", std::process::id()));
        let path = dir.join("c.txt");
        let mut p = Policy::default();
        p.gpu_from.insert("name_match".into(), 100_000);
        p.gpu_from.insert("path_build".into(), 1_000_000);
        store(&path, &p);
        assert_eq!(load(&path), Some(p));
        let _ = std::fs::remove_dir_all(dir);
    }
}
