//! `gpufs bench data`: the data kernels (CRC32C, BLAKE3, LZ4 compression and
//! decompression, AES-256-XTS both ways) over seeded corpora of records (text-like,
//! binary-like, random) — the CPU twin on one thread and on all cores, and the GPU
//! kernel with its host transfers timed apart — in GB/s of record bytes, with LZ4's
//! compression ratio. `--write-corpus DIR` leaves the corpora as files, so peer tools
//! can be timed on the very same bytes (`bench/data.py` does).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gpufs_compute::calibrate::median_time;

use crate::bench_cmd::one_thread;
use gpufs_compute::gpu::GpuContext;
use gpufs_compute::kernels::blake3::{self, Blake3Mode};
use gpufs_compute::kernels::crc32c;
use gpufs_compute::kernels::lz4;
use gpufs_compute::kernels::xts::{self, Direction, XtsKey};
use gpufs_compute::records::RecordBatch;
use gpufs_compute::synth_data::{self, DataKind};
use gpufs_compute::{Choice, ComputeError};

#[derive(clap::Args, Debug)]
pub struct DataBench {
    /// Bytes of records per corpus (K, M, G suffixes).
    #[arg(long, default_value = "1G")]
    bytes: String,
    /// Bytes per record.
    #[arg(long, default_value = "64K")]
    record_size: String,
    /// Corpora, comma-separated: text, binary, random.
    #[arg(long, default_value = "text,binary,random")]
    kinds: String,
    /// Timed runs per figure (the median is reported).
    #[arg(long, default_value_t = 3)]
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
    /// Also write each corpus to DIR/KIND.bin (records end to end).
    #[arg(long, value_name = "DIR")]
    write_corpus: Option<PathBuf>,
}

/// GPU timings of one kernel: host to device, the kernel alone, device to host.
struct GpuTimes {
    upload: Duration,
    run: Duration,
    read: Duration,
    /// Bytes copied back (the outputs).
    read_bytes: u64,
}

/// One measured row.
struct Row {
    kernel: &'static str,
    data: &'static str,
    /// Bytes of input records (decompression: of output records).
    bytes: u64,
    /// None when the one-thread column is skipped.
    cpu1: Option<Duration>,
    cpu_all: Duration,
    gpu: Option<GpuTimes>,
    /// LZ4: input bytes over stored bytes (records that do not shrink stored raw).
    ratio: Option<f64>,
    gpu_ratio: Option<f64>,
}

fn gbs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64().max(1e-9) / 1e9
}

fn print_row(r: &Row, json: bool) {
    let gpu = r.gpu.as_ref();
    if json {
        let v = serde_json::json!({
            "kernel": r.kernel, "data": r.data, "bytes": r.bytes,
            "cpu1_gb_per_s": r.cpu1.map(|d| gbs(r.bytes, d)), "cpu_all_gb_per_s": gbs(r.bytes, r.cpu_all),
            "gpu_gb_per_s": gpu.map(|g| gbs(r.bytes, g.run)),
            "upload_gb_per_s": gpu.map(|g| gbs(r.bytes, g.upload)),
            "read_gb_per_s": gpu.map(|g| gbs(g.read_bytes, g.read)),
            "ratio": r.ratio, "gpu_ratio": r.gpu_ratio,
        });
        println!("{v}");
        return;
    }
    let g = gpu.map_or_else(
        || format!("{:>8} {:>8} {:>8}", "-", "-", "-"),
        |g| {
            format!(
                "{:>8.2} {:>8.2} {:>8.2}",
                gbs(r.bytes, g.run),
                gbs(r.bytes, g.upload),
                gbs(g.read_bytes, g.read)
            )
        },
    );
    let ratio = match (r.ratio, r.gpu_ratio) {
        (Some(c), Some(g)) => format!("{c:.2} / {g:.2}"),
        (Some(c), None) => format!("{c:.2}"),
        _ => String::new(),
    };
    let one = r.cpu1.map_or_else(
        || format!("{:>8} {:>8.2} {:>7}", "-", gbs(r.bytes, r.cpu_all), "-"),
        |d| {
            format!(
                "{:>8.2} {:>8.2} {:>6.2}x",
                gbs(r.bytes, d),
                gbs(r.bytes, r.cpu_all),
                d.as_secs_f64() / r.cpu_all.as_secs_f64().max(1e-9)
            )
        },
    );
    println!("{:<16} {:<7} {one} {g} {ratio}", r.kernel, r.data);
}

fn err(e: ComputeError) -> String {
    e.to_string()
}

