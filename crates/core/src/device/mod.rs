//! Block devices under the filesystem: an image file or block device, and a
//! fault-injecting in-memory device for crash tests.

mod fault;
mod file;

pub use fault::{FaultDevice, PowerCut};
pub use file::FileDevice;

use std::io;

/// What the filesystem needs of its storage. Writes may be reordered or lost until
/// [`Device::flush`] returns; after it returns they are durable.
pub trait Device: Send + Sync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&self) -> io::Result<()>;
    /// Size in bytes.
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}
