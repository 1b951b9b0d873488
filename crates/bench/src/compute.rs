//! `gpufs-bench compute`: every metadata kernel at several sizes on a synthetic
//! namespace — the CPU twin on one thread, on all cores, and the GPU kernel (query
//! only; the one-time mirror upload is reported apart) — with items/s, GB/s of
//! namespace bytes read, and the crossover size each kernel's figures imply.

use std::time::Duration;

use gpufs_compute::calibrate::median_time;
use gpufs_compute::gpu::GpuContext;
use gpufs_compute::kernels::dir_sort::{self, SortKey};
use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery};
use gpufs_compute::kernels::{path_build, path_lookup, subtree_sum};
use gpufs_compute::mirror::NamespaceMirror;
use gpufs_compute::synth::SynthNamespace;
use gpufs_compute::view::NamespaceView;
use gpufs_compute::ComputeError;

use crate::common::{one_thread, scaled, threads, Columns};

#[derive(clap::Args, Debug)]
pub struct ComputeBench {
    /// Entry counts, comma-separated (k and M suffixes).
    #[arg(long, default_value = "1k,10k,100k,1M,10M")]
    sizes: String,
    /// Timed runs per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    #[command(flatten)]
    columns: Columns,
}

/// One measured row.
struct Row {
    kernel: &'static str,
    case: String,
    items: usize,
    bytes: u64,
    /// None when the one-thread column is skipped.
    cpu1: Option<Duration>,
    cpu_all: Duration,
    gpu: Option<Duration>,
}

fn per_sec(items: usize, d: Duration) -> f64 {
    items as f64 / d.as_secs_f64().max(1e-9)
}

fn print_row(r: &Row, json: bool) {
    let gbs = |d: Duration| r.bytes as f64 / d.as_secs_f64().max(1e-9) / 1e9;
    if json {
        let v = serde_json::json!({
            "kernel": r.kernel, "case": r.case, "items": r.items, "bytes": r.bytes,
            "cpu1_ms": r.cpu1.map(|d| d.as_secs_f64() * 1e3), "cpu_all_ms": r.cpu_all.as_secs_f64() * 1e3,
            "gpu_ms": r.gpu.map(|g| g.as_secs_f64() * 1e3),
            "cpu1_items_per_s": r.cpu1.map(|d| per_sec(r.items, d)),
            "cpu_all_items_per_s": per_sec(r.items, r.cpu_all),
            "gpu_items_per_s": r.gpu.map(|g| per_sec(r.items, g)),
            "cpu1_gb_per_s": r.cpu1.map(gbs), "cpu_all_gb_per_s": gbs(r.cpu_all),
            "gpu_gb_per_s": r.gpu.map(gbs),
        });
        println!("{v}");
        return;
    }
    let column = |d: Option<Duration>| {
        d.map(|d| format!("{:>10.3} {:>8.2}", d.as_secs_f64() * 1e3, gbs(d)))
            .unwrap_or_else(|| format!("{:>10} {:>8}", "-", "-"))
    };
    println!(
        "{:<12} {:<22} {:>9} {} {:>10.3} {:>8.2} {}",
        r.kernel,
        r.case,
        r.items,
        column(r.cpu1),
        r.cpu_all.as_secs_f64() * 1e3,
        gbs(r.cpu_all),
        column(r.gpu),
    );
}

/// How the rows are measured and printed.
struct Bench<'a> {
    reps: usize,
    skip_one_thread: bool,
    json: bool,
    ctx: Option<&'a GpuContext>,
}

