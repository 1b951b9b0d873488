//! The filesystem's background threads: the commit timer, and the preparer that runs
//! the transforming stages of dirty records (compression above all) off the volume lock
//! while writes keep arriving.

use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::Filesystem;

/// Rounds of the preparer per wake-up at most (a round takes up to 16 MiB).
const ROUNDS_PER_WAKE: usize = 64;

impl Filesystem {
    /// Commits whenever changes are older than `interval`, until `fs` is dropped.
    pub fn start_commit_timer(fs: &Arc<Filesystem>, interval: Duration) {
        let weak: Weak<Filesystem> = Arc::downgrade(fs);
        let tick = (interval / 5).max(Duration::from_millis(50));
        let spawned = std::thread::Builder::new()
            .name("gpufs-commit".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                let Some(fs) = weak.upgrade() else { return };
                let mut g = fs.inner.lock();
                if g.vol.has_uncommitted() && g.last_commit.elapsed() >= interval {
                    if let Err(e) = g.vol.commit() {
                        tracing::error!("background commit failed: {e}");
                    }
                    g.last_commit = Instant::now();
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the commit thread: {e}");
        }
    }

    /// Starts the preparer: from then on, a write that leaves enough dirty bytes not
    /// yet prepared wakes it, and it prepares them off the lock ([`Self::prepare_dirty`]).
    /// Without it every record is prepared by its flush, under the lock.
    pub fn start_preparer(fs: &Arc<Filesystem>) {
        let (wake, woken) = sync_channel::<()>(1);
        let weak: Weak<Filesystem> = Arc::downgrade(fs);
        let spawned = std::thread::Builder::new()
            .name("gpufs-prepare".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    let Some(fs) = weak.upgrade() else { return };
                    fs.prepare_dirty();
                }
            });
        match spawned {
            Ok(_) => {
                if fs.preparer.set(wake).is_err() {
                    tracing::debug!("the preparer was already started");
                }
            }
            Err(e) => tracing::error!("cannot start the preparer thread: {e}"),
        }
    }

    /// Wakes the preparer if it runs (it is busy or already woken otherwise).
    pub(super) fn wake_preparer(&self) {
        if let Some(wake) = self.preparer.get() {
            let _ = wake.try_send(());
        }
    }

    /// Prepares whole dirty records off the volume lock, round by round, until none is
    /// left unprepared: the lock is held only to take a round and to keep its results.
    /// Returns how many records were kept prepared.
    pub fn prepare_dirty(&self) -> usize {
        let mut kept = 0;
        for _ in 0..ROUNDS_PER_WAKE {
            let Some(work) = self.inner.lock().vol.take_prepare_work() else {
                break;
            };
            let done = work.run();
            kept += self.inner.lock().vol.keep_prepared(done);
        }
        kept
    }
}
