//! Which entry owns each name in the arena, kept as names are appended, for the kernels'
//! scans of the whole arena ([`gpufs_compute::view::OwnersView`] is what they read).

use gpufs_compute::view::OwnersView;

/// The owner of each name in the arena, in arena order: the name of `lens[k]` bytes
/// appended at `offsets[k]` belonged to entry `ids[k]`. Names are only ever appended,
/// so `offsets` ascends. An entry removed or renamed since leaves a stale pair, recognised
/// because the entry is dead or its `name_offset` is no longer `offsets[k]`; a compaction
/// of the arena rebuilds the map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameOwners {
    offsets: Vec<u64>,
    ids: Vec<u32>,
    /// Bytes of each name (a name is at most 255), so a scan can look at every name's
    /// own bytes without reading its entry.
    lens: Vec<u8>,
}

impl NameOwners {
    /// Records that entry `id`'s name of `len` bytes was appended at `offset` (after
    /// every earlier one).
    pub fn push(&mut self, offset: u64, id: u32, len: u8) {
        debug_assert!(self.offsets.last().is_none_or(|&o| o <= offset));
        self.offsets.push(offset);
        self.ids.push(id);
        self.lens.push(len);
    }

    pub fn clear(&mut self) {
        self.offsets.clear();
        self.ids.clear();
        self.lens.clear();
    }

    pub fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * 8 + self.ids.capacity() * 4 + self.lens.capacity()
    }

    /// The map as borrowed slices, for a [`gpufs_compute::view::NamespaceView`].
    pub fn view(&self) -> OwnersView<'_> {
        OwnersView {
            offsets: &self.offsets,
            ids: &self.ids,
            lens: &self.lens,
        }
    }
}
