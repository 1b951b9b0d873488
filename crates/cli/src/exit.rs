//! How the commands end, shared by both programs: exit codes, and quiet ends on a
//! closed pipe.

use std::process::ExitCode;

use crate::search_cmd;

/// Exit codes: 0 success, 1 failure, 2 usage error (clap's own).
pub const EXIT_FAILURE: u8 = 1;

/// A command whose output goes to a pipe that closed early (`gpufs bench ... | head`)
/// ends quietly, as Unix tools do, instead of panicking in `println!`. Not for the mount
/// daemon: a client that hangs up must not end it.
pub fn default_sigpipe() {
    // SAFETY: called once at start, before any other thread exists; SIG_DFL is a valid
    // disposition and no handler code runs.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Exit for commands whose failures carry their own code (2: bad pattern or usage).
pub fn finish(r: Result<(), search_cmd::Failure>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("gpufs: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

/// Exit for commands that fail with a message only (code 1).
pub fn done(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("gpufs: {msg}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
