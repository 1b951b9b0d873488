//! `gpufs-bench data`: the data kernels (CRC32C, BLAKE3, LZ4 compression and
//! decompression, AES-256-XTS both ways) over seeded corpora of records (text-like,
//! binary-like, random) — the CPU twin on one thread and on all cores, and the GPU
//! kernel with its host transfers timed apart — in GB/s of record bytes, with LZ4's
//! compression ratio. `--write-corpus DIR` leaves the corpora as files, so peer tools
//! can be timed on the very same bytes (`bench/data.py` does).

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gpufs_compute::calibrate::median_time;
use gpufs_compute::gpu::GpuContext;
use gpufs_compute::kernels::blake3::{self, Blake3Mode};
use gpufs_compute::kernels::crc32c;
use gpufs_compute::kernels::lz4;
use gpufs_compute::kernels::xts::{self, Direction, XtsKey};
use gpufs_compute::records::{RecordBatch, MAX_RECORD_BYTES};
use gpufs_compute::synth::data::{self as synth_data, DataKind};
use gpufs_compute::ComputeError;

use crate::common::{scaled, threads, Columns};

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
    #[command(flatten)]
    columns: Columns,
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

fn print_json(r: &Row) {
    let gpu = r.gpu.as_ref();
    let v = serde_json::json!({
        "kernel": r.kernel, "data": r.data, "bytes": r.bytes,
        "cpu1_gb_per_s": r.cpu1.map(|d| gbs(r.bytes, d)), "cpu_all_gb_per_s": gbs(r.bytes, r.cpu_all),
        "gpu_gb_per_s": gpu.map(|g| gbs(r.bytes, g.run)),
        "upload_gb_per_s": gpu.map(|g| gbs(r.bytes, g.upload)),
        "read_gb_per_s": gpu.map(|g| gbs(g.read_bytes, g.read)),
        "ratio": r.ratio, "gpu_ratio": r.gpu_ratio,
    });
    println!("{v}");
}

fn print_table_row(r: &Row) {
    let g = r.gpu.as_ref().map_or_else(
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

/// One corpus and how its rows are measured and printed.
struct Corpus<'a> {
    batch: RecordBatch,
    data: &'static str,
    ctx: Option<&'a GpuContext>,
    reps: usize,
    skip_one_thread: bool,
    json: bool,
}

impl Corpus<'_> {
    /// The CPU columns: the median of `run(true)` on one thread (unless skipped), then
    /// of `run(false)` on all cores; the first failure ends the row.
    fn cpu_times(
        &self,
        mut run: impl FnMut(bool) -> Result<(), ComputeError>,
    ) -> Result<(Option<Duration>, Duration), String> {
        let mut failure = None;
        let mut timed = |one: bool| {
            median_time(self.reps, || {
                if let Err(e) = run(one) {
                    failure = Some(e);
                }
            })
        };
        let cpu1 = (!self.skip_one_thread).then(|| timed(true));
        let cpu_all = timed(false);
        match failure {
            Some(e) => Err(e.to_string()),
            None => Ok((cpu1, cpu_all)),
        }
    }

    /// The GPU column, where there is a GPU: `times` runs the kernel's steps on it.
    fn gpu<R>(
        &self,
        times: impl FnOnce(&GpuContext) -> Result<(GpuTimes, R), String>,
    ) -> Result<Option<(GpuTimes, R)>, String> {
        self.ctx.map(times).transpose()
    }

    fn row(
        &self,
        kernel: &'static str,
        (cpu1, cpu_all): (Option<Duration>, Duration),
        gpu: Option<GpuTimes>,
    ) -> Row {
        Row {
            kernel,
            data: self.data,
            bytes: self.batch.data_bytes(),
            cpu1,
            cpu_all,
            gpu,
            ratio: None,
            gpu_ratio: None,
        }
    }

    fn print(&self, r: &Row) {
        if self.json {
            print_json(r);
        } else {
            print_table_row(r);
        }
    }
}

