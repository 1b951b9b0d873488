//! How the dirent index is laid out, as the kernels read it: a power-of-two array of
//! slots, each a dirent id, [`EMPTY`] or [`TOMBSTONE`]; an id with name hash `h` lies on
//! the chain that starts at slot `fmix32(h) & (len - 1)` and goes on linearly, before the
//! chain's first [`EMPTY`] slot. The core's lookup, the CPU twin and the WGSL of the
//! batched path lookup all [`probe`] the same slots; the caller compares the candidate
//! dirent's parent and name. The core keeps the slots (inserts, removals, growth:
//! `gpufs_core`'s `namespace::index`).

/// A slot that never held an entry: probing stops here.
pub const EMPTY: u32 = u32::MAX;
/// A slot whose entry was removed: probing goes on past it.
pub const TOMBSTONE: u32 = u32::MAX - 1;

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

/// The first slot of `hash`'s chain in a table of `slots` slots (a power of two).
pub fn home(hash: u32, slots: usize) -> usize {
    debug_assert!(slots.is_power_of_two(), "{slots} index slots");
    fmix32(hash) as usize & (slots - 1)
}

/// The first id along `hash`'s chain for which `is_it` holds; `None` at the chain's end
/// (or for a table that is empty or not a power of two long).
pub fn probe(slots: &[u32], hash: u32, mut is_it: impl FnMut(u32) -> bool) -> Option<u32> {
    if !slots.len().is_power_of_two() {
        return None;
    }
    let mask = slots.len() - 1;
    let mut i = home(hash, slots.len());
    for _ in 0..slots.len() {
        match slots[i] {
            EMPTY => return None,
            TOMBSTONE => {}
            id if is_it(id) => return Some(id),
            _ => {}
        }
        i = (i + 1) & mask;
    }
    None
}

/// Where an id with `hash` goes: the first [`EMPTY`] or [`TOMBSTONE`] slot of its chain
/// (`None` when the table has neither).
pub fn free_slot(slots: &[u32], hash: u32) -> Option<usize> {
    if !slots.len().is_power_of_two() {
        return None;
    }
    let mask = slots.len() - 1;
    let start = home(hash, slots.len());
    (0..slots.len())
        .map(|k| (start + k) & mask)
        .find(|&i| slots[i] == EMPTY || slots[i] == TOMBSTONE)
}
