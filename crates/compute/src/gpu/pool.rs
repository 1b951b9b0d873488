//! Reuse of storage buffers between kernel calls: buffers are kept by power-of-two size
//! class, so a repeated query allocates nothing on the device.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Smallest pooled buffer.
const MIN_CLASS: u64 = 4096;
/// Buffers kept per size class.
const KEEP_PER_CLASS: usize = 4;

#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
}

impl BufferPool {
    /// A storage buffer (copy source and destination too) of at least `bytes`, zeroed
    /// only when fresh: callers that need zeros clear it.
    pub fn take(&self, device: &wgpu::Device, bytes: u64) -> wgpu::Buffer {
        let class = bytes.max(MIN_CLASS).next_power_of_two();
        if let Some(b) = self.free.lock().get_mut(&class).and_then(Vec::pop) {
            return b;
        }
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pooled"),
            size: class,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Returns `buffer` for reuse.
    pub fn give(&self, buffer: wgpu::Buffer) {
        let class = buffer.size();
        let mut free = self.free.lock();
        let list = free.entry(class).or_default();
        if list.len() < KEEP_PER_CLASS {
            list.push(buffer);
        }
    }

    /// Bytes held by idle pooled buffers.
    pub fn idle_bytes(&self) -> u64 {
        self.free
            .lock()
            .iter()
            .map(|(class, v)| class * v.len() as u64)
            .sum()
    }
}
