//! What the kernels read, borrowed from the namespace that owns it: the flat arrays, the
//! owner of each name in the arena, one directory's entries as its listing holds them
//! (with each entry's head), and the ranges of the arrays that changed since the GPU
//! mirror last saw them. The core keeps all of it; nothing here changes a namespace.

use crate::dir_tree::DirTree;
use gpufs_format::{DirentRecord, InodeRecord};

/// Borrowed namespace arrays. `index` is the dirent index's slots (laid out as
/// [`crate::index`] says);
/// `allocated[ino]` the bytes inode `ino` occupies on disk (may be empty: zeros);
/// `dir_entry[ino]` the id of the live entry naming directory `ino` ([`NO_ENTRY`] for the
/// root, non-directories and free slots; may be shorter than the inode table).
#[derive(Clone, Copy, Debug, Default)]
pub struct NamespaceView<'a> {
    pub dirents: &'a [DirentRecord],
    pub names: &'a [u8],
    pub inodes: &'a [InodeRecord],
    pub index: &'a [u32],
    pub allocated: &'a [u64],
    pub dir_entry: &'a [u32],
    /// Which entry owns the name at each arena offset, for scans of the whole arena;
    /// `None` where the namespace keeps no such map (scans then go entry by entry).
    pub owners: Option<OwnersView<'a>>,
    /// Every directory's path, when the owner keeps them ([`DirTree::of`] builds them
    /// otherwise); `None` also whenever a directory changed since they were built.
    pub dirs: Option<&'a DirTree>,
}

/// The owner of each name in the arena, in arena order (the namespace keeps it as names
/// are appended): the name of `lens[k]` bytes appended at `offsets[k]` belonged to entry
/// `ids[k]`, and `offsets` ascends. An entry removed or renamed since leaves a stale
/// pair, recognised because the entry is dead or its `name_offset` is no longer
/// `offsets[k]`; a compaction of the arena rebuilds the map.
#[derive(Clone, Copy, Debug)]
pub struct OwnersView<'a> {
    pub offsets: &'a [u64],
    pub ids: &'a [u32],
    pub lens: &'a [u8],
}

impl OwnersView<'_> {
    pub fn len(&self) -> usize {
        self.ids.len().min(self.offsets.len()).min(self.lens.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the owner of a namespace can list without a pass over the entry table: the
/// entries of one directory. Full-path matching uses it to visit only the directories
/// whose paths can lead to a match.
pub trait DirListing: Sync {
    /// Entries in directory `dir`.
    fn entry_count(&self, dir: u32) -> usize;
    /// Directory `dir`'s entries, in its listing's order.
    fn entries(&self, dir: u32) -> EntryList<'_>;
}

/// One directory's entries as its owner lists them: `ids[i]` an entry's id
/// ([`NO_ENTRY`] where one was removed) and `heads[i]` its [`entry_head`].
#[derive(Clone, Copy, Debug, Default)]
pub struct EntryList<'a> {
    pub ids: &'a [u32],
    pub heads: &'a [u64],
}

/// Name bytes an [`entry_head`] keeps.
pub const HEAD_BYTES: usize = 7;

/// An entry's head, kept in its directory's list: the first [`HEAD_BYTES`] bytes of
/// its name in the low bytes of a little-endian word (zeros after a shorter name) and
/// its kind in the top byte. A visit of a directory's entries decides most of them from
/// these dense words without reading their records or names.
pub fn entry_head(name: &[u8], kind: u8) -> u64 {
    let mut b = [0u8; 8];
    let n = name.len().min(HEAD_BYTES);
    b[..n].copy_from_slice(&name[..n]);
    b[7] = kind;
    u64::from_le_bytes(b)
}

/// The kind an [`entry_head`] holds.
pub fn head_kind(head: u64) -> u8 {
    (head >> 56) as u8
}

/// `dir_entry` value of an inode no live entry names as a directory.
pub const NO_ENTRY: u32 = u32::MAX;

impl NamespaceView<'_> {
    /// The name bytes of dirent `d`, or an empty slice when its range is out of bounds.
    pub fn name_of(&self, d: &DirentRecord) -> &[u8] {
        let start = usize::try_from(d.name_offset).unwrap_or(usize::MAX);
        start
            .checked_add(usize::from(d.name_len))
            .and_then(|end| self.names.get(start..end))
            .unwrap_or(&[])
    }

    /// The entry naming directory `ino`, if any.
    pub fn entry_of_dir(&self, ino: u32) -> Option<u32> {
        self.dir_entry
            .get(ino as usize)
            .copied()
            .filter(|&e| e != NO_ENTRY && (e as usize) < self.dirents.len())
    }
}

/// Element ranges `[start, end)` that changed, merged when they touch or overlap, and
/// collapsed into one covering range past [`DirtyRanges::MAX_RANGES`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirtyRanges {
    ranges: Vec<(u64, u64)>,
}

impl DirtyRanges {
    pub const MAX_RANGES: usize = 256;

    /// Marks `[start, end)` changed.
    pub fn mark(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Fast path: extends the last range (appends and in-place updates in order).
        if let Some(last) = self.ranges.last_mut() {
            if start <= last.1 && end >= last.0 {
                last.0 = last.0.min(start);
                last.1 = last.1.max(end);
                return;
            }
        }
        self.ranges.push((start, end));
        if self.ranges.len() > Self::MAX_RANGES {
            self.normalize();
            if self.ranges.len() > Self::MAX_RANGES / 2 {
                let lo = self.ranges.first().map_or(0, |r| r.0);
                let hi = self.ranges.last().map_or(0, |r| r.1);
                self.ranges = vec![(lo, hi)];
            }
        }
    }

    /// Marks everything `[0, len)`.
    pub fn mark_all(&mut self, len: u64) {
        self.ranges = vec![(0, len)];
    }

    /// Sorted, merged ranges.
    pub fn normalize(&mut self) {
        self.ranges.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for &(s, e) in &self.ranges {
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        self.ranges = out;
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

/// What changed in each array since the mirror was last updated, in elements of that
/// array (dirents, name bytes, inodes, index slots, allocated entries).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceDirty {
    pub dirents: DirtyRanges,
    pub names: DirtyRanges,
    pub inodes: DirtyRanges,
    pub index: DirtyRanges,
    pub allocated: DirtyRanges,
    pub dir_entry: DirtyRanges,
}

impl NamespaceDirty {
    pub fn is_empty(&self) -> bool {
        self.dirents.is_empty()
            && self.names.is_empty()
            && self.inodes.is_empty()
            && self.index.is_empty()
            && self.allocated.is_empty()
            && self.dir_entry.is_empty()
    }

    pub fn clear(&mut self) {
        *self = NamespaceDirty::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_collapse() {
        let mut d = DirtyRanges::default();
        d.mark(10, 20);
        d.mark(20, 30);
        d.mark(5, 6);
        d.mark(0, 0);
        d.normalize();
        assert_eq!(d.ranges(), &[(5, 6), (10, 30)]);
        let mut many = DirtyRanges::default();
        for i in 0..1000u64 {
            many.mark(i * 10, i * 10 + 1);
        }
        assert!(many.ranges().len() <= DirtyRanges::MAX_RANGES + 1);
        many.normalize();
        let lo = many.ranges()[0].0;
        let hi = many.ranges().last().map(|r| r.1);
        assert_eq!(lo, 0);
        assert_eq!(hi, Some(9991));
    }
}
