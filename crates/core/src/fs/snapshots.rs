//! Snapshots of the mounted filesystem: create, list, delete. The volume keeps them and
//! the space they hold (`volume/snapshots.rs`); this is the API the daemon calls.

use std::time::Instant;

use super::Filesystem;
use crate::error::FsResult;
use crate::volume::SnapshotInfo;

impl Filesystem {
    /// Creates snapshot `name` of everything written so far (durable when it returns),
    /// and how long the volume took.
    pub fn create_snapshot(&self, name: &[u8]) -> FsResult<(SnapshotInfo, std::time::Duration)> {
        let mut g = self.lock();
        let t = Instant::now();
        let rec = g.vol.create_snapshot(name)?;
        let took = t.elapsed();
        g.last_commit = Instant::now();
        // New, it holds nothing alone: every block it marks is the live filesystem's
        // (no need to read the other snapshots' bitmaps to say so).
        Ok((SnapshotInfo::of(&rec, 0, false), took))
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> FsResult<Vec<SnapshotInfo>> {
        self.lock().vol.list_snapshots()
    }

    /// Deletes snapshot `name` (durable when it returns); what only it held is free.
    pub fn delete_snapshot(&self, name: &[u8]) -> FsResult<()> {
        let mut g = self.lock();
        g.vol.delete_snapshot(name)?;
        g.last_commit = Instant::now();
        drop(g);
        self.forget_views();
        Ok(())
    }
}

impl Filesystem {
    /// Makes the filesystem snapshot `name` again (every snapshot kept). Refused while
    /// any file or directory is open: their handles would name files of another time.
    /// Meant for an unmounted image (`gpufs snapshot rollback` unmounts first), so that
    /// no kernel cache outlives it.
    pub fn rollback_snapshot(&self, name: &[u8]) -> FsResult<()> {
        let mut g = self.lock();
        if !g.open.is_empty() {
            return Err(crate::error::FsError::Busy(format!(
                "{} files or directories are open",
                g.open.len()
            )));
        }
        g.vol.rollback_to_snapshot(name)?;
        g.last_commit = Instant::now();
        drop(g);
        self.forget_views();
        Ok(())
    }
}
