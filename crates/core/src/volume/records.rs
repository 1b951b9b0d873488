//! Reading and writing file records: copy-on-write to fresh blocks, CRC32C-verified on
//! every read, with a small cache of verified records keyed by their first block.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use gpufs_format::{checksum, RecordPtr, BLOCK_SIZE};

use super::Volume;
use crate::error::{FsError, FsResult};

/// Verified records kept in memory, bounded by bytes. Entries are dropped when their
/// blocks are freed, so a reused block never serves stale bytes.
#[derive(Default)]
pub struct RecordCache {
    map: HashMap<u64, Arc<Vec<u8>>>,
    order: VecDeque<u64>,
    bytes: usize,
    limit: usize,
}

impl RecordCache {
    pub fn new(limit: usize) -> Self {
        RecordCache {
            limit,
            ..Default::default()
        }
    }

    fn get(&self, block: u64) -> Option<Arc<Vec<u8>>> {
        self.map.get(&block).cloned()
    }

    fn insert(&mut self, block: u64, data: Arc<Vec<u8>>) {
        if data.len() > self.limit {
            return;
        }
        self.bytes += data.len();
        if let Some(old) = self.map.insert(block, data) {
            self.bytes -= old.len();
        } else {
            self.order.push_back(block);
        }
        while self.bytes > self.limit {
            let Some(b) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.map.remove(&b) {
                self.bytes -= old.len();
            }
        }
    }

    pub fn invalidate(&mut self, block: u64) {
        if let Some(old) = self.map.remove(&block) {
            self.bytes -= old.len();
        }
    }
}

impl Volume {
    /// The logical bytes of a record, verified against its checksum.
    pub fn read_record(&mut self, ptr: &RecordPtr) -> FsResult<Arc<Vec<u8>>> {
        if let Some(hit) = self.cache.get(ptr.block) {
            if hit.len() == ptr.logical_len as usize {
                return Ok(hit);
            }
        }
        if ptr.flags & !RecordPtr::KNOWN_FLAGS != 0 || ptr.phys_len != ptr.logical_len {
            return Err(FsError::corrupt(format!(
                "record at block {} has flags {:#x} this build cannot read",
                ptr.block, ptr.flags
            )));
        }
        let blocks = ptr.block_count();
        self.relative(ptr.block, blocks)?;
        let mut buf = vec![0u8; blocks as usize * BLOCK_SIZE];
        self.read_blocks(ptr.block, &mut buf)?;
        buf.truncate(ptr.phys_len as usize);
        let computed = checksum(&buf);
        if computed != ptr.checksum {
            tracing::error!(
                block = ptr.block,
                stored = ptr.checksum,
                computed,
                "record checksum mismatch"
            );
            return Err(FsError::corrupt(format!(
                "record at block {} fails its checksum",
                ptr.block
            )));
        }
        let data = Arc::new(buf);
        self.cache.insert(ptr.block, data.clone());
        Ok(data)
    }

    /// Writes `data` (one record's logical bytes) to freshly allocated blocks and returns
    /// its pointer. Nothing refers to it until the caller applies an `ExtentPut`.
    pub fn write_record(&mut self, data: &[u8]) -> FsResult<RecordPtr> {
        let blocks = (data.len() as u64).div_ceil(BLOCK_SIZE as u64).max(1);
        let block = self.alloc_data(blocks)?;
        let mut padded;
        let bytes = if data.len().is_multiple_of(BLOCK_SIZE) && !data.is_empty() {
            data
        } else {
            padded = Vec::with_capacity(blocks as usize * BLOCK_SIZE);
            padded.extend_from_slice(data);
            padded.resize(blocks as usize * BLOCK_SIZE, 0);
            &padded[..]
        };
        if let Err(e) = self.write_blocks(block, bytes) {
            self.unalloc_data(block, blocks);
            return Err(e);
        }
        Ok(RecordPtr {
            block,
            logical_len: data.len() as u32,
            phys_len: data.len() as u32,
            birth_gen: self.generation(),
            checksum: checksum(data),
            flags: 0,
            hash: [0; 32],
        })
    }
}
