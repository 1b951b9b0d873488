//! `gpufs key list|add|remove IMAGE`: the key slots of an encrypted image. Adding or
//! removing a key rewrites the key slots only, never the data; a key that opens no slot
//! changes nothing (exit 9), and the last slot is never removed.

use std::path::PathBuf;
use std::sync::Arc;

use gpufs_core::crypt;
use gpufs_core::device::{Device, FileDevice};

use crate::exit::Failure;
use crate::key_input::{key_failure, read_key, KdfArgs};

#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// The key slots in use (no key needed).
    List {
        image: PathBuf,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a key: the existing key opens the volume key, which a new slot wraps for the
    /// new key.
    Add {
        image: PathBuf,
        /// A key the image opens with (`-`: standard input; left out: asked).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// The key to add (`-`: standard input; left out: asked twice).
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove the slot this key opens (refused for the last one).
    Remove {
        image: PathBuf,
        /// The key whose slot goes (`-`: standard input; left out: asked).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
}

fn open(image: &std::path::Path, write: bool) -> Result<Arc<dyn Device>, Failure> {
    FileDevice::open(image, write)
        .map(|d| Arc::new(d) as Arc<dyn Device>)
        .map_err(|e| Failure::error(crate::paths::open_error(image, &e)))
}

fn fail(image: &std::path::Path, e: gpufs_core::FsError) -> Failure {
    let msg = format!("{}: {e}", image.display());
    match e {
        gpufs_core::FsError::Key(_) => key_failure(msg),
        _ => Failure::error(msg),
    }
}

pub fn run(a: KeyArgs) -> Result<(), Failure> {
    match a.command {
        KeyCommand::List { image, json } => {
            let image = crate::absolute(&image);
            let dev = open(&image, false)?;
            let slots = crypt::list_keys(dev.as_ref()).map_err(|e| fail(&image, e))?;
            if json {
                let v: Vec<_> = slots
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "slot": s.slot,
                            "kdf": "argon2id",
                            "memory_kib": s.memory_kib,
                            "iterations": s.iterations,
                            "lanes": s.lanes,
                            "created_ns": s.created_ns,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for s in &slots {
                    println!(
                        "slot {}: argon2id, {} MiB, {} iterations, {} lane(s)",
                        s.slot,
                        s.memory_kib / 1024,
                        s.iterations,
                        s.lanes
                    );
                }
            }
            Ok(())
        }
        KeyCommand::Add {
            image,
            key_file,
            new_key_file,
            kdf,
        } => {
            let image = crate::absolute(&image);
            if key_file.as_deref() == Some(std::path::Path::new("-"))
                && new_key_file.as_deref() == Some(std::path::Path::new("-"))
            {
                return Err(Failure::usage(
                    "only one of the keys can come from standard input",
                ));
            }
            let dev = open(&image, true)?;
            let old = read_key(key_file.as_deref(), "existing key", false)?;
            let new = read_key(new_key_file.as_deref(), "new key", true)?;
            let params = kdf.params()?;
            let slot =
                crypt::add_key(dev.as_ref(), &old, &new, params).map_err(|e| fail(&image, e))?;
            eprintln!("gpufs: added key slot {slot}");
            Ok(())
        }
        KeyCommand::Remove { image, key_file } => {
            let image = crate::absolute(&image);
            let dev = open(&image, true)?;
            let key = read_key(key_file.as_deref(), "key to remove", false)?;
            let slot = crypt::remove_key(dev.as_ref(), &key).map_err(|e| fail(&image, e))?;
            eprintln!("gpufs: removed key slot {slot}");
            Ok(())
        }
    }
}
