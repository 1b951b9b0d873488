//! `gpufs-engine`: make, mount, unmount and check gpufs filesystems; every command of
//! `gpufs`. The `gpufs` program users run (`front.rs`) answers the asking commands
//! (`search`, `du`, `stats`) itself and becomes this one for the rest.

mod asking;
mod client;
mod clone_cmd;
mod compute_cmd;
mod dedup_cmd;
mod du_cmd;
mod exit;
mod fsck_cmd;
mod key_cmd;
mod key_input;
mod mkfs_cmd;
mod mount_cmd;
// helper_args is the front program's (mount.fuse.gpufs); the engine parses -o.
#[allow(dead_code)]
mod mount_opts;
mod offline;
mod paths;
mod property_cmd;
mod receive_cmd;
mod rollback_cmd;
mod scrub_cmd;
mod search_cmd;
mod send_cmd;
mod size;
mod snapshot_cmd;
mod stats_cmd;
mod unmount_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use exit::{default_sigpipe, done};

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
    /// The key slots of an encrypted image: list, add, remove (exit 9: a key no slot
    /// opens, or the last slot).
    Key(key_cmd::KeyArgs),
    #[command(flatten)]
    Ask(asking::AskCommand),
    /// Show which compute backend runs kernels here (and calibrate it).
    Compute(compute_cmd::ComputeArgs),
    /// Apply a replication stream from standard input (`gpufs send`) to a mount or an
    /// unmounted image and create its snapshot; all or nothing (exit 3 the snapshot
    /// exists, 4 its base is missing, 5 busy, 6 the target changed, 7 damaged stream).
    Receive(receive_cmd::ReceiveArgs),
    /// Internal: roll an unmounted image back to a snapshot (`gpufs snapshot rollback`).
    #[command(name = "rollback-image", hide = true)]
    RollbackImage(rollback_cmd::RollbackArgs),
}

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
        Command::Mkfs(a) => return exit::finish(mkfs_cmd::run(a)),
        Command::Mount(a) => return exit::finish(mount_cmd::run(a).map_err(key_input::failure_of)),
        Command::Key(a) => return exit::finish(key_cmd::run(a)),
        Command::Unmount(a) => unmount_cmd::run(a),
        Command::Fsck(a) => return fsck_cmd::run(a),
        Command::Ask(a) => return asking::run(a),
        Command::Compute(a) => compute_cmd::run(a),
        Command::RollbackImage(a) => rollback_cmd::run(a),
        Command::Receive(a) => return exit::finish(receive_cmd::run(a)),
    };
    done(result)
}

/// Reads an image path argument into an absolute path.
pub fn absolute(p: &PathBuf) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.clone())
}
