//! Verified records kept in memory, keyed by their first block.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::units::BlockNo;

/// Verified logical bytes of records, bounded by bytes, oldest dropped first. Entries
/// are dropped when their blocks are freed, so a reused block never serves stale bytes.
#[derive(Default)]
pub struct RecordCache {
    map: HashMap<BlockNo, Arc<Vec<u8>>>,
    order: VecDeque<BlockNo>,
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

    /// The record stored at `block`, if kept and `len` bytes long.
    pub fn get(&self, block: BlockNo, len: u32) -> Option<Arc<Vec<u8>>> {
        self.map
            .get(&block)
            .filter(|hit| hit.len() == len as usize)
            .cloned()
    }

    pub fn insert(&mut self, block: BlockNo, data: Arc<Vec<u8>>) {
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
        debug_assert!(self.bytes <= self.limit);
    }

    /// Forgets the record at `block` (its blocks were freed).
    /// Forgets everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }

    pub fn invalidate(&mut self, block: BlockNo) {
        if let Some(old) = self.map.remove(&block) {
            self.bytes -= old.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(len: usize, byte: u8) -> Arc<Vec<u8>> {
        Arc::new(vec![byte; len])
    }

    #[test]
    fn keeps_at_most_its_limit_oldest_out_first() {
        let mut c = RecordCache::new(100);
        c.insert(BlockNo::new(1), rec(40, 1));
        c.insert(BlockNo::new(2), rec(40, 2));
        c.insert(BlockNo::new(3), rec(40, 3));
        assert!(c.get(BlockNo::new(1), 40).is_none());
        assert_eq!(c.get(BlockNo::new(3), 40).unwrap()[0], 3);
        // A record larger than the whole cache is not kept.
        c.insert(BlockNo::new(4), rec(101, 4));
        assert!(c.get(BlockNo::new(4), 101).is_none());
        assert!(c.get(BlockNo::new(2), 40).is_some());
    }

    #[test]
    fn a_freed_block_or_another_length_misses() {
        let mut c = RecordCache::new(1000);
        c.insert(BlockNo::new(7), rec(10, 7));
        assert!(c.get(BlockNo::new(7), 11).is_none());
        c.invalidate(BlockNo::new(7));
        assert!(c.get(BlockNo::new(7), 10).is_none());
        c.insert(BlockNo::new(7), rec(20, 8));
        assert_eq!(c.get(BlockNo::new(7), 20).unwrap()[0], 8);
    }
}
