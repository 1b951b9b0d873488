//! Full-path reconstruction: for a set of entry ids, the path of each from the root
//! ("/" + names joined by "/"), by walking parent chains through `dir_entry`. The CPU
//! twin of kernels/path_build.wgsl. An entry whose chain is broken (dead entry, missing
//! directory entry, deeper than [`MAX_DEPTH`]) gets an empty path on both backends.

use rayon::prelude::*;

use crate::dir_tree::DirTree;
use crate::view::NamespaceView;
use gpufs_format::DirentRecord;

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub use gpu::gpu;

pub const NAME: &str = "path_build";

/// Longest parent chain followed.
pub const MAX_DEPTH: usize = 4096;

/// Paths packed end to end: path i is `bytes[offsets[i]..offsets[i + 1]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathList {
    pub bytes: Vec<u8>,
    pub offsets: Vec<usize>,
}

impl PathList {
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Path `i` (empty when its chain is broken).
    pub fn get(&self, i: usize) -> &[u8] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) => &self.bytes[s..e],
            _ => &[],
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// Bytes of the path of `first` ("/" + names joined by "/"), or 0 when its chain is
/// broken: a dead or missing entry, or deeper than [`MAX_DEPTH`].
fn path_len(view: &NamespaceView<'_>, first: u32) -> usize {
    let mut e = first;
    let mut total = 0;
    for _ in 0..MAX_DEPTH {
        let Some(d) = view.dirents.get(e as usize) else {
            return 0;
        };
        if d.ino == 0 {
            return 0;
        }
        total += usize::from(d.name_len) + 1;
        if d.parent == gpufs_format::ROOT_INO {
            return total;
        }
        match view.entry_of_dir(d.parent) {
            Some(up) => e = up,
            None => return 0,
        }
    }
    0
}

/// The path of one entry, appended to `buf`: measured first, then written from its
/// last byte back, as the kernel does, so nothing is allocated per path.
pub fn path_of(view: &NamespaceView<'_>, id: u32, buf: &mut Vec<u8>) {
    let len = path_len(view, id);
    if len == 0 {
        return;
    }
    let start = buf.len();
    buf.resize(start + len, 0);
    let mut pos = start + len;
    let mut e = id;
    while pos > start {
        let d = &view.dirents[e as usize];
        let name = view.name_of(d);
        pos -= name.len();
        buf[pos..pos + name.len()].copy_from_slice(name);
        pos -= 1;
        buf[pos] = b'/';
        match view.entry_of_dir(d.parent) {
            Some(up) if pos > start => e = up,
            _ => break,
        }
    }
}

/// The paths of the directories one call needs, each built once from its parent's
/// (most results share directories, so a path then costs one name copy instead of a
/// walk up its chain), shared read-only by every thread of the call. Gives exactly what
/// [`path_of`] gives: a broken chain or one deeper than [`MAX_DEPTH`] is an empty path.
struct DirTable {
    /// Per directory inode: 0 not built; [`BROKEN`]; else `start << LEN_BITS | len`, + 1.
    slot: Vec<u64>,
    /// Per directory inode: entries on its chain to the root (valid where built).
    depth: Vec<u16>,
    bytes: Vec<u8>,
}

const BROKEN: u64 = u64::MAX;
const LEN_BITS: u32 = 24;

/// Where one directory's path lies in [`DirTable::bytes`], and its depth.
#[derive(Clone, Copy)]
struct DirPath {
    start: usize,
    len: usize,
    depth: usize,
}

impl DirTable {
    /// The table for the parents of `ids`, built in one pass.
    fn for_entries(view: &NamespaceView<'_>, ids: &[u32]) -> DirTable {
        // Zeroed by the allocator: pages are touched only for the directories used.
        let n = view
            .dir_entry
            .len()
            .max(gpufs_format::ROOT_INO as usize + 1);
        let mut t = DirTable {
            slot: vec![0; n],
            depth: vec![0; n],
            bytes: Vec::new(),
        };
        let mut chain = Vec::new();
        for &id in ids {
            if let Some(d) = view.dirents.get(id as usize) {
                if d.ino != 0 && d.parent != gpufs_format::ROOT_INO {
                    t.build(view, d.parent, &mut chain);
                }
            }
        }
        t
    }

