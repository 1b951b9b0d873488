//! Every directory's full path, built once from the namespace arrays and kept by their
//! owner until a directory is made, removed or renamed: what full-path matching and path
//! output need per directory, in dense arrays laid out parents before children, so a
//! query reads them front to back instead of walking parent chains through the entry
//! table.
//!
//! Gives exactly what [`crate::kernels::path_build::path_of`] gives: a directory whose
//! chain is broken (a dead or missing entry, a loop) or deeper than
//! [`MAX_DEPTH`] has no path, and neither does an entry below it.

use std::borrow::Cow;

use crate::kernels::path_build::MAX_DEPTH;
use crate::view::NamespaceView;
use gpufs_format::ROOT_INO;

/// `slot_of` value of a directory whose path cannot be built.
const BROKEN: u32 = u32::MAX;
/// Longest path kept (as path building's directory table allows).
const MAX_PATH: usize = 1 << 24;

/// The directories with a buildable path, dense and in topological order (slot 0 is
/// the root; a directory's parent has a lower slot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirTree {
    /// Per inode number: 0 not a directory with a path (or not reached), [`BROKEN`],
    /// else its slot + 1.
    slot_of: Vec<u32>,
    ino: Vec<u32>,
    parent: Vec<u32>,
    depth: Vec<u16>,
    /// Path of slot `i` is `bytes[offsets[i]..offsets[i + 1]]` ("/a/b"; the root's is
    /// empty).
    offsets: Vec<usize>,
    bytes: Vec<u8>,
    /// Per slot, the last eight bytes of its path as a little-endian word, right-aligned
    /// (zeros before a shorter path): an end compare reads these dense words instead of
    /// one scattered cache line per path.
    last8: Vec<u64>,
    /// The slots of each slot's subdirectories: `children[child_start[s]..child_start[s
    /// + 1]]`, ascending.
    child_start: Vec<u32>,
    children: Vec<u32>,
}

impl DirTree {
    /// The tree of every directory `view` holds.
    pub fn build(view: &NamespaceView<'_>) -> DirTree {
        let n = view.dir_entry.len().max(ROOT_INO as usize + 1);
        let mut t = DirTree {
            slot_of: vec![0; n],
            ino: Vec::new(),
            parent: Vec::new(),
            depth: Vec::new(),
            offsets: vec![0],
            bytes: Vec::new(),
            last8: Vec::new(),
            child_start: Vec::new(),
            children: Vec::new(),
        };
        t.push(ROOT_INO, 0, 0, &[]);
        let mut chain = Vec::new();
        for dir in 0..view.dir_entry.len() {
            if view.entry_of_dir(dir as u32).is_some() {
                t.reach(view, dir as u32, &mut chain);
            }
        }
        t.link_children();
        t
    }

