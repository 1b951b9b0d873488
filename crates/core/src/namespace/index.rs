//! The namespace's index over directory entries: the slots of
//! [`gpufs_compute::index`] (a power-of-two array of dirent ids probed linearly from
//! `fmix32(name_hash)`, with [`EMPTY`] ending a chain and [`TOMBSTONE`] holding a removed
//! entry's place), kept here: inserts, removals, growth, and the slot ranges changed since
//! the GPU mirror last copied them. [`Namespace::lookup`](super::Namespace::lookup) and
//! the GPU's batched path lookup probe the same slots.

use gpufs_compute::index::{free_slot, home, probe, EMPTY, TOMBSTONE};
use gpufs_compute::view::DirtyRanges;

/// Smallest table.
const MIN_SLOTS: usize = 16;

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

    /// An index of ids `0..hashes.len()`, id `i` under `hashes[i]`, built in one pass
    /// over the slots: ids in home-slot order, each put at its home or just past the one
    /// before (every slot between is taken, as linear probing needs), so the table is
    /// written front to back instead of at random. Two ids with one hash for which
    /// `same_key` holds are refused (one of them is returned).
    pub fn bulk(hashes: &[u32], same_key: impl Fn(u32, u32) -> bool) -> Result<Self, u32> {
        debug_assert!(hashes.len() < TOMBSTONE as usize);
        let mut index = DirentIndex::with_capacity(hashes.len());
        let len = index.slots.len();
        // (home, id) pairs in home order: a radix sort, 11 bits of the home a pass, each
        // pass a sequential read and 2,048 sequential write streams.
        let mut order: Vec<u64> = hashes
            .iter()
            .enumerate()
            .map(|(id, &h)| (home(h, len) as u64) << 32 | id as u64)
            .collect();
        radix_sort_by_home(&mut order, len.trailing_zeros());
        // Equal keys share a hash, so a home: compare the ids of each home.
        let mut run = 0;
        while run < order.len() {
            let home_of = |x: u64| x >> 32;
            let end = run
                + order[run..]
                    .iter()
                    .take_while(|&&x| home_of(x) == home_of(order[run]))
                    .count();
            let ids = &order[run..end];
            for (k, &a) in ids.iter().enumerate() {
                let a = a as u32;
                for &c in &ids[k + 1..] {
                    let c = c as u32;
                    if hashes[a as usize] == hashes[c as usize] && same_key(a, c) {
                        return Err(c);
                    }
                }
            }
            run = end;
        }
        let mut wrapped = Vec::new();
        let mut next = 0usize;
        for &x in &order {
            let id = x as u32;
            let at = ((x >> 32) as usize).max(next);
            if at < len {
                index.slots[at] = id;
                next = at + 1;
            } else {
                wrapped.push((hashes[id as usize], id));
            }
        }
        index.live = order.len() - wrapped.len();
        for (hash, id) in wrapped {
            // Fewer ids than slots: a slot is free, found from the front.
            if let Some(i) = free_slot(&index.slots, hash) {
                index.slots[i] = id;
                index.live += 1;
            }
        }
        debug_assert_eq!(index.live, hashes.len());
        Ok(index)
    }

    /// Ids held.
    #[cfg(test)]
    fn live(&self) -> usize {
        self.live
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

    /// The first id along `hash`'s probe chain for which `is_it` holds.
    pub fn find(&self, hash: u32, is_it: impl FnMut(u32) -> bool) -> Option<u32> {
        probe(&self.slots, hash, is_it)
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
        // At most three quarters of the slots are taken: there is a free one.
        let i = loop {
            match free_slot(&self.slots, hash) {
                Some(i) => break i,
                None => self.rebuild(self.slots.len() * 2, &hash_of),
            }
        };
        if self.slots[i] == TOMBSTONE {
            self.tombstones -= 1;
        }
        self.slots[i] = id;
        self.live += 1;
        self.dirty.mark(i as u64, i as u64 + 1);
    }

    /// Removes `id`, found along `hash`'s chain; false when it is not there.
    pub fn remove(&mut self, hash: u32, id: u32) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = home(hash, self.slots.len());
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

    /// Every live id placed again in a table of `slots` slots, without tombstones.
    fn rebuild(&mut self, slots: usize, hash_of: &impl Fn(u32) -> u32) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots.max(MIN_SLOTS)]);
        for id in old.into_iter().filter(|&s| s < TOMBSTONE) {
            // A fresh table holds fewer ids than slots: a slot is always free.
            if let Some(i) = free_slot(&self.slots, hash_of(id)) {
                self.slots[i] = id;
            }
        }
        self.tombstones = 0;
        self.dirty.mark_all(self.slots.len() as u64);
    }
}

/// Sorts `(home << 32 | id)` values by home (`home_bits` wide), stably: least
/// significant digit first, 11 bits a pass.
fn radix_sort_by_home(values: &mut Vec<u64>, home_bits: u32) {
    const DIGIT: u32 = 11;
    let mut other = vec![0u64; values.len()];
    let mut shift = 32;
    while shift < 32 + home_bits {
        let mut counts = [0usize; 1 << DIGIT];
        let digit = |x: u64| ((x >> shift) & ((1 << DIGIT) - 1)) as usize;
        for &x in values.iter() {
            counts[digit(x)] += 1;
        }
        let mut at = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        for &x in values.iter() {
            let d = digit(x);
            other[counts[d]] = x;
            counts[d] += 1;
        }
        std::mem::swap(values, &mut other);
        shift += DIGIT;
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
                prop_assert_eq!(idx.live(), model.len());
            }
            for id in 0..200u32 {
                prop_assert_eq!(idx.find(h(id), |c| c == id).is_some(), model.contains_key(&id));
            }
        }

        #[test]
        fn built_in_bulk_finds_every_id_and_takes_inserts_after(
            hashes in proptest::collection::vec(any::<u32>(), 0..3000),
            few in any::<bool>(),
        ) {
            // Few distinct hashes (long chains) or any; some ids at the table's end wrap.
            let hashes: Vec<u32> = hashes.iter().map(|x| if few { x % 13 } else { *x }).collect();
            let mut idx = DirentIndex::bulk(&hashes, |_, _| false).unwrap();
            prop_assert_eq!(idx.live(), hashes.len());
            for (id, &hash) in hashes.iter().enumerate() {
                prop_assert_eq!(idx.find(hash, |c| c == id as u32), Some(id as u32));
            }
            let n = hashes.len() as u32;
            let hash_of = |id: u32| if id < n { hashes[id as usize] } else { id };
            idx.insert(n, n, hash_of);
            if let Some(&first) = hashes.first() {
                prop_assert!(idx.remove(first, 0));
                prop_assert_eq!(idx.find(first, |c| c == 0), None);
            }
            prop_assert_eq!(idx.find(n, |c| c == n), Some(n));
        }
    }

    #[test]
    fn bulk_refuses_two_ids_with_one_key() {
        let hashes = [5, 9, 5];
        assert_eq!(DirentIndex::bulk(&hashes, |a, b| a + b == 2).err(), Some(2));
        assert!(DirentIndex::bulk(&hashes, |_, _| false).is_ok());
    }
}
