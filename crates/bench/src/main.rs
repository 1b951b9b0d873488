//! `gpufs-bench`: the benchmarks of gpufs, apart from the `gpufs` program.
//!
//! - `meta`, `fill`, `bigdir`: metadata workloads on a mounted directory, timed from
//!   inside one process (bench/run.py runs them on gpufs, tmpfs and ext4 side by side);
//!   one JSON line each.
//! - `compute`: every metadata kernel on a synthetic namespace, CPU one thread, all
//!   cores and GPU.
//! - `data`: the data kernels (CRC32C, BLAKE3, LZ4, AES-XTS) on seeded corpora of
//!   records (bench/data.py puts them beside the peer tools).

mod common;
mod compute;
mod data;
mod meta;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks of gpufs: metadata workloads on a mount, and the compute kernels.
#[derive(Parser)]
#[command(name = "gpufs-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create, stat and unlink FILES empty files in DIR/meta, each phase timed.
    Meta {
        dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        files: usize,
    },
    /// Create FILES empty files in DIR/fill/dNNNN (1,000 per directory), kept.
    Fill {
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        files: usize,
    },
    /// Create FILES empty files in one directory DIR/big (for listing), kept.
    Bigdir {
        dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        files: usize,
    },
    /// The metadata kernels on a synthetic namespace: CPU one thread, all cores, GPU.
    Compute(compute::ComputeBench),
    /// The data kernels (CRC32C, BLAKE3, LZ4, AES-XTS) on seeded corpora of records.
    Data(data::DataBench),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::default_sigpipe();
    common::init_logging();
    let line = match cli.cmd {
        Cmd::Meta { dir, files } => meta::meta(&dir, files),
        Cmd::Fill { dir, files } => meta::fill(&dir, files),
        Cmd::Bigdir { dir, files } => meta::bigdir(&dir, files),
        Cmd::Compute(a) => return common::done(compute::run(a)),
        Cmd::Data(a) => return common::done(data::run(a)),
    };
    let mut so = std::io::stdout();
    let _ = writeln!(so, "{line}");
    ExitCode::SUCCESS
}