    /// Fills the children lists from the parent links (the root is nobody's child).
    fn link_children(&mut self) {
        let n = self.parent.len();
        let mut start = vec![0u32; n + 1];
        for &p in self.parent.iter().skip(1) {
            if let Some(c) = start.get_mut(p as usize + 1) {
                *c += 1;
            }
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut next = start.clone();
        let mut children = vec![0u32; n.saturating_sub(1)];
        for (s, &p) in self.parent.iter().enumerate().skip(1) {
            if let Some(at) = next.get_mut(p as usize) {
                if let Some(c) = children.get_mut(*at as usize) {
                    *c = s as u32;
                }
                *at += 1;
            }
        }
        self.child_start = start;
        self.children = children;
    }

    /// The slots of slot `s`'s subdirectories, ascending.
    pub fn children(&self, s: u32) -> &[u32] {
        let s = s as usize;
        match (self.child_start.get(s), self.child_start.get(s + 1)) {
            (Some(&a), Some(&b)) => self.children.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// `view`'s tree: the one its owner keeps, else built now.
    pub fn of<'a>(view: &NamespaceView<'a>) -> Cow<'a, DirTree> {
        match view.dirs {
            Some(t) => Cow::Borrowed(t),
            None => Cow::Owned(DirTree::build(view)),
        }
    }

    fn push(&mut self, ino: u32, parent: u32, depth: usize, tail: &[&[u8]]) -> u32 {
        let slot = self.ino.len() as u32;
        // Topological order: a directory's parent has a lower slot (the root is slot 0).
        debug_assert!(slot == 0 || parent < slot, "slot {slot} under {parent}");
        self.ino.push(ino);
        self.parent.push(parent);
        self.depth.push(depth as u16);
        for piece in tail {
            self.bytes.extend_from_slice(piece);
        }
        self.offsets.push(self.bytes.len());
        let from = self
            .bytes
            .len()
            .saturating_sub(8)
            .max(self.offsets[slot as usize]);
        let mut last = [0u8; 8];
        let tail = &self.bytes[from..];
        last[8 - tail.len()..].copy_from_slice(tail);
        self.last8.push(u64::from_le_bytes(last));
        if let Some(s) = self.slot_of.get_mut(ino as usize) {
            *s = slot + 1;
        }
        slot
    }

    /// Gives directory `dir` and the ancestors not reached yet their slots (or marks
    /// them broken): up the chain to a known directory or the root, then down again.
    fn reach(&mut self, view: &NamespaceView<'_>, dir: u32, chain: &mut Vec<(u32, u32)>) {
        if self.slot_of.get(dir as usize).is_none_or(|&s| s != 0) {
            return;
        }
        chain.clear();
        let mut cur = dir;
        // The slot the chain hangs from, None when it is broken.
        let mut above: Option<u32> = None;
        loop {
            match self.slot_of.get(cur as usize) {
                None | Some(&BROKEN) => break,
                Some(&0) => {}
                Some(&s) => {
                    above = Some(s - 1);
                    break;
                }
            }
            let entry = view
                .entry_of_dir(cur)
                .filter(|&e| view.dirents.get(e as usize).is_some_and(|d| d.ino != 0));
            let Some(e) = entry else {
                chain.push((cur, u32::MAX));
                break;
            };
            chain.push((cur, e));
            // Longer than there are directories: a loop, which no path leaves.
            if chain.len() > self.slot_of.len() {
                break;
            }
            cur = view.dirents[e as usize].parent;
        }
        while let Some((d, e)) = chain.pop() {
            above = match above {
                Some(up) if e != u32::MAX && self.depth_of(up) < MAX_DEPTH => {
                    let name = view.name_of(&view.dirents[e as usize]);
                    let len = self.path(up).len() + 1 + name.len();
                    if len >= MAX_PATH {
                        None
                    } else {
                        let (s, end) = (self.offsets[up as usize], self.offsets[up as usize + 1]);
                        self.bytes.extend_from_within(s..end);
                        Some(self.push(d, up, self.depth_of(up) + 1, &[b"/", name]))
                    }
                }
                _ => None,
            };
            if above.is_none() {
                if let Some(s) = self.slot_of.get_mut(d as usize) {
                    *s = BROKEN;
                }
            }
        }
    }

    /// Directories with a path, the root included.
    pub fn len(&self) -> usize {
        self.ino.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ino.is_empty()
    }

    /// The slot of directory `ino`, when it has a path.
    pub fn slot(&self, ino: u32) -> Option<u32> {
        match self.slot_of.get(ino as usize) {
            Some(&s) if s != 0 && s != BROKEN => Some(s - 1),
            _ => None,
        }
    }

    /// The path of slot `s` ("/a/b"; the root's is empty).
    pub fn path(&self, s: u32) -> &[u8] {
        let s = s as usize;
        match (self.offsets.get(s), self.offsets.get(s + 1)) {
            (Some(&a), Some(&b)) => &self.bytes[a..b],
            _ => &[],
        }
    }

    /// Every path end to end, and where each starts: slot `s`'s path is
    /// `bytes[offsets[s]..offsets[s + 1]]`, so one literal search over `bytes` finds the
    /// directories whose paths hold the literal.
    pub fn arena(&self) -> (&[u8], &[usize]) {
        (&self.bytes, &self.offsets)
    }

    /// The name of slot `s` in its parent (the root's is empty).
    pub fn name(&self, s: u32) -> &[u8] {
        if s == 0 {
            return &[];
        }
        let up = self.parent(s);
        let skip = self.path(up).len() + 1;
        self.path(s).get(skip..).unwrap_or(&[])
    }

    /// The slots whose paths end with `end` (ASCII case ignored with `fold`),
    /// ascending. One pass over the dense words of the paths' last eight bytes; the
    /// paths themselves are read only where `end` is longer than eight bytes or holds a
    /// NUL (a shorter path's padding is zeros).
    pub fn paths_ending_with(&self, end: &[u8], fold: bool) -> Vec<u32> {
        let k = end.len().min(8);
        let mut want = [0u8; 8];
        want[8 - k..].copy_from_slice(&end[end.len() - k..]);
        let mask = if k == 0 { 0 } else { u64::MAX << (8 * (8 - k)) };
        let want = u64::from_le_bytes(want);
        let want = if fold { ascii_lower(want) } else { want };
        let hit = |word: u64| {
            let word = if fold { ascii_lower(word) } else { word };
            (word ^ want) & mask == 0
        };
        let exact = end.len() <= 8 && !end.contains(&0);
        let mut out = Vec::new();
        // Words a chunk: tested together (no branch per word), then one by one in the
        // rare chunk with a hit.
        const CHUNK: usize = 16;
        for (c, chunk) in self.last8.chunks(CHUNK).enumerate() {
            if !chunk.iter().fold(false, |any, &w| any | hit(w)) {
                continue;
            }
            for (i, &w) in chunk.iter().enumerate() {
                let s = (c * CHUNK + i) as u32;
                if hit(w) && (exact || ends_with(self.path(s), end, fold)) {
                    out.push(s);
                }
            }
        }
        out
    }

    pub fn parent(&self, s: u32) -> u32 {
        self.parent.get(s as usize).copied().unwrap_or(0)
    }

    pub fn ino(&self, s: u32) -> u32 {
        self.ino.get(s as usize).copied().unwrap_or(0)
    }

    /// Entries on slot `s`'s chain to the root (0 for the root).
    pub fn depth_of(&self, s: u32) -> usize {
        self.depth.get(s as usize).map_or(0, |&d| usize::from(d))
    }

    /// The slot of directory `ino` when entries in it have a path (it has one, and
    /// an entry in it is not deeper than [`MAX_DEPTH`]).
    pub fn parent_slot(&self, ino: u32) -> Option<u32> {
        self.slot(ino).filter(|&s| self.depth_of(s) < MAX_DEPTH)
    }

    /// Appends the path of entry `id` to `out`; false (nothing appended) when it has
    /// none.
    pub fn append_entry(&self, view: &NamespaceView<'_>, id: u32, out: &mut Vec<u8>) -> bool {
        let Some(d) = view.dirents.get(id as usize) else {
            return false;
        };
        if d.ino == 0 {
            return false;
        }
        let Some(s) = self.parent_slot(d.parent) else {
            return false;
        };
        out.extend_from_slice(self.path(s));
        out.push(b'/');
        out.extend_from_slice(view.name_of(d));
        true
    }

    /// Heap bytes held, for the owner's memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.slot_of.capacity() * 4
            + self.ino.capacity() * 4
            + self.parent.capacity() * 4
            + self.depth.capacity() * 2
            + self.offsets.capacity() * std::mem::size_of::<usize>()
            + self.bytes.capacity()
            + self.last8.capacity() * 8
            + (self.child_start.capacity() + self.children.capacity()) * 4
    }
}

