//! `gpufs`, the program users run. The asking commands (`search`, `du`, `stats`), which
//! only send a request to a running mount's daemon and pass its answer on, run here;
//! for every other command, and for `--help` and `--version`, this program becomes
//! `gpufs-engine` (exec: same process, same arguments), the program beside it that
//! holds the filesystem, FUSE and the compute layer.
//!
//! Why two programs: a live search answers in a few milliseconds, and loading the
//! engine (tens of MB with the GPU layer: tens of thousands of relocations, hundreds
//! of page faults) costs more of that than the search itself on a small answer. This
//! program holds only the control socket's client, so it starts like a small tool.

mod asking;
mod client;
mod clone_cmd;
mod dedup_cmd;
mod du_cmd;
mod exit;
// The engine uses all of it; the front only turns helper arguments into a mount.
#[allow(dead_code)]
mod mount_opts;
mod offline;
// Shared with the engine, which uses more of it than the socket's path.
#[allow(dead_code)]
mod paths;
mod property_cmd;
mod scrub_cmd;
mod search_cmd;
mod send_cmd;
mod size;
mod snapshot_cmd;
mod stats_cmd;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use clap::{CommandFactory, FromArgMatches, Parser};

/// The engine's file name, looked for beside this program.
const ENGINE: &str = "gpufs-engine";

/// A GPU-native, copy-on-write, journaled filesystem, mounted through FUSE.
#[derive(Parser, Debug)]
#[command(name = "gpufs", version, about, long_about = None)]
struct Asking {
    #[command(subcommand)]
    command: asking::AskCommand,
}

/// Names under which this program is mount(8)'s helper for `-t fuse.gpufs`.
const HELPER_NAMES: &[&str] = &["mount.fuse.gpufs", "mount.gpufs"];

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let called = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if HELPER_NAMES.contains(&called) {
        return mount_helper(&args);
    }
    let cli = Asking::command();
    let asking = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| cli.find_subcommand(a).is_some());
    if !asking {
        return become_engine(&args);
    }
    exit::default_sigpipe();
    let matches = cli.get_matches_from(&args);
    match Asking::from_arg_matches(&matches) {
        Ok(parsed) => asking::run(parsed.command),
        Err(e) => e.exit(),
    }
}

/// `mount.fuse.gpufs IMAGE MOUNTPOINT [-o OPTIONS]`, as mount(8) runs it: becomes
/// `gpufs mount IMAGE MOUNTPOINT -o OPTIONS`.
fn mount_helper(args: &[OsString]) -> ExitCode {
    let strings: Option<Vec<String>> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str().map(str::to_string))
        .collect();
    let translated = strings
        .ok_or_else(|| "arguments that are not UTF-8".to_string())
        .and_then(|s| mount_opts::helper_args(&s));
    match translated {
        Ok(rest) => {
            let mut full: Vec<OsString> = vec!["gpufs".into()];
            full.extend(rest.into_iter().map(OsString::from));
            become_engine(&full)
        }
        Err(e) => {
            eprintln!("mount.fuse.gpufs: {e}");
            ExitCode::from(exit::EXIT_FAILURE)
        }
    }
}

/// Runs the engine in this process with the same arguments; returns only when it
/// cannot (with the reason, exit 1).
fn become_engine(args: &[OsString]) -> ExitCode {
    let engine = match std::env::current_exe() {
        Ok(me) => me.with_file_name(ENGINE),
        Err(e) => {
            eprintln!("gpufs: cannot find this program's own path to run {ENGINE}: {e}");
            return ExitCode::from(exit::EXIT_FAILURE);
        }
    };
    let mut cmd = Command::new(&engine);
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    let err = cmd.args(args.iter().skip(1)).exec();
    eprintln!(
        "gpufs: cannot run {} ({err}): it is built and installed beside gpufs \
         (cargo build --release -p gpufs)",
        engine.display()
    );
    ExitCode::from(exit::EXIT_FAILURE)
}
