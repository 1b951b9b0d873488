//! Subtree aggregation: for every directory at once, the totals `du` computes for it
//! (apparent bytes, allocated bytes, files, directories). The CPU twin of
//! kernels/subtree_sum.wgsl; both return one [`DirTotals`] per inode number.
//!
//! # Semantics
//!
//! The namespace is a tree rooted at inode [`ROOT_INO`]. Live entries are dirents with
//! `ino != 0` and `ino` inside the inode table; an entry of kind 2
//! ([`FileKind::Directory`]) names a directory. `dirents[e].parent` is the directory
//! holding entry `e`.
//!
//! * An inode is a *directory* when it is the root or some live kind-2 entry names it.
//!   Its *naming entry* is the lowest-id such entry; kind-2 entries naming the root are
//!   ignored (the root has no parent).
//! * Every other inode named by a live entry is a *non-directory*, counted once, under the
//!   parent of its lowest-id live entry (so hard links are not counted twice and the root
//!   total equals `du -s` of the whole tree whatever the traversal order). Entries of
//!   another kind naming a directory inode are ignored.
//! * The *depth* of a directory is the number of parent steps from it to the root,
//!   following naming entries. A directory is *reachable* when that walk reaches the
//!   root in at most [`MAX_DEPTH`] steps, every inode on the way being a directory.
//!   Orphans (a parent that is not a directory or lies outside the inode table), cycles
//!   from corrupt input, and directories deeper than [`MAX_DEPTH`] are unreachable:
//!   their totals are zero and they (and everything below them) add nothing to any
//!   ancestor. A non-directory whose counting entry's parent is unreachable adds
//!   nothing either (even when another link sits in a reachable directory).
//! * The totals of a reachable directory `D` count `D` itself and every counted inode
//!   whose parent chain passes through `D`: `bytes` sums `inodes[ino].size` (directories'
//!   own sizes included), `allocated` sums `allocated[ino]` (0 past the end of that
//!   array), `files` counts non-directories and `dirs` directories, `D` included. Sums
//!   wrap modulo 2^64 identically on both backends. Non-directories and unreachable
//!   directories get zero totals.
//!
//! The GPU algorithm is described in `subtree_sum/gpu.rs`.

use gpufs_format::{DirentRecord, FileKind, ROOT_INO};

use crate::view::NamespaceView;

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub use gpu::gpu;

pub const NAME: &str = "subtree_sum";

/// Deepest directory counted: the root is at depth 0, its subdirectories at 1. Deeper
/// directories (and anything on a parent cycle) are unreachable and count nowhere.
pub const MAX_DEPTH: u32 = 4096;

const ROOT: usize = ROOT_INO as usize;
const DIR_KIND: u8 = FileKind::Directory as u8;
/// No parent / no rank.
const NONE: u32 = u32::MAX;
/// Totals of one directory's subtree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirTotals {
    /// Sum of apparent sizes (`InodeRecord::size`), directories included.
    pub bytes: u64,
    /// Sum of allocated bytes.
    pub allocated: u64,
    /// Non-directory inodes.
    pub files: u64,
    /// Directories, the subtree's root included.
    pub dirs: u64,
}

impl DirTotals {
    fn add(&mut self, o: &DirTotals) {
        self.bytes = self.bytes.wrapping_add(o.bytes);
        self.allocated = self.allocated.wrapping_add(o.allocated);
        self.files = self.files.wrapping_add(o.files);
        self.dirs = self.dirs.wrapping_add(o.dirs);
    }
}

/// The CPU twin: per inode number (`view.inodes.len()` of them), the totals of the
/// subtree rooted at that directory; zero for non-directories and unreachable ones.
/// Runs the per-inode passes on every core.
pub fn cpu(view: &NamespaceView<'_>) -> Vec<DirTotals> {
    cpu_impl(view, true)
}

/// The same on one thread (the benchmark's baseline).
pub fn cpu_one_thread(view: &NamespaceView<'_>) -> Vec<DirTotals> {
    cpu_impl(view, false)
}