    /// Builds directory `dir`'s path and those of its ancestors not built yet: up the
    /// chain to a directory already known (or the root), then down again.
    fn build(&mut self, view: &NamespaceView<'_>, dir: u32, chain: &mut Vec<(u32, u32)>) {
        if self.slot.get(dir as usize).is_none_or(|&s| s != 0) {
            return;
        }
        let below = self.climb(view, dir, chain);
        self.descend(view, below, chain);
    }

    /// Pushes onto `chain` (after clearing it) each directory from `dir` up that is not
    /// built yet, with the entry naming it (`u32::MAX`: none, the chain is broken there);
    /// returns the path of the directory the chain hangs from, `None` when it is broken.
    fn climb(
        &self,
        view: &NamespaceView<'_>,
        dir: u32,
        chain: &mut Vec<(u32, u32)>,
    ) -> Option<DirPath> {
        chain.clear();
        let mut cur = dir;
        loop {
            if cur == gpufs_format::ROOT_INO {
                return Some(DirPath {
                    start: 0,
                    len: 0,
                    depth: 0,
                });
            }
            match self.slot.get(cur as usize) {
                None => return None,
                Some(&0) => {}
                Some(_) => return self.get(cur),
            }
            let entry = view
                .entry_of_dir(cur)
                .filter(|&e| view.dirents.get(e as usize).is_some_and(|d| d.ino != 0));
            let Some(e) = entry else {
                chain.push((cur, u32::MAX));
                return None;
            };
            chain.push((cur, e));
            // Longer than there are directories: a cycle, which no path leaves. (A
            // chain merely deeper than MAX_DEPTH is built; its depth rules it out.)
            if chain.len() > self.slot.len() {
                return None;
            }
            cur = view.dirents[e as usize].parent;
        }
    }

    /// Builds the paths of `chain`'s directories, last (highest) first, below `below`;
    /// a directory below a broken one is broken too.
    fn descend(
        &mut self,
        view: &NamespaceView<'_>,
        mut below: Option<DirPath>,
        chain: &mut Vec<(u32, u32)>,
    ) {
        while let Some((d, e)) = chain.pop() {
            below = match below {
                Some(up) if e != u32::MAX && up.depth < MAX_DEPTH => {
                    let name = view.name_of(&view.dirents[e as usize]);
                    let start = self.bytes.len();
                    self.bytes.extend_from_within(up.start..up.start + up.len);
                    self.bytes.push(b'/');
                    self.bytes.extend_from_slice(name);
                    let len = self.bytes.len() - start;
                    if len >= 1 << LEN_BITS {
                        None
                    } else {
                        Some(DirPath {
                            start,
                            len,
                            depth: up.depth + 1,
                        })
                    }
                }
                _ => None,
            };
            if let Some(slot) = self.slot.get_mut(d as usize) {
                *slot = match below {
                    Some(p) => ((p.start as u64) << LEN_BITS | p.len as u64) + 1,
                    None => BROKEN,
                };
            }
            if let (Some(p), Some(depth)) = (below, self.depth.get_mut(d as usize)) {
                *depth = p.depth as u16;
            }
        }
    }

    /// The built path of directory `dir` (the root: empty, depth 0); `None` when its
    /// chain is broken or it was not built.
    fn get(&self, dir: u32) -> Option<DirPath> {
        if dir == gpufs_format::ROOT_INO {
            return Some(DirPath {
                start: 0,
                len: 0,
                depth: 0,
            });
        }
        let s = *self.slot.get(dir as usize)?;
        if s == 0 || s == BROKEN {
            return None;
        }
        let v = s - 1;
        Some(DirPath {
            start: (v >> LEN_BITS) as usize,
            len: (v & ((1 << LEN_BITS) - 1)) as usize,
            depth: usize::from(self.depth[dir as usize]),
        })
    }
}

