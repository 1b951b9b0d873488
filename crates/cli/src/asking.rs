//! The asking commands: they only talk to a running mount's daemon over its control
//! socket, so the small `gpufs` front program runs them itself (see `front.rs`).

use std::process::ExitCode;

use clap::Subcommand;

use crate::exit::{done, finish};
use crate::{
    clone_cmd, dedup_cmd, du_cmd, property_cmd, scrub_cmd, search_cmd, send_cmd, snapshot_cmd,
    stats_cmd,
};

#[derive(Subcommand, Debug)]
pub enum AskCommand {
    /// Find names (or paths) matching a pattern in a mounted filesystem, as it is now.
    Search(search_cmd::SearchArgs),
    /// Recursive sizes and file counts of a directory of a mounted filesystem.
    Du(du_cmd::DuArgs),
    /// What a mount's compute layer ran where, and for how long; how its records are
    /// stored.
    Stats(stats_cmd::StatsArgs),
    /// Set or show properties of a directory (compression, copies), inherited below it.
    Property(property_cmd::PropertyArgs),
    /// Verify every record and metadata copy of a mounted filesystem, repairing bad
    /// copies from good ones (exit 0 clean, 1 repaired, 4 damage left, 8 could not run).
    Scrub(scrub_cmd::ScrubArgs),
    /// Copy a file (or with -r a tree) within a mount by sharing its records: instant,
    /// and no new space until either copy changes.
    Clone(clone_cmd::CloneArgs),
    /// Share the records with equal bytes among the files under PATHs (offline dedup),
    /// and report the space given back.
    Dedup(dedup_cmd::DedupArgs),
    /// Create, list and delete snapshots of a mounted filesystem (exit 2 bad name, 3 the
    /// name exists, 4 no such snapshot, 8 not a gpufs mount).
    Snapshot(snapshot_cmd::SnapshotArgs),
    /// What changed between two snapshots, or a snapshot and the live filesystem: `+`
    /// created, `-` deleted, `M` modified, `R` renamed (exit 4 no such snapshot).
    Diff(snapshot_cmd::DiffArgs),
    /// Write a snapshot as a replication stream on standard output, whole or with
    /// --from the changes since an older snapshot (`gpufs receive` applies it; exit 4 no
    /// such snapshot, 8 not a gpufs mount).
    Send(send_cmd::SendArgs),
}

pub fn run(command: AskCommand) -> ExitCode {
    match command {
        AskCommand::Search(a) => finish(search_cmd::run(a)),
        AskCommand::Du(a) => finish(du_cmd::run(a)),
        AskCommand::Stats(a) => done(stats_cmd::run(a)),
        AskCommand::Property(a) => finish(property_cmd::run(a)),
        AskCommand::Scrub(a) => scrub_cmd::run(a),
        AskCommand::Clone(a) => finish(clone_cmd::run(a)),
        AskCommand::Dedup(a) => finish(dedup_cmd::run(a)),
        AskCommand::Snapshot(a) => finish(snapshot_cmd::run(a)),
        AskCommand::Diff(a) => finish(snapshot_cmd::diff(&a)),
        AskCommand::Send(a) => finish(send_cmd::run(a)),
    }
}
