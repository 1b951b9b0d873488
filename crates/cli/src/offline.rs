//! Work on a mounted filesystem's image while it is unmounted (`gpufs snapshot rollback`,
//! `gpufs receive`): no kernel cache of the files as they were may outlive the change.
//! The mount is unmounted (refused, exit 5, nothing changed, while files are open under
//! it), the work runs, and the filesystem is mounted again with its daemon's own
//! arguments whatever the work's outcome.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::client;
use crate::exit::Failure;

/// The exit code of a mount that could not be unmounted: files are open under it.
pub const BUSY: u8 = 5;
/// The exit code for a path that is not a gpufs mount.
pub const NOT_A_MOUNT: u8 = 8;

/// Asks the daemon at `mp`; a refusal becomes the failure with its exit code.
pub fn ask(mp: &Path, req: &Value) -> Result<Value, Failure> {
    let (head, _) = client::ask(mp, req).map_err(|msg| Failure {
        code: NOT_A_MOUNT,
        msg,
    })?;
    client::refusal(&head, "the request")?;
    Ok(head)
}

/// How the mount at `mp` was made.
pub struct MountInfo {
    /// Its image.
    pub image: String,
    /// Its daemon's program (the engine).
    pub engine: String,
    /// The daemon's arguments as a plain mount.
    pub remount: Vec<String>,
    pub cwd: String,
}

/// How the mount at `mp` was made (root only: the daemon says so to root alone).
pub fn mount_info(mp: &Path) -> Result<MountInfo, Failure> {
    let info = ask(mp, &json!({"op": "snapshot", "action": "mount-info"}))?["mount"].clone();
    let text = |k: &str| info[k].as_str().map(str::to_string);
    let (Some(image), Some(engine), Some(cwd)) = (text("image"), text("exe"), text("cwd")) else {
        return Err(Failure::error(
            "the mount's daemon did not say how it was mounted",
        ));
    };
    // The daemon's own command line, as a plain mount (not its internal child flag).
    let remount: Vec<String> = info["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .skip(1)
                .filter(|a| a != "--daemon-child" && a != "-f" && a != "--foreground")
                .collect()
        })
        .unwrap_or_default();
    // An encrypted mount's key reached its daemon through a pipe: nothing could mount it
    // again. The work is done on the unmounted image instead, by the person who has the
    // key.
    if remount
        .iter()
        .any(|a| a == "--key-file" || a.contains("key_file="))
    {
        return Err(Failure::error(format!(
            "{} is encrypted: this runs on its image unmounted (gpufs unmount {}; then, for \
             a stream, gpufs receive {image} --key-file KEY < STREAM)",
            mp.display(),
            mp.display()
        )));
    }
    Ok(MountInfo {
        image,
        engine,
        remount,
        cwd,
    })
}

/// Unmounts `mp`, runs `work` on its image, and mounts it again as it was mounted.
pub fn with_unmounted<T>(
    mp: &Path,
    info: &MountInfo,
    work: impl FnOnce(&str) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let me = std::env::current_exe().map_err(|e| Failure::error(e.to_string()))?;
    match Command::new(&me).arg("unmount").arg(mp).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(Failure {
                code: BUSY,
                msg: format!(
                    "{} is busy, nothing changed (close the files open under it): {}",
                    mp.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            })
        }
        Err(e) => return Err(Failure::error(format!("cannot run gpufs unmount: {e}"))),
    }
    let result = work(&info.image);
    let mounted = Command::new(&info.engine)
        .args(&info.remount)
        .current_dir(&info.cwd)
        .status();
    match mounted {
        Ok(m) if m.success() => result,
        _ => {
            let again = format!(
                "mounting {} at {} again failed: mount it with gpufs mount",
                info.image,
                mp.display()
            );
            Err(match result {
                Ok(_) => Failure::error(again),
                Err(f) => Failure {
                    code: f.code,
                    msg: format!("{}; {again}", f.msg),
                },
            })
        }
    }
}