fn cpu_impl(view: &NamespaceView<'_>, parallel: bool) -> Vec<DirTotals> {
    let claims = cpu::claims(view.dirents, view.inodes.len());
    let dirs = cpu::Dirs::by_depth(cpu::depths(&claims));
    let mut acc = cpu::add_inodes(view, &claims, &dirs, parallel);
    cpu::add_levels(&claims, &dirs, &mut acc);
    cpu::spread(&dirs, &acc, parallel)
}

/// The CPU passes, in the order they run. Totals accumulate in a compact array indexed
/// by a directory's rank in depth order, not by inode, so the random adds stay in cache.
mod cpu {
    use super::*;
    use rayon::prelude::*;

    /// Items per rayon task.
    const CHUNK: usize = 1 << 14;
    /// Most bytes of private accumulators the parallel inode pass may hold.
    const PRIVATE_BUDGET: usize = 256 << 20;
    /// Fewest inodes worth a part of their own in the parallel inode pass.
    const MIN_PART: usize = 1 << 12;

    /// `Claims::kind` values.
    const UNNAMED: u8 = 0;
    const NAMED_OTHER: u8 = 1;
    const NAMED_DIR: u8 = 2;

    /// What names each inode: the lowest-id live kind-2 entry if any (a directory), else
    /// the lowest-id live entry of another kind; and that entry's parent.
    pub(super) struct Claims {
        pub kind: Vec<u8>,
        pub parent: Vec<u32>,
    }

    /// One pass over the entries in id order, so the first claim of each kind wins.
    pub(super) fn claims(dirents: &[DirentRecord], n: usize) -> Claims {
        let mut kind = vec![UNNAMED; n];
        let mut parent = vec![NONE; n];
        for d in dirents {
            let i = d.ino as usize;
            if d.ino == 0 || i >= n || i == ROOT {
                continue;
            }
            if d.kind == DIR_KIND {
                if kind[i] != NAMED_DIR {
                    kind[i] = NAMED_DIR;
                    parent[i] = d.parent;
                }
            } else if kind[i] == UNNAMED {
                kind[i] = NAMED_OTHER;
                parent[i] = d.parent;
            }
        }
        if ROOT < n {
            kind[ROOT] = NAMED_DIR;
        }
        Claims { kind, parent }
    }

    /// Not yet known / on the walk in progress (only during [`depths`]).
    const UNKNOWN: u32 = u32::MAX;
    const VISITING: u32 = u32::MAX - 1;

    /// `depth[ino]`: 0 for non-directories and unreachable directories, else the
    /// directory's depth + 1. Each directory is resolved once: a walk goes up until it
    /// meets a resolved inode, then unwinds, so corrupt chains cost no more than valid ones.
    pub(super) fn depths(claims: &Claims) -> Vec<u32> {
        let n = claims.kind.len();
        let mut depth: Vec<u32> = claims
            .kind
            .iter()
            .map(|&k| if k == NAMED_DIR { UNKNOWN } else { 0 })
            .collect();
        if ROOT < n {
            depth[ROOT] = 1;
        }
        let mut stack: Vec<usize> = Vec::new();
        for start in 0..n {
            if depth[start] != UNKNOWN {
                continue;
            }
            let mut cur = start;
            let top = loop {
                match depth[cur] {
                    UNKNOWN => {
                        depth[cur] = VISITING;
                        stack.push(cur);
                        let parent = claims.parent[cur] as usize;
                        if parent >= n {
                            break 0;
                        }
                        cur = parent;
                    }
                    // A cycle back into this walk.
                    VISITING => break 0,
                    resolved => break resolved,
                }
            };
            let mut above = top;
            while let Some(d) = stack.pop() {
                above = if above == 0 || above > MAX_DEPTH {
                    0
                } else {
                    above + 1
                };
                depth[d] = above;
            }
        }
        depth
    }

    /// Reachable directories numbered in depth order (the root is rank 0).
    pub(super) struct Dirs {
        /// Rank to inode.
        pub order: Vec<u32>,
        /// Inode to rank, [`NONE`] for anything but a reachable directory.
        pub rank: Vec<u32>,
    }

