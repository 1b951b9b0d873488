//! Calibration: for each kernel, the smallest batch at which the GPU beats the CPU twin
//! on all cores on this machine, measured on a synthetic namespace. `auto` sends a
//! kernel to the GPU only from that size on. Results are cached per adapter and driver
//! so a mount does not measure again.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::compute::Policy;
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::GpuContext;
use crate::kernels::blake3::{self, Blake3Mode};
use crate::kernels::dir_sort::{self, SortKey};
use crate::kernels::name_match::{NameMatcher, NameQuery, ALL_KINDS};
use crate::kernels::path_match::PathMatcher;
use crate::kernels::xts::{self, Direction, XtsKey};
use crate::kernels::{crc32c, lz4, path_build, path_lookup, subtree_sum};
use crate::mirror::NamespaceMirror;
use crate::records::RecordBatch;
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
    calibrate_matches(ctx, &ns, &mut policy)?;
    calibrate_id_kernels(ctx, &ns, &mut policy)?;
    // The metadata thresholds stand even when the data kernels cannot be measured;
    // those then stay on the CPU.
    if let Err(e) = calibrate_data(ctx, &mut policy) {
        tracing::info!("compute: data kernels not calibrated ({e}); they stay on the CPU");
    }
    Ok(policy)
}

/// Records `kernel`'s threshold in `policy`, when the GPU won from some size on.
fn set(policy: &mut Policy, kernel: &str, wins: &[(usize, bool)]) {
    if let Some(t) = threshold(wins) {
        policy.gpu_from.insert(kernel.into(), t);
    }
}

/// Whether `gpu` ran faster than `cpu` (medians of three runs each, after a warm-up);
/// the GPU's error when it failed.
fn gpu_wins<T, U>(
    mut cpu: impl FnMut() -> T,
    mut gpu: impl FnMut() -> ComputeResult<U>,
) -> ComputeResult<bool> {
    let cpu = median_time(3, || drop(black_box(cpu())));
    let mut failed = None;
    let gpu = median_time(3, || match gpu() {
        Ok(v) => drop(black_box(v)),
        Err(e) => failed = Some(e),
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(gpu < cpu),
    }
}

/// [`gpu_wins`] where a GPU that fails loses.
fn gpu_wins_or_loses<T, U>(cpu: impl FnMut() -> T, gpu: impl FnMut() -> ComputeResult<U>) -> bool {
    gpu_wins(cpu, gpu).unwrap_or(false)
}

/// Name match and full-path match over growing prefixes of `ns`.
fn calibrate_matches(
    ctx: &GpuContext,
    ns: &SynthNamespace,
    policy: &mut Policy,
) -> ComputeResult<()> {
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
        // A failing name match fails the calibration.
        let won = gpu_wins(|| matcher.cpu(&view), || matcher.gpu(ctx, &mirror))?;
        wins.push((n, won));
        let won = gpu_wins_or_loses(
            || path_matcher.cpu(&view, ALL_KINDS),
            || path_matcher.gpu(ctx, &mirror, &view, ALL_KINDS),
        );
        path_wins.push((n, won));
    }
    set(policy, crate::kernels::name_match::NAME, &wins);
    set(policy, crate::kernels::path_match::NAME, &path_wins);
    Ok(())
}

