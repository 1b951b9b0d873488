//! Request-serving threads: one per CPU the daemon may run on, each pinned to its CPU.
//!
//! A FUSE request is a round trip: the caller sleeps until the daemon replies. When the
//! thread that picks the request up runs on another CPU than the caller, both wakeups
//! cross CPUs, and on a virtual machine waking a halted vCPU costs tens of
//! microseconds. With one pinned worker per CPU, the kernel's queue hands many requests
//! to a worker on the caller's own CPU, where the wakeup is a plain context switch; and
//! an asynchronous RELEASE no longer delays the next LOOKUP. Measured in
//! docs/BENCHMARKS.md (creates 2.3× faster on 2 vCPUs). This is the same reason FUSE
//! over io_uring keeps one queue per CPU.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Most worker threads a mount starts, whatever the CPU count.
pub const MAX_WORKERS: usize = 16;

/// Name prefix fuser gives its request-serving threads ("fuser-0", "fuser-1", …).
const WORKER_NAME_PREFIX: &str = "fuser-";

/// CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Default number of worker threads: one per allowed CPU, at least 1, at most
/// [`MAX_WORKERS`].
pub fn default_count() -> usize {
    allowed_cpus().len().clamp(1, MAX_WORKERS)
}

/// Pins the session's worker threads of this process, worker `i` to the `i`-th allowed
/// CPU (wrapping), once they exist. Waits up to `patience` for `count` of them to
/// appear, then returns how many it pinned. Call it from its own thread after starting
/// the session. A failure only costs speed, so it is logged, never fatal.
pub fn pin_when_started(count: usize, patience: Duration) -> usize {
    let cpus = allowed_cpus();
    if count < 2 || cpus.len() < 2 {
        return 0;
    }
    let deadline = Instant::now() + patience;
    loop {
        let workers = worker_threads(Path::new("/proc/self/task"));
        if workers.len() >= count || Instant::now() >= deadline {
            let mut pinned = 0;
            for (index, tid) in workers {
                let mut set = CpuSet::new();
                let cpu = cpus[index % cpus.len()];
                if set.set(cpu).is_err() {
                    continue;
                }
                match sched_setaffinity(Pid::from_raw(tid), &set) {
                    Ok(()) => pinned += 1,
                    Err(e) => tracing::info!("cannot pin worker {index} to cpu {cpu}: {e}"),
                }
            }
            return pinned;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// (worker index, thread id) of each thread under `task_dir` named like a worker.
fn worker_threads(task_dir: &Path) -> Vec<(usize, i32)> {
    let Ok(entries) = std::fs::read_dir(task_dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if let Some(index) = worker_index(comm.trim_end()) {
            found.push((index, tid));
        }
    }
    found.sort_unstable();
    found
}

/// The index in a worker thread's name, `None` for any other thread.
fn worker_index(name: &str) -> Option<usize> {
    name.strip_prefix(WORKER_NAME_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_names() {
        assert_eq!(worker_index("fuser-0"), Some(0));
        assert_eq!(worker_index("fuser-13"), Some(13));
        assert_eq!(worker_index("fuser-bg"), None);
        assert_eq!(worker_index("gpufs"), None);
    }

    #[test]
    fn this_process_has_cpus() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        assert!(default_count() >= 1 && default_count() <= MAX_WORKERS);
    }

    #[test]
    fn finds_and_pins_named_threads() {
        let cpus = allowed_cpus();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("fuser-0".into())
            .spawn(move || {
                // The name is set before this closure runs.
                let _ = ready_tx.send(());
                let _ = rx.recv();
            })
            .expect("spawn test thread");
        ready_rx.recv().expect("test thread started");
        let workers = worker_threads(Path::new("/proc/self/task"));
        assert!(workers.iter().any(|&(i, _)| i == 0));
        let pinned = pin_when_started(1, Duration::ZERO);
        // With a single worker asked for, nothing is pinned.
        assert_eq!(pinned, 0);
        if cpus.len() >= 2 {
            assert!(pin_when_started(2, Duration::from_millis(1)) >= 1);
        }
        drop(tx);
        handle.join().expect("test thread");
    }
}