/// What the parallel builders take directory paths from: the namespace owner's
/// [`DirTree`] when it keeps one, else a [`DirTable`] built for this call.
trait DirPaths: Sync {
    /// The path of directory `dir`, when its entries have paths (it has one, and they
    /// are within [`MAX_DEPTH`]).
    fn dir_path(&self, dir: u32) -> Option<&[u8]>;

    /// Appends the path of entry `id` to `out`; false (nothing appended) when it has
    /// none.
    fn append(&self, view: &NamespaceView<'_>, id: u32, out: &mut Vec<u8>) -> bool {
        let Some(d) = view.dirents.get(id as usize).filter(|d| d.ino != 0) else {
            return false;
        };
        let Some(dir) = self.dir_path(d.parent) else {
            return false;
        };
        out.extend_from_slice(dir);
        out.push(b'/');
        out.extend_from_slice(view.name_of(d));
        true
    }
}

impl DirPaths for DirTable {
    fn dir_path(&self, dir: u32) -> Option<&[u8]> {
        self.get(dir)
            .filter(|p| p.depth < MAX_DEPTH)
            .and_then(|p| self.bytes.get(p.start..p.start + p.len))
    }
}

impl DirPaths for DirTree {
    fn dir_path(&self, dir: u32) -> Option<&[u8]> {
        self.parent_slot(dir).map(|s| self.path(s))
    }
}

/// Runs `f` with the directory paths of `view` for `ids`.
fn with_dir_paths<R>(
    view: &NamespaceView<'_>,
    ids: &[u32],
    f: impl FnOnce(&dyn DirPaths) -> R,
) -> R {
    match view.dirs {
        Some(tree) => f(tree),
        None => f(&DirTable::for_entries(view, ids)),
    }
}

/// Entries per piece of work of the parallel path builders.
const PIECE: usize = 16_384;

/// CPU twin on every core.
pub fn cpu(view: &NamespaceView<'_>, ids: &[u32]) -> PathList {
    with_dir_paths(view, ids, |table| cpu_with(view, ids, table))
}

fn cpu_with(view: &NamespaceView<'_>, ids: &[u32], table: &dyn DirPaths) -> PathList {
    let parts: Vec<(Vec<u8>, Vec<usize>)> = ids
        .par_chunks(PIECE)
        .map(|chunk| {
            let mut bytes = Vec::with_capacity(chunk.len() * 48);
            let mut lens = Vec::with_capacity(chunk.len());
            for &id in chunk {
                let before = bytes.len();
                table.append(view, id, &mut bytes);
                lens.push(bytes.len() - before);
            }
            (bytes, lens)
        })
        .collect();
    let mut list = PathList {
        bytes: Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum()),
        offsets: Vec::with_capacity(ids.len() + 1),
    };
    list.offsets.push(0);
    for (bytes, lens) in parts {
        for l in lens {
            let last = list.offsets.last().copied().unwrap_or(0);
            list.offsets.push(last + l);
        }
        list.bytes.extend_from_slice(&bytes);
    }
    list
}

/// How [`cpu_joined`] writes each path: `prefix`, the path, then `end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathFormat {
    pub prefix: Vec<u8>,
    pub end: u8,
}

/// The paths of `ids` as one text, `format.prefix` + path + `format.end` each, in
/// pieces to be written in order (no copy into one buffer); entries without a path are
/// left out. Built on every core from one directory table.
pub fn cpu_joined(view: &NamespaceView<'_>, ids: &[u32], format: &PathFormat) -> Vec<Vec<u8>> {
    with_dir_paths(view, ids, |table| {
        ids.par_chunks(PIECE)
            .map(|chunk| write_lines(view, chunk, &|_| true, format, table).text)
            .collect()
    })
}

/// Which entries a streamed text keeps (a caller's visibility, filters).
pub type Keep<'a> = &'a (dyn Fn(&DirentRecord) -> bool + Sync);

/// One piece of a text written out as [`PathFormat`] says: its bytes and how many
/// paths they hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextPiece {
    pub text: Vec<u8>,
    pub lines: usize,
}