/// Does `path` end with `end` (ASCII case ignored with `fold`)?
fn ends_with(path: &[u8], end: &[u8], fold: bool) -> bool {
    path.len() >= end.len()
        && path
            .iter()
            .rev()
            .zip(end.iter().rev())
            .all(|(&x, &y)| x == y || (fold && x.eq_ignore_ascii_case(&y)))
}

/// `x` with each ASCII upper-case byte lowered, all eight at once.
pub(crate) fn ascii_lower(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = x & LOW7;
    // The high bit of each byte: at least 'A', and above 'Z'; bytes >= 0x80 are left.
    let from_a = low + 0x3f3f_3f3f_3f3f_3f3f;
    let past_z = low + 0x2525_2525_2525_2525;
    let upper = from_a & !past_z & !x & HIGH;
    x | (upper >> 2)
}

#[cfg(test)]
mod tests {
    use super::{ascii_lower, DirTree};

    /// A tree of `paths` (each parent listed before its children), slot by slot.
    fn tree_of(paths: &[&[u8]]) -> DirTree {
        let mut t = DirTree {
            offsets: vec![0],
            ..Default::default()
        };
        t.push(1, 0, 0, &[]);
        for (i, &p) in paths.iter().enumerate() {
            let cut = p.iter().rposition(|&b| b == b'/').unwrap_or(0);
            let up = (0..t.len() as u32)
                .find(|&s| t.path(s) == &p[..cut])
                .expect("parent listed first");
            let (a, b) = (t.offsets[up as usize], t.offsets[up as usize + 1]);
            t.bytes.extend_from_within(a..b);
            t.push(i as u32 + 2, up, t.depth_of(up) + 1, &[&p[cut..]]);
        }
        t.link_children();
        t
    }

