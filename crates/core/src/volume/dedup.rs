//! Inline deduplication: the table of records written with a hash (`dedup on`), by the
//! first 16 bytes of their BLAKE3, and the volume's decision for each new record: store
//! it, or share the record already stored with the same bytes.
//!
//! The table is not stored. Every pointer that carries a hash is in the namespace (the
//! checkpoint holds all of them), so a mount fills the table from the pointers, and
//! every record written with a hash afterwards is added. An entry names where a record
//! was seen, `(inode, record index)`, not the record: a lookup reads the pointer there
//! and shares it only when it still carries the full hash asked for. Entries whose
//! pointer has changed are dropped when met; a remount drops them all. An entry is 20
//! bytes of key and value in a hash table: 23 to 43 bytes of memory per unique record
//! with the table's spare room (ZFS keeps about 320).

use hashbrown::HashMap;

use gpufs_format::RecordPtr;

use crate::namespace::Namespace;

/// What dedup did since mount, for `gpufs stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupCounters {
    /// Records written with dedup on that were looked up.
    pub lookups: u64,
    /// Of those, records found stored already and shared instead of written.
    pub hits: u64,
    /// Device bytes those hits did not write (whole blocks, every copy).
    pub bytes_saved: u64,
}

/// Where each hashed record was seen, filed under the first 8 bytes of its BLAKE3 (as
/// two words): its inode and record index (low and high halves). Every part is a 4-byte
/// word, so that an entry takes 20 bytes. A match of the key only points at a candidate:
/// the full hash in its pointer decides (two records sharing a key is a missed share,
/// never a wrong one).
#[derive(Debug, Default)]
pub struct DedupTable {
    seen: HashMap<[u32; 2], [u32; 3]>,
}

fn key_of(hash: &[u8]) -> [u32; 2] {
    let word = |i: usize| u32::from_le_bytes([hash[i], hash[i + 1], hash[i + 2], hash[i + 3]]);
    [word(0), word(4)]
}

impl DedupTable {
    /// The table of every hashed pointer of `ns`.
    pub fn of(ns: &Namespace) -> DedupTable {
        let mut t = DedupTable::default();
        for (ino, index, ptr) in ns.all_extents() {
            t.insert(ptr, ino, index);
        }
        t
    }

    /// Records the pointer `ptr` of record `index` of `ino`, if it carries a hash.
    pub fn insert(&mut self, ptr: &RecordPtr, ino: u32, index: u64) {
        if let Some(key) = ptr.dedup_key() {
            self.seen
                .insert(key_of(&key), [ino, index as u32, (index >> 32) as u32]);
        }
    }

    /// The stored record whose logical bytes hash to `hash`, if one is known and still
    /// where it was seen.
    pub fn find(&mut self, ns: &Namespace, hash: &[u8; 32]) -> Option<RecordPtr> {
        let key = key_of(hash);
        let &[ino, lo, hi] = self.seen.get(&key)?;
        let index = u64::from(lo) | (u64::from(hi) << 32);
        match ns.extent(ino, index) {
            Some(p) if p.hash_matches(hash) => Some(*p),
            _ => {
                self.seen.remove(&key);
                None
            }
        }
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Bytes of memory the table holds (its allocation, spare room included).
    pub fn memory_bytes(&self) -> usize {
        self.seen.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_costs_under_64_bytes_at_a_million_records() {
        let mut t = DedupTable::default();
        for i in 0..1_000_000u64 {
            let mut ptr = RecordPtr {
                flags: RecordPtr::FLAG_HASH_VALID,
                ..RecordPtr::default()
            };
            ptr.hash[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            ptr.hash[8..16].copy_from_slice(&i.to_le_bytes());
            t.insert(&ptr, 5, i);
        }
        assert_eq!(t.len(), 1_000_000);
        let per = t.memory_bytes() / t.len();
        assert!(per <= 64, "{per} bytes per entry");
    }
}