    impl Dirs {
        /// Counting sort by depth; `depth` becomes the rank array.
        pub(super) fn by_depth(mut depth: Vec<u32>) -> Dirs {
            let mut next = vec![0u32; MAX_DEPTH as usize + 2];
            for &d in &depth {
                if d != 0 {
                    next[d as usize] += 1;
                }
            }
            let mut sum = 0u32;
            for slot in next.iter_mut() {
                let c = *slot;
                *slot = sum;
                sum += c;
            }
            let mut order = vec![0u32; sum as usize];
            for (ino, d) in depth.iter_mut().enumerate() {
                if *d == 0 {
                    *d = NONE;
                } else {
                    let r = next[*d as usize];
                    next[*d as usize] += 1;
                    order[r as usize] = ino as u32;
                    *d = r;
                }
            }
            Dirs { order, rank: depth }
        }
    }

    /// Adds the inodes `range` into `acc` (by rank): a reachable directory into its own
    /// totals, a counted non-directory into its parent's. The inode table streams.
    fn add_range(
        view: &NamespaceView<'_>,
        claims: &Claims,
        dirs: &Dirs,
        range: std::ops::Range<usize>,
        acc: &mut [DirTotals],
    ) {
        let n = claims.kind.len();
        for ino in range {
            let (target, files, ndirs) = match claims.kind[ino] {
                NAMED_DIR => (dirs.rank[ino], 0, 1),
                NAMED_OTHER => {
                    let p = claims.parent[ino] as usize;
                    (if p < n { dirs.rank[p] } else { NONE }, 1, 0)
                }
                _ => continue,
            };
            if target != NONE {
                let t = DirTotals {
                    bytes: view.inodes[ino].size,
                    allocated: view.allocated.get(ino).copied().unwrap_or(0),
                    files,
                    dirs: ndirs,
                };
                acc[target as usize].add(&t);
            }
        }
    }

    /// Every directory's own size and files, by rank. In parallel, each part of the inode
    /// table fills private accumulators, summed afterwards.
    pub(super) fn add_inodes(
        view: &NamespaceView<'_>,
        claims: &Claims,
        dirs: &Dirs,
        parallel: bool,
    ) -> Vec<DirTotals> {
        let n = claims.kind.len();
        let d = dirs.order.len();
        let bytes = d.max(1) * std::mem::size_of::<DirTotals>();
        let parts = if parallel {
            rayon::current_num_threads()
                .min(PRIVATE_BUDGET / bytes)
                .min(n / MIN_PART)
                .max(1)
        } else {
            1
        };
        if parts == 1 {
            let mut acc = vec![DirTotals::default(); d];
            add_range(view, claims, dirs, 0..n, &mut acc);
            return acc;
        }
        let per = n.div_ceil(parts);
        let mut accs: Vec<Vec<DirTotals>> = (0..parts)
            .into_par_iter()
            .map(|k| {
                let mut acc = vec![DirTotals::default(); d];
                add_range(
                    view,
                    claims,
                    dirs,
                    k * per..((k + 1) * per).min(n),
                    &mut acc,
                );
                acc
            })
            .collect();
        let mut total = accs.swap_remove(0);
        total
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, dst)| {
                for other in &accs {
                    for (a, b) in dst.iter_mut().zip(&other[c * CHUNK..]) {
                        a.add(b);
                    }
                }
            });
        total
    }

    /// Deepest directories first, each adds its complete totals into its parent's.
    pub(super) fn add_levels(claims: &Claims, dirs: &Dirs, acc: &mut [DirTotals]) {
        for r in (1..dirs.order.len()).rev() {
            let parent = claims.parent[dirs.order[r] as usize] as usize;
            let t = acc[r];
            acc[dirs.rank[parent] as usize].add(&t);
        }
    }

    /// Totals by inode number.
    pub(super) fn spread(dirs: &Dirs, acc: &[DirTotals], parallel: bool) -> Vec<DirTotals> {
        let one = |&r: &u32| {
            if r == NONE {
                DirTotals::default()
            } else {
                acc[r as usize]
            }
        };
        if parallel {
            dirs.rank.par_iter().with_min_len(CHUNK).map(one).collect()
        } else {
            dirs.rank.iter().map(one).collect()
        }
    }
}