    #[test]
    fn paths_ending_with_agrees_with_a_plain_end_compare() {
        let paths: [&[u8]; 8] = [
            b"/a",
            b"/a/photos",
            b"/a/photos/x",
            b"/PHOTOS",
            b"/a/b\0c",
            b"/a/long-name-photos",
            b"/a/long-name-photos/photos",
            b"/z",
        ];
        let t = tree_of(&paths);
        assert_eq!(t.children(0), &[1, 4, 8]);
        assert_eq!(t.children(2), &[3]);
        // Among them: ends whose last eight bytes agree with a path they do not end
        // (longer than a word, or a NUL against a short path's zero padding).
        let ends: [&[u8]; 10] = [
            b"Xname-photos",
            b"\0/z",
            b"",
            b"s",
            b"photos",
            b"/photos",
            b"-name-photos",
            b"b\0c",
            b"/a/photos/x",
            b"x/a",
        ];
        for end in ends {
            for fold in [false, true] {
                let want: Vec<u32> = (0..t.len() as u32)
                    .filter(|&s| {
                        let p = t.path(s);
                        p.len() >= end.len()
                            && p[p.len() - end.len()..]
                                .iter()
                                .zip(end)
                                .all(|(x, y)| x == y || (fold && x.eq_ignore_ascii_case(y)))
                    })
                    .collect();
                assert_eq!(t.paths_ending_with(end, fold), want, "{end:?} fold {fold}");
            }
        }
        // Case is ignored only when asked.
        assert_eq!(t.paths_ending_with(b"photos", true), vec![2, 4, 6, 7]);
        assert_eq!(t.paths_ending_with(b"photos", false), vec![2, 6, 7]);
    }

    #[test]
    fn ascii_lower_lowers_each_byte_as_one_byte_would() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'Q', 0xC3, b'z', b'@', b'[', b'`', b'{', 0x7f];
                word[at] = b;
                let want: Vec<u8> = word.iter().map(u8::to_ascii_lowercase).collect();
                let got = ascii_lower(u64::from_le_bytes(word)).to_le_bytes();
                assert_eq!(got.to_vec(), want, "byte {b:#x} at {at}");
            }
        }
    }
}
