//! `gpufs fsck`: check an unmounted image.
//!
//! Exit codes: 0 clean; 1 only conditions a read-write mount repairs by itself; 4
//! problems found; 8 the image could not be checked at all; 9 an encrypted image's key
//! is missing or wrong.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use gpufs_core::device::{Device, FileDevice};
use gpufs_core::fsck;

#[derive(clap::Args, Debug)]
pub struct FsckArgs {
    /// Image file or block device (not mounted).
    pub image: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print problems only.
    #[arg(short, long)]
    pub quiet: bool,
    /// The key of an encrypted image (a file; `-`: standard input; left out: asked).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

pub fn run(a: FsckArgs) -> ExitCode {
    let image = crate::absolute(&a.image);
    let dev: Arc<dyn Device> = match FileDevice::open(&image, false) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            eprintln!("gpufs fsck: {}", crate::paths::open_error(&image, &e));
            return ExitCode::from(8);
        }
    };
    let keys = match crate::key_input::keys_for(dev.as_ref(), &image, a.key_file.as_deref()) {
        Ok(k) => k,
        Err(msg) => {
            let f = crate::key_input::failure_of(msg);
            eprintln!("gpufs fsck: {}", f.msg);
            return ExitCode::from(if f.code == crate::key_input::EXIT_KEY {
                f.code
            } else {
                8
            });
        }
    };
    let bar = (std::io::stderr().is_terminal() && !a.quiet && !a.json).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("checking records {bar:40} {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let holder = crate::paths::holder("fsck");
    let result = fsck::check_with_keys(dev, keys, Some(holder), &mut |done, total| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gpufs fsck: {}: {e}", image.display());
            return ExitCode::from(8);
        }
    };
    let code = if !report.problems.is_empty() {
        4
    } else if !report.warnings.is_empty() {
        1
    } else {
        0
    };
    if a.json {
        print_json(&image, &report);
    } else {
        print_text(&image, &report, a.quiet);
    }
    ExitCode::from(code)
}

fn print_json(image: &Path, report: &fsck::FsckReport) {
    let s = &report.stats;
    println!(
        "{}",
        serde_json::json!({
            "image": image.display().to_string(),
            "clean": report.problems.is_empty(),
            "problems": report.problems,
            "warnings": report.warnings,
            "inodes": s.inodes,
            "directories": s.directories,
            "files": s.files,
            "records": s.records,
            "record_bytes": s.record_bytes,
            "shared_references": s.shared_references,
            "prealloc_blocks": s.prealloc_blocks,
            "used_blocks": s.used_blocks,
            "total_blocks": s.total_blocks,
            "journal_transactions": s.replayed_transactions,
        })
    );
}

fn print_text(image: &Path, report: &fsck::FsckReport, quiet: bool) {
    for p in &report.problems {
        println!("problem: {p}");
    }
    if quiet {
        return;
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    let s = &report.stats;
    println!(
        "{}: {} inodes ({} directories, {} files), {} records ({} bytes) verified, \
         {} shared references counted, {}/{} blocks used, {} journal transaction(s) \
         pending: {}",
        image.display(),
        s.inodes,
        s.directories,
        s.files,
        s.records,
        s.record_bytes,
        s.shared_references,
        s.used_blocks,
        s.total_blocks,
        s.replayed_transactions,
        if report.problems.is_empty() {
            "clean"
        } else {
            "PROBLEMS FOUND"
        }
    );
}
