//! An image file or block device, read and written with positional I/O.
//!
//! One writer per image: a writable open takes an exclusive lock on the file (the OS's
//! `flock`, through `File::try_lock`), a read-only open a shared one, held for as long as
//! the device is open and dropped by the OS when its process ends (even by `kill -9`).
//! A second writer, or a reader of an image being written, is refused at open with
//! [`ErrorKind::WouldBlock`](io::ErrorKind::WouldBlock) instead of corrupting it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Device;

pub struct FileDevice {
    file: File,
    len: u64,
    /// A write may have landed since the last flush that succeeded. Set after each
    /// write (so that a flush racing a write leaves it set for the writer's own flush),
    /// taken by a flush: a flush with nothing written since the last one costs no
    /// `fdatasync` (a snapshot flushes right after the commit before it).
    unflushed: AtomicBool,
    /// `fdatasync` calls made.
    syncs: AtomicU64,
}

impl FileDevice {
    /// Opens an existing image or block device.
    pub fn open(path: &Path, writable: bool) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        lock(&file, writable)?;
        let len = device_len(&file)?;
        Ok(FileDevice::of(file, len))
    }

    fn of(file: File, len: u64) -> Self {
        FileDevice {
            file,
            len,
            unflushed: AtomicBool::new(true),
            syncs: AtomicU64::new(0),
        }
    }

    /// `fdatasync` calls made so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Creates (or reuses) a sparse image file of `len` bytes.
    pub fn create_sparse(path: &Path, len: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        lock(&file, true)?;
        if file.metadata()?.file_type().is_file() {
            file.set_len(len)?;
        }
        let len = device_len(&file)?;
        Ok(FileDevice::of(file, len))
    }
}

/// Takes `file` for one writer (`exclusive`) or for readers, without waiting.
fn lock(file: &File, exclusive: bool) -> io::Result<()> {
    let held = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match held {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(io::Error::new(io::ErrorKind::WouldBlock, IN_USE))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The message of the error an open of an image in use gives.
pub const IN_USE: &str = "the image is in use by another gpufs process (one writer per image)";

/// Length of a regular file, or of a block device (whose metadata says 0).
fn device_len(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let meta = file.metadata()?;
    if meta.file_type().is_file() {
        return Ok(meta.len());
    }
    let mut f = file;
    let end = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(end)
}

impl Device for FileDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if offset.saturating_add(buf.len() as u64) > self.len {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let written = self.file.write_all_at(buf, offset);
        // Even a failed write may have changed some bytes.
        self.unflushed.store(true, Ordering::Release);
        written
    }
    fn flush(&self) -> io::Result<()> {
        if !self.unflushed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let synced = self.file.sync_data();
        if synced.is_err() {
            self.unflushed.store(true, Ordering::Release);
        }
        synced
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_with_nothing_written_since_the_last_costs_no_sync() {
        let dir = std::env::temp_dir().join(format!("gpufs-flush-{}", std::process::id()));
        let dev = FileDevice::create_sparse(&dir, 1 << 20).unwrap();
        dev.flush().unwrap();
        assert_eq!(dev.syncs(), 1, "the first flush syncs: nothing is known");
        dev.flush().unwrap();
        assert_eq!(dev.syncs(), 1);
        dev.write_at(b"abc", 4096).unwrap();
        dev.flush().unwrap();
        dev.flush().unwrap();
        assert_eq!(dev.syncs(), 2);
        let mut back = [0u8; 3];
        dev.read_at(&mut back, 4096).unwrap();
        assert_eq!(&back, b"abc");
        drop(dev);
        std::fs::remove_file(&dir).unwrap();
    }
}