fn crc32c(c: &Corpus<'_>) -> Result<(), String> {
    let batch = &c.batch;
    let gpu = c.gpu(|ctx| {
        gpu_times(
            ctx,
            c.reps,
            |g| crc32c::upload(g, batch),
            |g, p| crc32c::run(g, p),
            |g, _, o| crc32c::read(g, &o),
            |r| r.len() as u64 * 4,
        )
    })?;
    let cpu = c.cpu_times(|one| {
        if one {
            drop(black_box(crc32c::cpu_one_thread(batch)));
        } else {
            drop(black_box(crc32c::cpu(batch)));
        }
        Ok(())
    })?;
    c.print(&c.row("crc32c", cpu, gpu.map(|g| g.0)));
    Ok(())
}

fn blake3(c: &Corpus<'_>) -> Result<(), String> {
    let batch = &c.batch;
    let mode = Blake3Mode::Hash;
    let gpu = c.gpu(|ctx| {
        gpu_times(
            ctx,
            c.reps,
            |g| blake3::upload(g, batch),
            |g, p| blake3::run(g, p, &mode),
            |g, _, o| blake3::read(g, &o),
            |r| r.len() as u64 * 32,
        )
    })?;
    let cpu = c.cpu_times(|one| {
        if one {
            drop(black_box(blake3::cpu_one_thread(batch, &mode)));
        } else {
            drop(black_box(blake3::cpu(batch, &mode)));
        }
        Ok(())
    })?;
    c.print(&c.row("blake3", cpu, gpu.map(|g| g.0)));
    Ok(())
}

/// LZ4 compression; returns what the CPU compressed.
fn lz4_compress(c: &Corpus<'_>) -> Result<lz4::Compressed, String> {
    let batch = &c.batch;
    let n = batch.data_bytes();
    let cpu_packed = lz4::compress_cpu(batch);
    let gpu = c.gpu(|ctx| {
        gpu_times(
            ctx,
            c.reps,
            |g| lz4::gpu_compress::upload(g, batch),
            lz4::gpu_compress::run,
            |g, u, o| lz4::gpu_compress::read(g, &u, &o),
            |r: &lz4::Compressed| r.blocks.data_bytes(),
        )
    })?;
    let cpu = c.cpu_times(|one| {
        if one {
            drop(black_box(lz4::compress_cpu_one_thread(batch)));
        } else {
            drop(black_box(lz4::compress_cpu(batch)));
        }
        Ok(())
    })?;
    let (gpu, gpu_ratio) = match gpu {
        Some((t, packed)) => (
            Some(t),
            Some(n as f64 / stored_bytes(&packed, batch).max(1) as f64),
        ),
        None => (None, None),
    };
    let mut r = c.row("lz4 compress", cpu, gpu);
    r.ratio = Some(n as f64 / stored_bytes(&cpu_packed, batch).max(1) as f64);
    r.gpu_ratio = gpu_ratio;
    c.print(&r);
    Ok(cpu_packed)
}

/// LZ4 decompression of the records that shrank (the others are stored raw).
fn lz4_decompress(c: &Corpus<'_>, packed: &lz4::Compressed) -> Result<(), String> {
    let mut blocks = RecordBatch::new();
    let mut sizes = Vec::new();
    for i in 0..c.batch.len() {
        if packed.shrunk.get(i).copied().unwrap_or(false) {
            blocks.push(packed.blocks.get(i)).map_err(err)?;
            sizes.push(c.batch.get(i).len() as u32);
        }
    }
    if blocks.is_empty() {
        return Ok(());
    }
    let out_bytes: u64 = sizes.iter().map(|&s| u64::from(s)).sum();
    let gpu = c.gpu(|ctx| {
        gpu_times(
            ctx,
            c.reps,
            |g| lz4::gpu_decompress::upload(g, &blocks, &sizes),
            lz4::gpu_decompress::run,
            |g, u, o| lz4::gpu_decompress::read(g, u, &o),
            |r: &lz4::Decompressed| r.data.data_bytes(),
        )
    })?;
    // Into one reused output, as a reader decompressing batch after batch does.
    let mut out = lz4::Decompressed::default();
    let cpu = c.cpu_times(|one| {
        if one {
            lz4::decompress_cpu_one_thread_into(&blocks, &sizes, &mut out)
        } else {
            lz4::decompress_cpu_into(&blocks, &sizes, &mut out)
        }
    })?;
    let mut r = c.row("lz4 decompress", cpu, gpu.map(|g| g.0));
    r.bytes = out_bytes;
    c.print(&r);
    Ok(())
}

