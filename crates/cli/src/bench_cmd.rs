//! `gpufs bench compute`: every metadata kernel at several sizes on a synthetic namespace — the
//! CPU twin on one thread, on all cores, and the GPU kernel (query only; the one-time
//! mirror upload is reported apart) — with items/s, GB/s of namespace bytes read, and
//! the crossover size each kernel's figures imply.

use std::time::Duration;

use gpufs_compute::calibrate::median_time;
use gpufs_compute::gpu::GpuContext;
use gpufs_compute::kernels::dir_sort::{self, SortKey};
use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery};
use gpufs_compute::kernels::{path_build, path_lookup, subtree_sum};
use gpufs_compute::mirror::NamespaceMirror;
use gpufs_compute::synth::SynthNamespace;
use gpufs_compute::Choice;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(clap::Subcommand, Debug)]
enum BenchWhat {
    /// The compute kernels on a synthetic namespace.
    Compute(ComputeBench),
    /// The data kernels (CRC32C, BLAKE3, LZ4, AES-XTS) on seeded corpora of records.
    Data(crate::bench_data::DataBench),
}

#[derive(clap::Args, Debug)]
struct ComputeBench {
    /// Entry counts, comma-separated (k and M suffixes).
    #[arg(long, default_value = "1k,10k,100k,1M,10M")]
    sizes: String,
    /// Timed runs per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Backend for the GPU column: auto (a hardware GPU), gpu (any, lavapipe too), cpu (none).
    #[arg(long, default_value = "auto")]
    compute: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Leave out the one-thread CPU column (the slowest; for short runs on a lent GPU).
    #[arg(long)]
    skip_one_thread: bool,
}

/// The median of `reps` runs of `f` on one thread, unless that column is skipped.
pub(crate) fn one_thread(skip: bool, reps: usize, f: impl FnMut()) -> Option<Duration> {
    (!skip).then(|| median_time(reps, f))
}

pub fn run(a: BenchArgs) -> Result<(), String> {
    match a.what {
        BenchWhat::Compute(c) => compute(c),
        BenchWhat::Data(d) => crate::bench_data::run(d),
    }
}

fn parse_sizes(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|p| {
            let p = p.trim();
            let (num, mul) = match p.chars().last() {
                Some('k' | 'K') => (&p[..p.len() - 1], 1_000),
                Some('M') => (&p[..p.len() - 1], 1_000_000),
                _ => (p, 1),
            };
            num.parse::<usize>()
                .map(|n| n * mul)
                .map_err(|_| format!("bad size {p:?}"))
        })
        .collect()
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
    } else {
        let g = r
            .gpu
            .map(|g| format!("{:>10.3} {:>8.2}", g.as_secs_f64() * 1e3, gbs(g)))
            .unwrap_or_else(|| format!("{:>10} {:>8}", "-", "-"));
        let one = r
            .cpu1
            .map(|d| format!("{:>10.3} {:>8.2}", d.as_secs_f64() * 1e3, gbs(d)))
            .unwrap_or_else(|| format!("{:>10} {:>8}", "-", "-"));
        println!(
            "{:<12} {:<22} {:>9} {one} {:>10.3} {:>8.2} {g}",
            r.kernel,
            r.case,
            r.items,
            r.cpu_all.as_secs_f64() * 1e3,
            gbs(r.cpu_all),
        );
    }
}

fn gpu_time<T>(
    ctx: Option<&GpuContext>,
    reps: usize,
    mut f: impl FnMut(&GpuContext) -> Result<T, gpufs_compute::ComputeError>,
) -> Result<Option<Duration>, String> {
    let Some(ctx) = ctx else { return Ok(None) };
    let mut err = None;
    let t = median_time(reps, || {
        if let Err(e) = f(ctx) {
            err = Some(e);
        }
    });
    match err {
        Some(e) => Err(e.to_string()),
        None => Ok(Some(t)),
    }
}

