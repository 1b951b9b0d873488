//! What the kernel benchmarks share: the compute layer, counts and sizes on the
//! command line, medians, and how the program ends.

use std::process::ExitCode;
use std::time::Duration;

use gpufs_compute::calibrate::median_time;
use gpufs_compute::{Choice, Compute};

/// The options both kernel benchmarks take: which GPU column, and how rows print.
#[derive(clap::Args, Debug)]
pub struct Columns {
    /// Backend for the GPU column: auto (a hardware GPU), gpu (any, lavapipe too), cpu (none).
    #[arg(long, default_value = "auto")]
    pub compute: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Leave out the one-thread CPU column (the slowest; for short runs on a lent GPU).
    #[arg(long)]
    pub skip_one_thread: bool,
}

/// Opens the compute layer for `--compute` (auto: a hardware GPU; gpu: any, lavapipe
/// too; cpu: none); a forced GPU without one is an error that says what to install.
pub fn open(backend: &str) -> Result<Compute, String> {
    let choice: Choice = backend.parse().map_err(|e| format!("{e}"))?;
    Compute::open(choice).map_err(|e| match choice {
        Choice::Gpu => format!(
            "{e}; the GPU backend was forced (--compute gpu): install a Vulkan driver \
             (e.g. mesa-vulkan-drivers) or use --compute auto"
        ),
        _ => e.to_string(),
    })
}

/// The median of `reps` runs of `f` on one thread, unless that column is skipped.
pub fn one_thread(skip: bool, reps: usize, f: impl FnMut()) -> Option<Duration> {
    (!skip).then(|| median_time(reps, f))
}

/// A number with an optional suffix k, M, G or T (either case, `B`/`iB` after it
/// allowed), each a factor of `unit`: 1,000 for counts, 1,024 for bytes.
pub fn scaled(s: &str, unit: u64) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let power = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => 1,
        Some('M') => 2,
        Some('G') => 3,
        Some('T') => 4,
        _ => 0,
    };
    let num = if power == 0 { t } else { &t[..t.len() - 1] };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size {s:?} (examples: 64K, 1M, 4096)"))?;
    n.checked_mul(unit.pow(power))
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// The CPU threads the all-core column runs on.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A command whose output goes to a pipe that closed early (`gpufs-bench ... | head`)
/// ends quietly, as Unix tools do, instead of panicking in `println!`.
pub fn default_sigpipe() {
    // SAFETY: called once at start, before any other thread exists; SIG_DFL is a valid
    // disposition and no handler code runs.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Log lines (the compute layer's choice of backend) on standard error; `GPUFS_LOG`
/// sets the level, as for `gpufs`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GPUFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,gpufs_compute=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Exit 0, or 1 with the message.
pub fn done(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("gpufs-bench: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scaled;

    #[test]
    fn suffixes() {
        assert_eq!(scaled("1k", 1000), Ok(1000));
        assert_eq!(scaled("10M", 1000), Ok(10_000_000));
        assert_eq!(scaled("64K", 1024), Ok(65536));
        assert_eq!(scaled("1G", 1024), Ok(1 << 30));
        assert_eq!(scaled("1MiB", 1024), Ok(1 << 20));
        assert_eq!(scaled("4096", 1024), Ok(4096));
        assert!(scaled("x", 1024).is_err());
        assert!(scaled("99999999999T", 1024).is_err());
    }
}
