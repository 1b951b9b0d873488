//! How the commands end, shared by both programs: exit codes, and quiet ends on a
//! closed pipe.

use std::process::ExitCode;

/// Exit codes: 0 success, 1 failure, 2 usage error (clap's own).
pub const EXIT_FAILURE: u8 = 1;

/// A command whose output goes to a pipe that closed early (`gpufs search ... | head`)
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

/// A failure with the exit code it carries (2: the pattern or arguments; 1: the rest).
pub struct Failure {
    pub code: u8,
    pub msg: String,
}

impl Failure {
    /// A failure of the arguments or the pattern (exit 2).
    pub fn usage(msg: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            msg: msg.into(),
        }
    }

    /// Any other failure (exit 1).
    pub fn error(msg: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            msg: msg.into(),
        }
    }
}

/// Exit for commands whose failures carry their own code (2: bad pattern or usage).
pub fn finish(r: Result<(), Failure>) -> ExitCode {
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

/// The end of printing: a closed pipe (| head) is not an error.
pub fn printed(r: std::io::Result<()>) -> Result<(), Failure> {
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::error(e.to_string())),
        _ => Ok(()),
    }
}