/// The lines of the entries of `ids` that `keep` keeps and that have a path: each
/// entry read once, its line's room made once (streamed answers are hundreds of
/// thousands of lines).
fn write_lines<P: DirPaths + ?Sized>(
    view: &NamespaceView<'_>,
    ids: &[u32],
    keep: Keep<'_>,
    format: &PathFormat,
    table: &P,
) -> TextPiece {
    let prefix = format.prefix.as_slice();
    let mut text = Vec::with_capacity(ids.len() * (48 + prefix.len()));
    let mut lines = 0;
    for &id in ids {
        let Some(d) = view.dirents.get(id as usize) else {
            continue;
        };
        if d.ino == 0 || !keep(d) {
            continue;
        }
        let Some(dir) = table.dir_path(d.parent) else {
            continue;
        };
        let name = view.name_of(d);
        text.reserve(prefix.len() + dir.len() + name.len() + 2);
        text.extend_from_slice(prefix);
        text.extend_from_slice(dir);
        text.push(b'/');
        text.extend_from_slice(name);
        text.push(format.end);
        lines += 1;
    }
    TextPiece { text, lines }
}

/// [`write_lines`] from the directory paths the namespace keeps.
pub fn tree_lines(
    view: &NamespaceView<'_>,
    tree: &DirTree,
    ids: &[u32],
    keep: Keep<'_>,
    format: &PathFormat,
) -> TextPiece {
    write_lines(view, ids, keep, format, tree)
}

/// Entries per piece of a streamed text: about 256 KiB of paths, so that its reader
/// starts on the first while the rest are built (and is woken per piece).
const TEXT_PIECE: usize = 2048;

/// The text of the entries of `ids` that `keep` keeps, built in pieces of
/// [`TEXT_PIECE`] ids, each handed to `deliver` as soon as it is done (a reader of the text starts on
/// the first piece while the rest are built). Entries without a path are left out.
/// One thread builds them: a path is written several times faster than a reader of
/// the text takes it in, so the other cores are left to the reader.
pub fn cpu_join_streamed(
    view: &NamespaceView<'_>,
    ids: &[u32],
    keep: Keep<'_>,
    format: &PathFormat,
    deliver: &mut dyn FnMut(TextPiece),
) {
    with_dir_paths(view, ids, |table| {
        let pieces = ids.len().div_ceil(TEXT_PIECE);
        crate::ordered::in_order(
            pieces,
            |i| {
                let chunk = &ids[i * TEXT_PIECE..((i + 1) * TEXT_PIECE).min(ids.len())];
                write_lines(view, chunk, keep, format, table)
            },
            &|| 1,
            deliver,
        )
    })
}

/// [`cpu_joined`]'s text from a built list (the GPU's), in the same pieces.
pub fn join(list: &PathList, format: &PathFormat) -> Vec<Vec<u8>> {
    join_pieces(list, format)
        .into_iter()
        .map(|p| p.text)
        .collect()
}

/// [`join`] with the number of paths in each piece.
pub fn join_pieces(list: &PathList, format: &PathFormat) -> Vec<TextPiece> {
    (0..list.len())
        .collect::<Vec<_>>()
        .par_chunks(PIECE)
        .map(|chunk| {
            let mut out = TextPiece {
                text: Vec::with_capacity(chunk.len() * (48 + format.prefix.len())),
                lines: 0,
            };
            for &i in chunk {
                let p = list.get(i);
                if !p.is_empty() {
                    out.text.extend_from_slice(&format.prefix);
                    out.text.extend_from_slice(p);
                    out.text.push(format.end);
                    out.lines += 1;
                }
            }
            out
        })
        .collect()
}

/// CPU twin on one thread.
pub fn cpu_one_thread(view: &NamespaceView<'_>, ids: &[u32]) -> PathList {
    let mut list = PathList {
        bytes: Vec::new(),
        offsets: vec![0],
    };
    for &id in ids {
        path_of(view, id, &mut list.bytes);
        list.offsets.push(list.bytes.len());
    }
    list
}