/// Times the three GPU steps: `upload` once (the median of `reps` would re-upload the
/// same bytes), `run` as the median of `reps`, `read` once.
fn gpu_times<U, O, R>(
    ctx: &GpuContext,
    reps: usize,
    upload: impl Fn(&GpuContext) -> Result<U, ComputeError>,
    run: impl Fn(&GpuContext, &U) -> Result<O, ComputeError>,
    read: impl FnOnce(&GpuContext, U, O) -> Result<R, ComputeError>,
    read_bytes: impl FnOnce(&R) -> u64,
) -> Result<(GpuTimes, R), String> {
    let t = Instant::now();
    let up = upload(ctx).map_err(err)?;
    ctx.wait().map_err(err)?;
    let upload_t = t.elapsed();
    let mut failure = None;
    let run_t = median_time(reps, || {
        if let Err(e) = run(ctx, &up) {
            failure = Some(e);
        }
    });
    if let Some(e) = failure {
        return Err(e.to_string());
    }
    let out = run(ctx, &up).map_err(err)?;
    let t = Instant::now();
    let result = read(ctx, up, out).map_err(err)?;
    let read_t = t.elapsed();
    let times = GpuTimes {
        upload: upload_t,
        run: run_t,
        read: read_t,
        read_bytes: read_bytes(&result),
    };
    Ok((times, result))
}

/// Stored bytes when records that do not shrink are kept raw.
fn stored_bytes(c: &lz4::Compressed, input: &RecordBatch) -> u64 {
    (0..input.len())
        .map(|i| {
            if c.shrunk.get(i).copied().unwrap_or(false) {
                c.blocks.get(i).len() as u64
            } else {
                input.get(i).len() as u64
            }
        })
        .sum()
}