impl Bench<'_> {
    /// Times one kernel on its three columns (one thread, all cores, GPU) and prints
    /// the row.
    fn row<T>(
        &self,
        (kernel, case): (&'static str, &str),
        items: usize,
        bytes: u64,
        one: impl FnMut(),
        all: impl FnMut(),
        gpu: impl FnMut(&GpuContext) -> Result<T, ComputeError>,
    ) -> Result<(), String> {
        let row = Row {
            kernel,
            case: case.to_string(),
            items,
            bytes,
            cpu1: one_thread(self.skip_one_thread, self.reps, one),
            cpu_all: median_time(self.reps, all),
            gpu: self.gpu_time(gpu)?,
        };
        print_row(&row, self.json);
        Ok(())
    }

    fn gpu_time<T>(
        &self,
        mut f: impl FnMut(&GpuContext) -> Result<T, ComputeError>,
    ) -> Result<Option<Duration>, String> {
        let Some(ctx) = self.ctx else { return Ok(None) };
        let mut err = None;
        let t = median_time(self.reps, || {
            if let Err(e) = f(ctx) {
                err = Some(e);
            }
        });
        match err {
            Some(e) => Err(e.to_string()),
            None => Ok(Some(t)),
        }
    }

    /// The mirror of `view` on the GPU, its upload time printed.
    fn mirror(
        &self,
        view: &NamespaceView<'_>,
        n: usize,
    ) -> Result<Option<NamespaceMirror>, String> {
        let Some(c) = self.ctx else { return Ok(None) };
        let t = std::time::Instant::now();
        let m = NamespaceMirror::upload(c, view).map_err(|e| e.to_string())?;
        c.wait().map_err(|e| e.to_string())?;
        if !self.json {
            println!(
                "# {n} entries: mirror upload {:.1} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        Ok(Some(m))
    }
}

fn parse_sizes(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|p| scaled(p, 1000).map(|n| n as usize))
        .collect()
}

/// The name queries timed, by case.
fn matchers() -> Result<Vec<(&'static str, NameMatcher)>, String> {
    let substring = |needle: &[u8], fold| NameQuery::Substring {
        needle: needle.to_vec(),
        fold,
    };
    let queries = [
        ("substring", substring(b"report", false)),
        ("substring -i", substring(b"readme", true)),
        (
            "glob *.jp?g",
            NameQuery::Glob {
                pattern: b"*.jp*g".to_vec(),
                fold: false,
            },
        ),
        (
            "regex",
            NameQuery::Regex {
                pattern: r"^IMG_2023[0-9]{4}_".into(),
                fold: false,
            },
        ),
    ];
    queries
        .iter()
        .map(|(c, q)| {
            NameMatcher::new(q)
                .map(|m| (*c, m))
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn print_header(ctx: Option<&GpuContext>) {
    let threads = threads();
    match ctx {
        Some(c) => println!(
            "GPU: {} ({:?}{}); CPU: {threads} threads",
            c.info.name,
            c.info.backend,
            if c.software {
                ", software: its times say nothing about GPUs"
            } else {
                ""
            }
        ),
        None => println!("GPU: none; CPU: {threads} threads"),
    }
    println!(
        "{:<12} {:<22} {:>9} {:>10} {:>8} {:>10} {:>8} {:>10} {:>8}",
        "kernel", "case", "items", "cpu1 ms", "GB/s", "cpuN ms", "GB/s", "gpu ms", "GB/s"
    );
}

pub fn run(a: ComputeBench) -> Result<(), String> {
    let sizes = parse_sizes(&a.sizes)?;
    let compute = crate::common::open(&a.columns.compute)?;
    let bench = Bench {
        reps: a.reps,
        skip_one_thread: a.columns.skip_one_thread,
        json: a.columns.json,
        ctx: compute.gpu(),
    };
    if !a.columns.json {
        print_header(bench.ctx);
    }
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let ns = SynthNamespace::generate(42, largest, 40);
    let matchers = matchers()?;
    let full = ns.view();
    let full_mirror = match bench.ctx {
        Some(c) => Some(NamespaceMirror::upload(c, &full).map_err(|e| e.to_string())?),
        None => None,
    };
    let all_ids: Vec<u32> = (0..ns.dirents.len() as u32).collect();
    for &n in &sizes {
        let view = ns.prefix_view(n);
        let mirror = bench.mirror(&view, n)?;
        let name_bytes: u64 = view.dirents.iter().map(|d| u64::from(d.name_len)).sum();
        for (case, m) in &matchers {
            bench.row(
                ("name_match", case),
                n,
                n as u64 * 32 + name_bytes,
                || drop(std::hint::black_box(m.cpu_one_thread(&view))),
                || drop(std::hint::black_box(m.cpu(&view))),
                |c| m.gpu(c, mirror_ref(&mirror)?),
            )?;
        }
        let ids = &all_ids[..n];
        paths_and_sorts(&bench, &full, &full_mirror, ids, name_bytes)?;
        bench.row(
            ("subtree_sum", "every directory"),
            n,
            n as u64 * (32 + 64 + 8),
            || drop(std::hint::black_box(subtree_sum::cpu_one_thread(&view))),
            || drop(std::hint::black_box(subtree_sum::cpu(&view))),
            |c| subtree_sum::gpu(c, mirror_ref(&mirror)?),
        )?;
    }
    Ok(())
}

/// The kernels over the first `ids` of the whole namespace: paths built and looked up,
/// and entries sorted three ways.
fn paths_and_sorts(
    bench: &Bench<'_>,
    full: &NamespaceView<'_>,
    mirror: &Option<NamespaceMirror>,
    ids: &[u32],
    name_bytes: u64,
) -> Result<(), String> {
    let n = ids.len();
    let paths = path_build::cpu(full, ids);
    bench.row(
        ("path_build", "ids -> paths"),
        n,
        paths.bytes.len() as u64,
        || drop(std::hint::black_box(path_build::cpu_one_thread(full, ids))),
        || drop(std::hint::black_box(path_build::cpu(full, ids))),
        |c| path_build::gpu(c, mirror_ref(mirror)?, ids),
    )?;
    let refs: Vec<&[u8]> = paths.iter().collect();
    bench.row(
        ("path_lookup", "paths -> inodes"),
        n,
        paths.bytes.len() as u64,
        || {
            drop(std::hint::black_box(path_lookup::cpu_one_thread(
                full, &refs,
            )))
        },
        || drop(std::hint::black_box(path_lookup::cpu(full, &refs))),
        |c| path_lookup::gpu(c, mirror_ref(mirror)?, &refs),
    )?;
    for (case, key) in [
        ("by name", SortKey::Name),
        ("by size", SortKey::Size),
        ("by mtime desc", SortKey::Mtime),
    ] {
        let desc = key == SortKey::Mtime;
        let key_bytes = if key == SortKey::Name {
            name_bytes
        } else {
            n as u64 * 8
        };
        bench.row(
            ("dir_sort", case),
            n,
            n as u64 * 4 + key_bytes,
            || {
                drop(std::hint::black_box(dir_sort::cpu_one_thread(
                    full, ids, key, desc,
                )))
            },
            || drop(std::hint::black_box(dir_sort::cpu(full, ids, key, desc))),
            |c| dir_sort::gpu(c, mirror_ref(mirror)?, ids, key, desc),
        )?;
    }
    Ok(())
}

fn mirror_ref(m: &Option<NamespaceMirror>) -> Result<&NamespaceMirror, ComputeError> {
    m.as_ref().ok_or(ComputeError::GpuDisabled)
}
