//! Metadata workloads timed from inside one process, so no interpreter or fork cost
//! hides the filesystem's: create, stat and unlink of N files, and a fill of N files
//! spread over directories (for the daemon-memory measurement). Each returns the JSON
//! line to print.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

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

/// Creates, stats and unlinks `files` empty files in `dir/meta`, each phase timed.
pub fn meta(dir: &Path, files: usize) -> Value {
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

/// Creates `files` empty files in `dir/fill/dNNNN` (1,000 per directory), kept.
pub fn fill(dir: &Path, files: usize) -> Value {
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

/// Creates `files` empty files in one directory `dir/big` (for listing), kept.
pub fn bigdir(dir: &Path, files: usize) -> Value {
    let d = dir.join("big");
    fs::create_dir_all(&d).unwrap_or_else(|e| fail("mkdir", &d, e));
    let paths: Vec<PathBuf> = (0..files)
        .map(|i| d.join(format!("entry-{i:07}")))
        .collect();
    let t = Instant::now();
    create_all(&paths);
    serde_json::json!({ "files": files, "create_s": t.elapsed().as_secs_f64() })
}
