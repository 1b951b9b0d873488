//! `gpufs-engine rollback-image IMAGE NAME` (internal): rolls an unmounted image back to
//! snapshot NAME. `gpufs snapshot rollback MOUNTPOINT NAME` unmounts, runs this, and
//! mounts again, so that no kernel cache of the files as they were outlives it.

use std::path::PathBuf;
use std::sync::Arc;

use gpufs_core::device::{Device, FileDevice};
use gpufs_core::{Filesystem, OpenOptions};

use crate::paths;

#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The unmounted image.
    pub image: PathBuf,
    /// The snapshot it becomes.
    pub name: String,
}

pub fn run(a: RollbackArgs) -> Result<(), String> {
    let image = crate::absolute(&a.image);
    let dev: Arc<dyn Device> =
        Arc::new(FileDevice::open(&image, true).map_err(|e| paths::open_error(&image, &e))?);
    let opts = OpenOptions {
        holder: Some(paths::holder("(snapshot rollback)")),
        ..OpenOptions::default()
    };
    let fs = Filesystem::mount(dev, opts).map_err(|e| format!("{}: {e}", image.display()))?;
    fs.rollback_snapshot(a.name.as_bytes())
        .map_err(|e| format!("rollback to {:?}: {e}", a.name))?;
    fs.close().map_err(|e| format!("{}: {e}", image.display()))
}