fn compute(a: ComputeBench) -> Result<(), String> {
    let sizes = parse_sizes(&a.sizes)?;
    let choice: Choice = a.compute.parse().map_err(|e| format!("{e}"))?;
    let compute = crate::compute_cmd::open(choice)?;
    let ctx = compute.gpu();
    let threads = rayon_threads();
    if !a.json {
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
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let ns = SynthNamespace::generate(42, largest, 40);
    let queries = [
        (
            "substring",
            NameQuery::Substring {
                needle: b"report".to_vec(),
                fold: false,
            },
        ),
        (
            "substring -i",
            NameQuery::Substring {
                needle: b"readme".to_vec(),
                fold: true,
            },
        ),
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
    let matchers: Vec<(&str, NameMatcher)> = queries
        .iter()
        .map(|(c, q)| {
            NameMatcher::new(q)
                .map(|m| (*c, m))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let all_ids: Vec<u32> = (0..ns.dirents.len() as u32).collect();
    let full = ns.view();
    let full_mirror = match ctx {
        Some(c) => Some(NamespaceMirror::upload(c, &full).map_err(|e| e.to_string())?),
        None => None,
    };
    for &n in &sizes {
        let view = ns.prefix_view(n);
        let name_bytes: u64 = view.dirents.iter().map(|d| u64::from(d.name_len)).sum();
        let mirror = match ctx {
            Some(c) => {
                let t = std::time::Instant::now();
                let m = NamespaceMirror::upload(c, &view).map_err(|e| e.to_string())?;
                c.wait().map_err(|e| e.to_string())?;
                if !a.json {
                    println!(
                        "# {n} entries: mirror upload {:.1} ms",
                        t.elapsed().as_secs_f64() * 1e3
                    );
                }
                Some(m)
            }
            None => None,
        };
        for (case, m) in &matchers {
            let row = Row {
                kernel: "name_match",
                case: case.to_string(),
                items: n,
                bytes: n as u64 * 32 + name_bytes,
                cpu1: one_thread(a.skip_one_thread, a.reps, || {
                    std::hint::black_box(m.cpu_one_thread(&view));
                }),
                cpu_all: median_time(a.reps, || {
                    std::hint::black_box(m.cpu(&view));
                }),
                gpu: gpu_time(ctx, a.reps, |c| m.gpu(c, mirror_ref(&mirror)?))?,
            };
            print_row(&row, a.json);
        }
        let ids = &all_ids[..n];
        let paths = path_build::cpu(&full, ids);
        let row = Row {
            kernel: "path_build",
            case: "ids -> paths".into(),
            items: n,
            bytes: paths.bytes.len() as u64,
            cpu1: one_thread(a.skip_one_thread, a.reps, || {
                std::hint::black_box(path_build::cpu_one_thread(&full, ids));
            }),
            cpu_all: median_time(a.reps, || {
                std::hint::black_box(path_build::cpu(&full, ids));
            }),
            gpu: gpu_time(ctx, a.reps, |c| {
                path_build::gpu(c, mirror_ref(&full_mirror)?, ids)
            })?,
        };
        print_row(&row, a.json);
        let refs: Vec<&[u8]> = paths.iter().collect();
        let row = Row {
            kernel: "path_lookup",
            case: "paths -> inodes".into(),
            items: n,
            bytes: paths.bytes.len() as u64,
            cpu1: one_thread(a.skip_one_thread, a.reps, || {
                std::hint::black_box(path_lookup::cpu_one_thread(&full, &refs));
            }),
            cpu_all: median_time(a.reps, || {
                std::hint::black_box(path_lookup::cpu(&full, &refs));
            }),
            gpu: gpu_time(ctx, a.reps, |c| {
                path_lookup::gpu(c, mirror_ref(&full_mirror)?, &refs)
            })?,
        };
        print_row(&row, a.json);
        for (case, key) in [
            ("by name", SortKey::Name),
            ("by size", SortKey::Size),
            ("by mtime desc", SortKey::Mtime),
        ] {
            let desc = key == SortKey::Mtime;
            let row = Row {
                kernel: "dir_sort",
                case: case.into(),
                items: n,
                bytes: n as u64 * 4
                    + if key == SortKey::Name {
                        name_bytes
                    } else {
                        n as u64 * 8
                    },
                cpu1: one_thread(a.skip_one_thread, a.reps, || {
                    std::hint::black_box(dir_sort::cpu_one_thread(&full, ids, key, desc));
                }),
                cpu_all: median_time(a.reps, || {
                    std::hint::black_box(dir_sort::cpu(&full, ids, key, desc));
                }),
                gpu: gpu_time(ctx, a.reps, |c| {
                    dir_sort::gpu(c, mirror_ref(&full_mirror)?, ids, key, desc)
                })?,
            };
            print_row(&row, a.json);
        }
        let row = Row {
            kernel: "subtree_sum",
            case: "every directory".into(),
            items: n,
            bytes: n as u64 * (32 + 64 + 8),
            cpu1: one_thread(a.skip_one_thread, a.reps, || {
                std::hint::black_box(subtree_sum::cpu_one_thread(&view));
            }),
            cpu_all: median_time(a.reps, || {
                std::hint::black_box(subtree_sum::cpu(&view));
            }),
            gpu: gpu_time(ctx, a.reps, |c| subtree_sum::gpu(c, mirror_ref(&mirror)?))?,
        };
        print_row(&row, a.json);
    }
    Ok(())
}

fn mirror_ref(
    m: &Option<NamespaceMirror>,
) -> Result<&NamespaceMirror, gpufs_compute::ComputeError> {
    m.as_ref().ok_or(gpufs_compute::ComputeError::GpuDisabled)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