/// Path building, lookup and sorting of the first `n` entries of `ns`, and subtree sums
/// of its prefixes.
fn calibrate_id_kernels(
    ctx: &GpuContext,
    ns: &SynthNamespace,
    policy: &mut Policy,
) -> ComputeResult<()> {
    let view = ns.view();
    let mirror = NamespaceMirror::upload(ctx, &view)?;
    let all: Vec<u32> = (0..ns.dirents.len() as u32).collect();
    let mut wins: [Vec<(usize, bool)>; 4] = Default::default();
    for &n in &SIZES {
        let ids = &all[..n.min(all.len())];
        let won = gpu_wins_or_loses(
            || path_build::cpu(&view, ids),
            || path_build::gpu(ctx, &mirror, ids),
        );
        wins[0].push((n, won));
        let paths = path_build::cpu(&view, ids);
        let refs: Vec<&[u8]> = paths.iter().collect();
        let won = gpu_wins_or_loses(
            || path_lookup::cpu(&view, &refs),
            || path_lookup::gpu(ctx, &mirror, &refs),
        );
        wins[1].push((n, won));
        let won = gpu_wins_or_loses(
            || dir_sort::cpu(&view, ids, SortKey::Name, false),
            || dir_sort::gpu(ctx, &mirror, ids, SortKey::Name, false),
        );
        wins[2].push((n, won));
        let part = ns.prefix_view(n);
        let part_mirror = NamespaceMirror::upload(ctx, &part)?;
        let won = gpu_wins_or_loses(
            || subtree_sum::cpu(&part),
            || subtree_sum::gpu(ctx, &part_mirror),
        );
        wins[3].push((n, won));
    }
    let kernels = [
        path_build::NAME,
        path_lookup::NAME,
        dir_sort::NAME,
        subtree_sum::NAME,
    ];
    for (kernel, w) in kernels.iter().zip(&wins) {
        set(policy, kernel, w);
    }
    Ok(())
}

/// Batch sizes in bytes tried for the data kernels (64 KiB records of text-like data).
pub const DATA_SIZES: [usize; 4] = [64 << 10, 1 << 20, 16 << 20, 64 << 20];

/// The data kernels, whole calls (transfers included: what the filesystem pays)
/// against the CPU twins on all cores; thresholds in bytes.
fn calibrate_data(ctx: &GpuContext, policy: &mut Policy) -> ComputeResult<()> {
    use crate::synth::data::{corpus, DataKind};
    let record = 64 << 10;
    let largest = DATA_SIZES[DATA_SIZES.len() - 1] / record;
    let all = corpus(DataKind::Text, 9, largest, record)?;
    let mut wins: [Vec<(usize, bool)>; 5] = Default::default();
    for &bytes in &DATA_SIZES {
        let n = bytes / record;
        let batch = RecordBatch::from_records(all.iter().take(n))?;
        for (k, won) in data_wins(ctx, &batch)?.into_iter().enumerate() {
            wins[k].push((bytes, won));
        }
    }
    for (name, w) in DATA_KERNELS.iter().zip(&wins) {
        set(policy, name, w);
    }
    Ok(())
}

/// The data kernels in the order [`data_wins`] measures them.
const DATA_KERNELS: [&str; 5] = [
    crc32c::NAME,
    blake3::NAME,
    lz4::COMPRESS,
    lz4::DECOMPRESS,
    xts::NAME,
];

/// Whether the GPU beat the CPU twin at each of [`DATA_KERNELS`] over `batch`; a GPU
/// failure fails the whole measurement.
fn data_wins(ctx: &GpuContext, batch: &RecordBatch) -> ComputeResult<[bool; 5]> {
    let key = XtsKey {
        data: [7; 32],
        tweak: [9; 32],
    };
    let first: Vec<u64> = (0..batch.len() as u64).map(|i| i * 16).collect();
    let packed = lz4::compress_cpu(batch);
    let (blocks, sizes) = (&packed.blocks, batch.lens());
    let (hash, enc) = (Blake3Mode::Hash, Direction::Encrypt);
    Ok([
        gpu_wins(|| crc32c::cpu(batch), || crc32c::gpu(ctx, batch))?,
        gpu_wins(
            || blake3::cpu(batch, &hash),
            || blake3::gpu(ctx, batch, &hash),
        )?,
        gpu_wins(
            || lz4::compress_cpu(batch),
            || lz4::compress_gpu(ctx, batch),
        )?,
        gpu_wins(
            || lz4::decompress_cpu(blocks, sizes),
            || lz4::decompress_gpu(ctx, blocks, sizes),
        )?,
        gpu_wins(
            || xts::cpu(batch, &key, &first, enc),
            || xts::gpu(ctx, batch, &key, &first, enc),
        )?,
    ])
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