pub fn run(a: DataBench) -> Result<(), String> {
    let bytes = crate::size::parse_size(&a.bytes)?;
    let record = crate::size::parse_size(&a.record_size)? as usize;
    if record == 0 || record > gpufs_compute::records::MAX_RECORD_BYTES {
        return Err(format!(
            "record size must be 1..={} bytes",
            gpufs_compute::records::MAX_RECORD_BYTES
        ));
    }
    let records = (bytes as usize).div_ceil(record).max(1);
    let kinds: Vec<DataKind> = a
        .kinds
        .split(',')
        .map(|k| DataKind::parse(k.trim()).ok_or_else(|| format!("unknown corpus {k:?}")))
        .collect::<Result<_, _>>()?;
    let choice: Choice = a.compute.parse().map_err(|e| format!("{e}"))?;
    let compute = crate::compute_cmd::open(choice)?;
    let ctx = compute.gpu();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let gpu_name = ctx.map(|c| {
        format!(
            "{} ({:?}{})",
            c.info.name,
            c.info.backend,
            if c.software { ", software" } else { "" }
        )
    });
    if a.json {
        println!(
            "{}",
            serde_json::json!({"machine": machine, "threads": threads, "gpu": gpu_name,
                "records": records, "record_bytes": record})
        );
    } else {
        println!(
            "CPU: {machine}, {threads} threads; GPU: {}; {records} records of {record} bytes",
            gpu_name.as_deref().unwrap_or("none")
        );
        println!(
            "{:<16} {:<7} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} ratio",
            "kernel", "data", "cpu1", "cpuN", "N/1", "gpu", "upload", "read"
        );
    }
    let key = XtsKey {
        data: *b"gpufs data kernel benchmark key!",
        tweak: *b"gpufs data kernel benchmark twk!",
    };
    for kind in kinds {
        let batch = synth_data::corpus(kind, 42, records, record).map_err(err)?;
        if let Some(dir) = &a.write_corpus {
            write_corpus(dir, kind, &batch)?;
        }
        let data = kind.name();
        let n = batch.data_bytes();
        let reps = a.reps;
        let skip1 = a.skip_one_thread;
        let row = |kernel, cpu1, cpu_all, gpu| Row {
            kernel,
            data,
            bytes: n,
            cpu1,
            cpu_all,
            gpu,
            ratio: None,
            gpu_ratio: None,
        };
        // CRC32C
        let gpu = match ctx {
            Some(c) => Some(
                gpu_times(
                    c,
                    reps,
                    |c| crc32c::upload(c, &batch),
                    |c, p| crc32c::run(c, p),
                    |c, _, o| crc32c::read(c, &o),
                    |r| r.len() as u64 * 4,
                )?
                .0,
            ),
            None => None,
        };
        print_row(
            &row(
                "crc32c",
                one_thread(skip1, reps, || {
                    drop(std::hint::black_box(crc32c::cpu_one_thread(&batch)))
                }),
                median_time(reps, || drop(std::hint::black_box(crc32c::cpu(&batch)))),
                gpu,
            ),
            a.json,
        );
        // BLAKE3
        let mode = Blake3Mode::Hash;
        let gpu = match ctx {
            Some(c) => Some(
                gpu_times(
                    c,
                    reps,
                    |c| blake3::upload(c, &batch),
                    |c, p| blake3::run(c, p, &mode),
                    |c, _, o| blake3::read(c, &o),
                    |r| r.len() as u64 * 32,
                )?
                .0,
            ),
            None => None,
        };
        print_row(
            &row(
                "blake3",
                one_thread(skip1, reps, || {
                    drop(std::hint::black_box(blake3::cpu_one_thread(&batch, &mode)))
                }),
                median_time(reps, || {
                    drop(std::hint::black_box(blake3::cpu(&batch, &mode)))
                }),
                gpu,
            ),
            a.json,
        );
        // LZ4 compression, then decompression of what the CPU compressed.
        let cpu_packed = lz4::compress_cpu(&batch);
        let mut gpu_ratio = None;
        let gpu = match ctx {
            Some(c) => {
                let (t, packed) = gpu_times(
                    c,
                    reps,
                    |c| lz4::gpu_compress::upload(c, &batch),
                    lz4::gpu_compress::run,
                    |c, u, o| lz4::gpu_compress::read(c, &u, &o),
                    |r: &lz4::Compressed| r.blocks.data_bytes(),
                )?;
                gpu_ratio = Some(n as f64 / stored_bytes(&packed, &batch).max(1) as f64);
                Some(t)
            }
            None => None,
        };
        let mut r = row(
            "lz4 compress",
            one_thread(skip1, reps, || {
                drop(std::hint::black_box(lz4::compress_cpu_one_thread(&batch)))
            }),
            median_time(reps, || {
                drop(std::hint::black_box(lz4::compress_cpu(&batch)))
            }),
            gpu,
        );
        r.ratio = Some(n as f64 / stored_bytes(&cpu_packed, &batch).max(1) as f64);
        r.gpu_ratio = gpu_ratio;
        print_row(&r, a.json);
        // Decompression covers the records that shrank (the others are stored raw).
        let mut blocks = RecordBatch::new();
        let mut sizes = Vec::new();
        for i in 0..batch.len() {
            if cpu_packed.shrunk.get(i).copied().unwrap_or(false) {
                blocks.push(cpu_packed.blocks.get(i)).map_err(err)?;
                sizes.push(batch.get(i).len() as u32);
            }
        }
        if !blocks.is_empty() {
            let out_bytes: u64 = sizes.iter().map(|&s| u64::from(s)).sum();
            let gpu = match ctx {
                Some(c) => Some(
                    gpu_times(
                        c,
                        reps,
                        |c| lz4::gpu_decompress::upload(c, &blocks, &sizes),
                        lz4::gpu_decompress::run,
                        |c, u, o| lz4::gpu_decompress::read(c, u, &o),
                        |r: &lz4::Decompressed| r.data.data_bytes(),
                    )?
                    .0,
                ),
                None => None,
            };
            // Into one reused output, as a reader decompressing batch after batch does.
            let mut out = lz4::Decompressed::default();
            let mut failure = None;
            let mut timed = |one: bool| {
                median_time(reps, || {
                    let r = if one {
                        lz4::decompress_cpu_one_thread_into(&blocks, &sizes, &mut out)
                    } else {
                        lz4::decompress_cpu_into(&blocks, &sizes, &mut out)
                    };
                    if let Err(e) = r {
                        failure = Some(e);
                    }
                })
            };
            let cpu1 = (!skip1).then(|| timed(true));
            let cpu_all = timed(false);
            if let Some(e) = failure {
                return Err(e.to_string());
            }
            let mut r = row("lz4 decompress", cpu1, cpu_all, gpu);
            r.bytes = out_bytes;
            print_row(&r, a.json);
        }
        // AES-256-XTS, 4 KiB data units numbered across the corpus.
        let units = record.div_ceil(xts::SECTOR_BYTES) as u64;
        let first: Vec<u64> = (0..batch.len() as u64).map(|i| i * units).collect();
        for (name, dir) in [
            ("xts encrypt", Direction::Encrypt),
            ("xts decrypt", Direction::Decrypt),
        ] {
            let gpu = match ctx {
                Some(c) => Some(
                    gpu_times(
                        c,
                        reps,
                        |c| xts::upload(c, &batch, &key, &first, xts::SECTOR_BYTES),
                        |c, u| xts::run(c, u, dir),
                        |c, _, o| xts::read(c, o),
                        RecordBatch::data_bytes,
                    )?
                    .0,
                ),
                None => None,
            };
            // In place, as a writer encrypts its own buffers (the output of a fresh
            // allocation would be timed mostly as page faults).
            let mut work = batch.clone();
            let mut failure = None;
            let mut timed = |one: bool| {
                median_time(reps, || {
                    let r = if one {
                        xts::cpu_one_thread_in_place(&mut work, &key, &first, dir)
                    } else {
                        xts::cpu_in_place(&mut work, &key, &first, dir)
                    };
                    if let Err(e) = r {
                        failure = Some(e);
                    }
                })
            };
            let cpu1 = (!skip1).then(|| timed(true));
            let cpu_all = timed(false);
            if let Some(e) = failure {
                return Err(e.to_string());
            }
            print_row(&row(name, cpu1, cpu_all, gpu), a.json);
        }
    }
    Ok(())
}

fn write_corpus(dir: &std::path::Path, kind: DataKind, batch: &RecordBatch) -> Result<(), String> {
    let path = dir.join(format!("{}.bin", kind.name()));
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(fail)?);
    for r in batch.iter() {
        f.write_all(r).map_err(fail)?;
    }
    f.flush().map_err(fail)
}
