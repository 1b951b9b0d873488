//! Metadata workloads timed from inside one process, so no interpreter or fork cost
//! hides the filesystem's: create, stat and unlink of N files, and a fill of N files
//! spread over directories (for the daemon-memory measurement). Prints JSON.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand};

#[derive(Parser)]
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
}

fn fail(what: &str, p: &Path, e: std::io::Error) -> ! {
    eprintln!("gpufs-bench: {what} {}: {e}", p.display());
    std::process::exit(1);
}

fn create_all(paths: &[PathBuf]) {
    for p in paths {
        if let Err(e) = fs::File::create(p) {
            fail("create", p, e);
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let out = match cli.cmd {
        Cmd::Meta { dir, files } => {
            let d = dir.join("meta");
            fs::create_dir_all(&d).unwrap_or_else(|e| fail("mkdir", &d, e));
            let paths: Vec<PathBuf> = (0..files).map(|i| d.join(format!("f{i:07}"))).collect();
            let t = Instant::now();
            create_all(&paths);
            let create = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for p in &paths {
                if let Err(e) = fs::symlink_metadata(p) {
                    fail("stat", p, e);
                }
            }
            let stat = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for p in &paths {
                if let Err(e) = fs::remove_file(p) {
                    fail("unlink", p, e);
                }
            }
            let unlink = t.elapsed().as_secs_f64();
            let _ = fs::remove_dir(&d);
            serde_json::json!({ "files": files, "create_s": create, "stat_s": stat, "unlink_s": unlink })
        }
        Cmd::Fill { dir, files } => {
            let t = Instant::now();
            for start in (0..files).step_by(1000) {
                let d = dir.join("fill").join(format!("d{:04}", start / 1000));
                fs::create_dir_all(&d).unwrap_or_else(|e| fail("mkdir", &d, e));
                let paths: Vec<PathBuf> = (start..(start + 1000).min(files))
                    .map(|i| d.join(format!("file-{i:07}")))
                    .collect();
                create_all(&paths);
            }
            serde_json::json!({ "files": files, "create_s": t.elapsed().as_secs_f64() })
        }
        Cmd::Bigdir { dir, files } => {
            let d = dir.join("big");
            fs::create_dir_all(&d).unwrap_or_else(|e| fail("mkdir", &d, e));
            let paths: Vec<PathBuf> = (0..files)
                .map(|i| d.join(format!("entry-{i:07}")))
                .collect();
            let t = Instant::now();
            create_all(&paths);
            serde_json::json!({ "files": files, "create_s": t.elapsed().as_secs_f64() })
        }
    };
    let mut so = std::io::stdout();
    let _ = writeln!(so, "{out}");
}
