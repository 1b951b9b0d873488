//! Devices for the crash runs: one that logs writes and flushes, one that loses power
//! during a chosen flush; formatting and mounting on them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gpufs_core::device::{Device, FaultDevice, PowerCut};
use std::cell::Cell;

use gpufs_core::crypt::{KdfParams, Passphrase, SealKeys};
use gpufs_core::{mkfs, Filesystem, MkfsOptions, NewKey, OpenOptions};

use crate::JOURNAL_BLOCKS;

/// Records the offset of every write, to find the metadata writes of a workload, and
/// counts flushes.
pub(crate) struct LogDevice {
    pub(crate) inner: FaultDevice,
    pub(crate) offsets: Mutex<Vec<u64>>,
    pub(crate) flushes: AtomicU64,
}

impl Device for LogDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.offsets.lock().unwrap().push(offset);
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.inner.flush()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
}

/// Loses power during flush number `flush_cut` (counted from the first flush after
/// `arm`): the image is what a cut leaves while that flush is still in flight, and every
/// later call fails. Write cuts go to the inner device's own `arm_cut`.
pub(crate) struct CrashDevice {
    pub(crate) inner: FaultDevice,
    pub(crate) flushes: AtomicU64,
    pub(crate) flush_cut: AtomicU64,
    pub(crate) seed: u64,
    pub(crate) image: Mutex<Option<Vec<u8>>>,
}

impl CrashDevice {
    pub(crate) fn dead(&self) -> bool {
        self.inner.is_dead() || self.image.lock().unwrap().is_some()
    }
    pub(crate) fn check(&self) -> std::io::Result<()> {
        if self.image.lock().unwrap().is_some() {
            return Err(std::io::Error::other("device lost power during a flush"));
        }
        Ok(())
    }
}

impl Device for CrashDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.check()?;
        let n = self.flushes.fetch_add(1, Ordering::Relaxed);
        if n == self.flush_cut.load(Ordering::Relaxed) {
            let img = self.inner.power_cut(&mut PowerCut::new(self.seed));
            *self.image.lock().unwrap() = Some(img);
            return Err(std::io::Error::other("device lost power during a flush"));
        }
        self.inner.flush()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
}

thread_local! {
    /// This thread's cuts run on an encrypted filesystem.
    static ENCRYPTED: Cell<bool> = const { Cell::new(false) };
}

/// Makes this thread's next cuts run on an encrypted filesystem, or not.
pub(crate) fn set_encrypted(on: bool) {
    ENCRYPTED.with(|e| e.set(on));
}

fn encrypted() -> bool {
    ENCRYPTED.with(Cell::get)
}

/// The crash runs' passphrase (a quick derivation: every remount unlocks).
fn passphrase() -> Passphrase {
    Passphrase::new(b"crash-test key".to_vec())
}

/// The keys of the image on `d` when this thread's cuts are encrypted.
pub(crate) fn keys_of(d: &dyn Device) -> Result<Option<Arc<SealKeys>>, String> {
    if !encrypted() {
        return Ok(None);
    }
    gpufs_core::crypt::unlock(d, &passphrase())
        .map(Some)
        .map_err(|e| format!("unlock: {e}"))
}

pub(crate) fn format_and_mount(d: Arc<dyn Device>) -> Filesystem {
    // Dedup on: every record is hashed, and equal records (runs, text, copies) are
    // shared, so cuts land in that write path too.
    let opts = MkfsOptions {
        journal_blocks: Some(JOURNAL_BLOCKS),
        dedup: true,
        encrypt: encrypted().then(|| NewKey {
            passphrase: passphrase(),
            kdf: KdfParams::new(64, 1).expect("kdf parameters"),
        }),
        ..Default::default()
    };
    mkfs(d.clone(), &opts).expect("mkfs");
    let keys = keys_of(d.as_ref()).expect("unlock after mkfs");
    Filesystem::mount_with_keys(d, held(), keys).expect("mount after mkfs")
}

/// Mounts as a machine's mount does: marked in use (each remount after a cut takes the
/// marker the cut left over), so cuts land in the marker's writes too.
fn held() -> OpenOptions {
    OpenOptions {
        holder: Some(gpufs_format::superblock::InUse {
            host: [7; 16],
            pid: 1,
            reserved: 0,
            since_ns: 0,
            mount_point: gpufs_format::superblock::InUse::mount_point_bytes("/crash"),
        }),
        ..OpenOptions::default()
    }
}

pub(crate) fn mount_image(img: Vec<u8>) -> Result<(Arc<FaultDevice>, Filesystem), String> {
    let dev = Arc::new(FaultDevice::new(img));
    let d: Arc<dyn Device> = dev.clone();
    let keys = keys_of(d.as_ref())?;
    let fs = Filesystem::mount_with_keys(d, held(), keys).map_err(|e| format!("mount: {e}"))?;
    Ok((dev, fs))
}