/// AES-256-XTS both ways, 4 KiB data units numbered across the corpus.
fn xts(c: &Corpus<'_>, record: usize) -> Result<(), String> {
    let key = XtsKey {
        data: *b"gpufs data kernel benchmark key!",
        tweak: *b"gpufs data kernel benchmark twk!",
    };
    let batch = &c.batch;
    let units = record.div_ceil(xts::SECTOR_BYTES) as u64;
    let first: Vec<u64> = (0..batch.len() as u64).map(|i| i * units).collect();
    for (name, dir) in [
        ("xts encrypt", Direction::Encrypt),
        ("xts decrypt", Direction::Decrypt),
    ] {
        let gpu = c.gpu(|ctx| {
            gpu_times(
                ctx,
                c.reps,
                |g| xts::upload(g, batch, &key, &first, xts::SECTOR_BYTES),
                |g, u| xts::run(g, u, dir),
                |g, _, o| xts::read(g, o),
                RecordBatch::data_bytes,
            )
        })?;
        // In place, as a writer encrypts its own buffers (the output of a fresh
        // allocation would be timed mostly as page faults).
        let mut work = batch.clone();
        let cpu = c.cpu_times(|one| {
            if one {
                xts::cpu_one_thread_in_place(&mut work, &key, &first, dir)
            } else {
                xts::cpu_in_place(&mut work, &key, &first, dir)
            }
        })?;
        c.print(&c.row(name, cpu, gpu.map(|g| g.0)));
    }
    Ok(())
}

/// The CPU's model name.
fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// What runs, on what, over how many records: a JSON line or the table's head.
fn print_header(ctx: Option<&GpuContext>, records: usize, record: usize, json: bool) {
    let machine = machine();
    let threads = threads();
    let gpu_name = ctx.map(|c| {
        format!(
            "{} ({:?}{})",
            c.info.name,
            c.info.backend,
            if c.software { ", software" } else { "" }
        )
    });
    if json {
        println!(
            "{}",
            serde_json::json!({"machine": machine, "threads": threads, "gpu": gpu_name,
                "records": records, "record_bytes": record})
        );
        return;
    }
    println!(
        "CPU: {machine}, {threads} threads; GPU: {}; {records} records of {record} bytes",
        gpu_name.as_deref().unwrap_or("none")
    );
    println!(
        "{:<16} {:<7} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} ratio",
        "kernel", "data", "cpu1", "cpuN", "N/1", "gpu", "upload", "read"
    );
}

pub fn run(a: DataBench) -> Result<(), String> {
    let bytes = scaled(&a.bytes, 1024)?;
    let record = scaled(&a.record_size, 1024)? as usize;
    if record == 0 || record > MAX_RECORD_BYTES {
        return Err(format!("record size must be 1..={MAX_RECORD_BYTES} bytes"));
    }
    let records = (bytes as usize).div_ceil(record).max(1);
    let kinds: Vec<DataKind> = a
        .kinds
        .split(',')
        .map(|k| DataKind::parse(k.trim()).ok_or_else(|| format!("unknown corpus {k:?}")))
        .collect::<Result<_, _>>()?;
    let compute = crate::common::open(&a.columns.compute)?;
    print_header(compute.gpu(), records, record, a.columns.json);
    for kind in kinds {
        let batch = synth_data::corpus(kind, 42, records, record).map_err(err)?;
        if let Some(dir) = &a.write_corpus {
            write_corpus(dir, kind, &batch)?;
        }
        let c = Corpus {
            batch,
            data: kind.name(),
            ctx: compute.gpu(),
            reps: a.reps,
            skip_one_thread: a.columns.skip_one_thread,
            json: a.columns.json,
        };
        crc32c(&c)?;
        blake3(&c)?;
        let packed = lz4_compress(&c)?;
        lz4_decompress(&c, &packed)?;
        xts(&c, record)?;
    }
    Ok(())
}

fn write_corpus(dir: &Path, kind: DataKind, batch: &RecordBatch) -> Result<(), String> {
    let path = dir.join(format!("{}.bin", kind.name()));
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(fail)?);
    for r in batch.iter() {
        f.write_all(r).map_err(fail)?;
    }
    f.flush().map_err(fail)
}
