//! Reading a key the user gives: a key file (`-`: standard input), or a passphrase typed
//! at a terminal without echo (twice where a new key is made). A key file's bytes are
//! the key, less one trailing newline (so that `echo secret > F` and typing `secret`
//! give the same key); a raw binary key is used as it is. Every key goes through the
//! key slot's Argon2id.

use std::io::{IsTerminal, Read};
use std::path::Path;

use std::sync::Arc;

use gpufs_core::crypt::{KdfParams, Passphrase, SealKeys, DEFAULT_KDF_TIME, DEFAULT_MEMORY_KIB};
use gpufs_core::device::Device;

use crate::exit::Failure;

/// Exit code of a missing or wrong key, or a key operation refused (the last slot).
pub const EXIT_KEY: u8 = 9;

/// Marks a message as a key failure on its way through code that only carries text (the
/// mount daemon's report to the command that started it).
pub const KEY_MARK: &str = "key refused: ";

/// A key failure (exit [`EXIT_KEY`]).
pub fn key_failure(msg: impl std::fmt::Display) -> Failure {
    Failure {
        code: EXIT_KEY,
        msg: msg.to_string(),
    }
}

/// A failure from text: a key failure when it carries [`KEY_MARK`], else exit 1.
pub fn failure_of(msg: String) -> Failure {
    if msg.contains(KEY_MARK) {
        Failure {
            code: EXIT_KEY,
            msg: msg.replacen(KEY_MARK, "", 1),
        }
    } else {
        Failure::error(msg)
    }
}

/// The text of a core error, marked when it is a key failure.
pub fn describe(e: &gpufs_core::FsError) -> String {
    match e {
        gpufs_core::FsError::Key(_) => format!("{KEY_MARK}{e}"),
        _ => e.to_string(),
    }
}

/// The key in `file` (`-`: all of standard input); without a file, typed at the terminal
/// (`what` names it in the prompt; `confirm`: typed twice). Refused when empty.
pub fn read_key(file: Option<&Path>, what: &str, confirm: bool) -> Result<Passphrase, Failure> {
    let mut bytes = match file {
        Some(p) if p == Path::new("-") => {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .map_err(|e| key_failure(format!("reading the key from standard input: {e}")))?;
            b
        }
        Some(p) => std::fs::read(p).map_err(|e| key_failure(format!("{}: {e}", p.display())))?,
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(key_failure(format!(
                    "{what}: give --key-file FILE (or - for standard input): no terminal to \
                     ask at"
                )));
            }
            let first = rpassword::prompt_password(format!("{what}: "))
                .map_err(|e| key_failure(format!("reading the passphrase: {e}")))?;
            if confirm {
                let again = zeroize::Zeroizing::new(
                    rpassword::prompt_password(format!("{what} (again): "))
                        .map_err(|e| key_failure(format!("reading the passphrase: {e}")))?,
                );
                if *again != first {
                    return Err(key_failure("the two passphrases differ"));
                }
            }
            first.into_bytes()
        }
    };
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(key_failure(format!("{what}: the key is empty")));
    }
    Ok(Passphrase::new(bytes))
}

/// The keys of the image on `dev` when it is encrypted, unlocked with the key in
/// `key_file` (asked at the terminal without one); `None` for an image that is not.
/// Errors are text, key failures marked with [`KEY_MARK`].
pub fn keys_for(
    dev: &dyn Device,
    image: &Path,
    key_file: Option<&Path>,
) -> Result<Option<Arc<SealKeys>>, String> {
    let shown = image.display();
    let (sb, _) = gpufs_core::crypt::area::superblock_of(dev)
        .map_err(|e| format!("{shown}: {}", describe(&e)))?;
    if !sb.is_encrypted() {
        return match key_file {
            Some(_) => Err(format!(
                "{KEY_MARK}{shown}: the image is not encrypted: it takes no key"
            )),
            None => Ok(None),
        };
    }
    let pass = read_key(key_file, &format!("key for {shown}"), false)
        .map_err(|f| format!("{KEY_MARK}{}", f.msg))?;
    gpufs_core::crypt::unlock(dev, &pass)
        .map(Some)
        .map_err(|e| format!("{shown}: {}", describe(&e)))
}

/// How hard a new key slot's key is to derive: `--kdf-time` milliseconds of Argon2id
/// with `--kdf-memory` MiB at most (measured here), as LUKS's `--iter-time`.
#[derive(clap::Args, Debug, Clone)]
pub struct KdfArgs {
    /// Milliseconds one unlock should take (Argon2id, measured on this machine).
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_KDF_TIME.as_millis() as u64)]
    pub kdf_time: u64,
    /// Most memory the derivation may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MEMORY_KIB / 1024)]
    pub kdf_memory: u32,
}

impl KdfArgs {
    pub fn params(&self) -> Result<KdfParams, Failure> {
        let memory_kib = self
            .kdf_memory
            .checked_mul(1024)
            .ok_or_else(|| Failure::usage("--kdf-memory too large"))?;
        KdfParams::calibrate(std::time::Duration::from_millis(self.kdf_time), memory_kib)
            .map_err(|e| Failure::usage(e.to_string()))
    }
}
