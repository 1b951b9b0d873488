//! `gpufs`: make, mount, unmount and check gpufs filesystems.

mod bench_cmd;
mod bench_data;
mod compute_cmd;
mod control;
mod du_cmd;
mod fsck_cmd;
mod mkfs_cmd;
mod mount_cmd;
mod paths;
mod readahead;
mod search_cmd;
mod size;
mod stats_cmd;
mod unmount_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A GPU-native, copy-on-write, journaled filesystem, mounted through FUSE.
#[derive(Parser, Debug)]
#[command(name = "gpufs", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a new filesystem in an image file or on a block device.
    Mkfs(mkfs_cmd::MkfsArgs),
    /// Mount a filesystem (the default image when IMAGE is left out).
    Mount(mount_cmd::MountArgs),
    /// Flush and unmount a mounted filesystem.
    #[command(alias = "umount")]
    Unmount(unmount_cmd::UnmountArgs),
    /// Check every checksum and invariant of an unmounted image.
    Fsck(fsck_cmd::FsckArgs),
    /// Find names (or paths) matching a pattern in a mounted filesystem, as it is now.
    Search(search_cmd::SearchArgs),
    /// Recursive sizes and file counts of a directory of a mounted filesystem.
    Du(du_cmd::DuArgs),
    /// What a mount's compute layer ran where, and for how long.
    Stats(stats_cmd::StatsArgs),
    /// Show which compute backend runs kernels here (and calibrate it).
    Compute(compute_cmd::ComputeArgs),
    /// Benchmarks that need no mount.
    Bench(bench_cmd::BenchArgs),
}

/// Exit codes: 0 success, 1 failure, 2 usage error (clap's own).
pub const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Mount(_)) {
        default_sigpipe();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("GPUFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,gpufs_compute=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Mkfs(a) => mkfs_cmd::run(a),
        Command::Mount(a) => mount_cmd::run(a),
        Command::Unmount(a) => unmount_cmd::run(a),
        Command::Fsck(a) => return fsck_cmd::run(a),
        Command::Search(a) => return finish(search_cmd::run(a)),
        Command::Du(a) => return finish(du_cmd::run(a)),
        Command::Stats(a) => stats_cmd::run(a),
        Command::Compute(a) => compute_cmd::run(a),
        Command::Bench(a) => bench_cmd::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("gpufs: {msg}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A command whose output goes to a pipe that closed early (`gpufs bench ... | head`)
/// ends quietly, as Unix tools do, instead of panicking in `println!`. Not for the mount
/// daemon: a client that hangs up must not end it.
fn default_sigpipe() {
    // SAFETY: called once at start, before any other thread exists; SIG_DFL is a valid
    // disposition and no handler code runs.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Exit for commands whose failures carry their own code (2: bad pattern or usage).
fn finish(r: Result<(), search_cmd::Failure>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("gpufs: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

/// Reads an image path argument into an absolute path.
pub fn absolute(p: &PathBuf) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.clone())
}
