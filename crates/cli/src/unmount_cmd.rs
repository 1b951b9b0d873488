//! `gpufs unmount`: unmount, then wait for the daemon's final checkpoint.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::paths;

#[derive(clap::Args, Debug)]
pub struct UnmountArgs {
    /// Mount point of a gpufs mount.
    pub mountpoint: PathBuf,
    /// Seconds to wait for the daemon to finish writing.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// True while a thread of process `pid` runs. The main thread of an exiting process
/// turns zombie before the others have finished exiting, and the process's files (the
/// image, and its lock) close only with the last of them: every thread is looked at.
fn alive(pid: u32) -> bool {
    let running = |stat: &str| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .any(|t| std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| running(&stat)))
}

fn is_mounted(mp: &std::path::Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let want = mp.to_string_lossy().replace(' ', "\\040");
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

pub fn run(a: UnmountArgs) -> Result<(), String> {
    let mp = crate::absolute(&a.mountpoint);
    let pid: Option<u32> = std::fs::read_to_string(paths::pid_file(&mp))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    if !is_mounted(&mp) && pid.is_none() {
        return Err(format!("{} is not mounted", mp.display()));
    }
    if is_mounted(&mp) {
        let tried = [
            ("fusermount3", vec!["-u"]),
            ("fusermount", vec!["-u"]),
            ("umount", vec![]),
        ];
        let mut last = String::new();
        let ok =
            tried.iter().any(
                |(cmd, args)| match Command::new(cmd).args(args).arg(&mp).output() {
                    Ok(o) if o.status.success() => true,
                    Ok(o) => {
                        last = String::from_utf8_lossy(&o.stderr).trim().to_string();
                        false
                    }
                    Err(_) => false,
                },
            );
        if !ok {
            return Err(format!("cannot unmount {}: {last}", mp.display()));
        }
    }
    // The daemon checkpoints after the kernel lets go; wait for it to exit.
    if let Some(pid) = pid {
        let start = Instant::now();
        while alive(pid) {
            if start.elapsed() > Duration::from_secs(a.timeout) {
                return Err(format!(
                    "daemon {pid} is still writing after {}s; it will finish on its own",
                    a.timeout
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}
