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
        };
        t.push(ROOT_INO, 0, 0, &[]);
        let mut chain = Vec::new();
        for dir in 0..view.dir_entry.len() {
            if view.entry_of_dir(dir as u32).is_some() {
                t.reach(view, dir as u32, &mut chain);
            }
        }
        t
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
        self.ino.push(ino);
        self.parent.push(parent);
        self.depth.push(depth as u16);
        for piece in tail {
            self.bytes.extend_from_slice(piece);
        }
        self.offsets.push(self.bytes.len());
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
    }
}
