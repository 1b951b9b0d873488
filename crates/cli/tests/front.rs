//! The `gpufs` front program: it answers the asking commands itself, becomes
//! `gpufs-engine` for the rest (help, version and exit codes as one program), and says
//! plainly what is wrong when the engine is not beside it.

use std::path::Path;
use std::process::{Command, Output};

fn run(exe: &Path, args: &[&str]) -> Output {
    // A program just copied can be briefly busy: another test thread that forks in
    // the meantime holds the copy's write handle until its child execs. Retried.
    for _ in 0..100 {
        match Command::new(exe)
            .args(args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
        {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result.expect("gpufs runs"),
        }
    }
    panic!("{} stayed busy", exe.display());
}

fn front() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_gpufs"))
}

#[test]
fn help_and_version_are_the_whole_programs() {
    let out = run(front(), &["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "mkfs", "mount", "unmount", "fsck", "search", "du", "stats", "compute",
    ] {
        assert!(
            help.contains(command),
            "{command} missing from --help:\n{help}"
        );
    }
    let front_version = run(front(), &["--version"]);
    let engine_version = run(
        Path::new(env!("CARGO_BIN_EXE_gpufs-engine")),
        &["--version"],
    );
    assert!(front_version.status.success());
    assert_eq!(front_version.stdout, engine_version.stdout);
    // The asking commands' own help comes from the front, under the same name.
    let out = run(front(), &["search", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: gpufs search"));
}

#[test]
fn exit_codes_are_kept_through_the_engine() {
    // A usage error in the engine (clap's 2) and in the front.
    assert_eq!(run(front(), &["no-such-command"]).status.code(), Some(2));
    assert_eq!(run(front(), &["search"]).status.code(), Some(2));
    // fsck of something that is not an image: the engine's own code (8, unreadable).
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, b"not a filesystem").expect("write");
    let out = run(front(), &["fsck", junk.to_str().expect("utf-8 path")]);
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Asking a directory that is no mount: the front's own failure.
    let out = run(
        front(),
        &["search", dir.path().to_str().expect("utf-8"), "x"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not"));
}

#[test]
fn a_missing_engine_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alone = dir.path().join("gpufs");
    std::fs::copy(front(), &alone).expect("copy the front alone");
    let out = run(&alone, &["mkfs", "x.img", "--size", "1G"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gpufs-engine"), "{err}");
    assert!(!dir.path().join("x.img").exists());
}
