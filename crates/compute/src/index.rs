//! The flat open-addressing index over directory entries: a power-of-two array of slots,
//! each a dirent id, [`EMPTY`] or [`TOMBSTONE`], probed linearly from `fmix32(name_hash)`.
//! The core's lookup and the GPU's batched path lookup probe these same slots; the
//! caller compares the candidate dirent's parent and name.

use crate::view::DirtyRanges;

/// A slot that never held an entry: probing stops here.
pub const EMPTY: u32 = u32::MAX;
/// A slot whose entry was removed: probing goes on past it.
pub const TOMBSTONE: u32 = u32::MAX - 1;
/// Smallest table.
const MIN_SLOTS: usize = 16;

/// MurmurHash3's 32-bit finalizer: spreads `name_hash` over the slot bits. The WGSL
/// kernels compute the same.
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[derive(Clone, Debug)]
pub struct DirentIndex {
    slots: Vec<u32>,
    live: usize,
    tombstones: usize,
    dirty: DirtyRanges,
}

impl Default for DirentIndex {
    fn default() -> Self {
        DirentIndex::with_capacity(0)
    }
}

impl DirentIndex {
    /// An empty index with room for `entries` before it grows.
    pub fn with_capacity(entries: usize) -> Self {
        let slots = (entries.saturating_mul(4) / 3 + 1)
            .max(MIN_SLOTS)
            .next_power_of_two();
        let mut dirty = DirtyRanges::default();
        dirty.mark_all(slots as u64);
        DirentIndex {
            slots: vec![EMPTY; slots],
            live: 0,
            tombstones: 0,
            dirty,
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The slot array (what the GPU mirror uploads).
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// Bytes the slot array occupies.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4
    }

    /// Slot ranges changed since [`DirentIndex::take_dirty`] was last called.
    pub fn take_dirty(&mut self) -> DirtyRanges {
        std::mem::take(&mut self.dirty)
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The first id along `hash`'s probe chain for which `is_it` holds.
    pub fn find(&self, hash: u32, mut is_it: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.mask();
        let mut i = fmix32(hash) as usize & mask;
        for _ in 0..self.slots.len() {
            match self.slots[i] {
                EMPTY => return None,
                TOMBSTONE => {}
                id if is_it(id) => return Some(id),
                _ => {}
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Adds `id` under `hash`. `hash_of` gives the hash of any id already present, for
    /// rehashing when the table grows.
    pub fn insert(&mut self, hash: u32, id: u32, hash_of: impl Fn(u32) -> u32) {
        debug_assert!(id < TOMBSTONE);
        if (self.live + self.tombstones + 1) * 4 > self.slots.len() * 3 {
            let want = if (self.live + 1) * 2 > self.slots.len() {
                self.slots.len() * 2
            } else {
                self.slots.len()
            };
            self.rebuild(want, &hash_of);
        }
        let mask = self.mask();
        let mut i = fmix32(hash) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => break,
                TOMBSTONE => {
                    self.tombstones -= 1;
                    break;
                }
                _ => i = (i + 1) & mask,
            }
        }
        self.slots[i] = id;
        self.live += 1;
        self.dirty.mark(i as u64, i as u64 + 1);
    }

    /// Removes `id`, found along `hash`'s chain; false when it is not there.
    pub fn remove(&mut self, hash: u32, id: u32) -> bool {
        let mask = self.mask();
        let mut i = fmix32(hash) as usize & mask;
        for _ in 0..self.slots.len() {
            match self.slots[i] {
                EMPTY => return false,
                s if s == id => {
                    // A slot followed by EMPTY can become EMPTY itself: no chain passes it.
                    let next = self.slots[(i + 1) & mask];
                    if next == EMPTY {
                        self.slots[i] = EMPTY;
                    } else {
                        self.slots[i] = TOMBSTONE;
                        self.tombstones += 1;
                    }
                    self.live -= 1;
                    self.dirty.mark(i as u64, i as u64 + 1);
                    return true;
                }
                _ => i = (i + 1) & mask,
            }
        }
        false
    }

    fn rebuild(&mut self, slots: usize, hash_of: &impl Fn(u32) -> u32) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots.max(MIN_SLOTS)]);
        let mask = self.mask();
        for id in old.into_iter().filter(|&s| s < TOMBSTONE) {
            let mut i = fmix32(hash_of(id)) as usize & mask;
            while self.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = id;
        }
        self.tombstones = 0;
        self.dirty.mark_all(self.slots.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn h(id: u32) -> u32 {
        // Few distinct hashes: long chains, collisions everywhere.
        id % 7
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..200), 0..2000)) {
            let mut idx = DirentIndex::default();
            let mut model: HashMap<u32, ()> = HashMap::new();
            for (add, id) in ops {
                if add && !model.contains_key(&id) {
                    idx.insert(h(id), id, h);
                    model.insert(id, ());
                } else if !add {
                    prop_assert_eq!(idx.remove(h(id), id), model.remove(&id).is_some());
                }
                prop_assert_eq!(idx.len(), model.len());
            }
            for id in 0..200u32 {
                prop_assert_eq!(idx.find(h(id), |c| c == id).is_some(), model.contains_key(&id));
            }
        }
    }
}
