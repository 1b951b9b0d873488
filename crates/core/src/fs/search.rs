//! Live search and disk usage: the compute layer's kernels over the namespace as it is
//! this instant (nothing to re-index), then filtered so a caller never learns a name in a
//! directory it could not list.

use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery};
use gpufs_compute::kernels::path_build::{PathFormat, PathList};
use gpufs_compute::kernels::path_match::PathMatcher;
use gpufs_compute::kernels::subtree_sum::DirTotals;
use gpufs_compute::view::NamespaceView;
use gpufs_compute::Compute;
use gpufs_format::{FileKind, InodeRecord, ROOT_INO};

use super::{Caller, Filesystem};
use crate::error::{FsError, FsResult};
use crate::namespace::Namespace;
use crate::units::Ino;

/// What to look for.
#[derive(Clone, Debug)]
pub struct SearchQuery {
    pub pattern: NameQuery,
    /// Match the whole path from the mount root ("/a/b/c") instead of the base name.
    pub full_path: bool,
    /// Bit k set: entries of `FileKind` k are wanted.
    pub kinds: u32,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// Modified at or after (ns since the epoch).
    pub newer_ns: Option<i64>,
    /// Modified before.
    pub older_ns: Option<i64>,
    /// Only below this directory (inode number).
    pub under: Option<u64>,
    pub limit: Option<usize>,
    /// Build the paths of the hits (a count does not need them).
    pub want_paths: bool,
    /// With `want_paths`: the paths written out as one text in this format
    /// ([`SearchResults::text`]) instead of a list.
    pub text: Option<PathFormat>,
}

impl SearchQuery {
    /// Does the query filter on inode fields (size, times)?
    pub(super) fn by_inode(&self) -> bool {
        self.min_size.is_some()
            || self.max_size.is_some()
            || self.newer_ns.is_some()
            || self.older_ns.is_some()
    }

    /// Does an entry's inode pass the size and time filters?
    pub(super) fn inode_passes(&self, rec: &InodeRecord) -> bool {
        !(self.min_size.is_some_and(|m| rec.size < m)
            || self.max_size.is_some_and(|m| rec.size > m)
            || self.newer_ns.is_some_and(|t| rec.mtime_ns < t)
            || self.older_ns.is_some_and(|t| rec.mtime_ns >= t))
    }
}

/// Ids of the live entries of the wanted kinds whose full path matches, ascending:
/// directory states and a visit of the directories that can match (`pm`, the query
/// as one DFA over paths), or for a pattern too large for one DFA (`None`), the paths
/// of every entry built and matched.
pub(super) fn full_path_candidates(
    compute: &Compute,
    q: &SearchQuery,
    matcher: &NameMatcher,
    pm: Option<&PathMatcher>,
    view: &NamespaceView<'_>,
    ns: &Namespace,
) -> FsResult<Vec<u32>> {
    if let Some(pm) = pm {
        return compute.path_match(pm, view, q.kinds, ns).map_err(bad_query);
    }
    let ids: Vec<u32> = ns
        .live_dirents()
        .filter(|(_, d)| (q.kinds >> d.kind) & 1 == 1)
        .map(|(id, _)| id)
        .collect();
    let paths = compute.path_build(view, &ids).map_err(bad_query)?;
    // An entry without a buildable path (a broken chain) matches nothing, as in
    // `path_match`.
    Ok(ids
        .iter()
        .enumerate()
        .filter(|(k, _)| !paths.get(*k).is_empty() && matcher.matches_name(paths.get(*k)))
        .map(|(_, &id)| id)
        .collect())
}

/// The paths of a search's hits, packed in one buffer, or written out as one text when
/// the query asked for that. A count-only query (`want_paths: false`) gets the count
/// alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchResults {
    count: usize,
    paths: PathList,
    text: Vec<Vec<u8>>,
}

impl SearchResults {
    /// Path of hit `i` from the mount root, starting with '/' (empty unless the query
    /// wanted paths).
    pub fn path(&self, i: usize) -> &[u8] {
        self.paths.get(i)
    }

    /// The paths as the query's `text` format wrote them, in pieces to write in order.
    pub fn text(&self) -> &[Vec<u8>] {
        &self.text
    }

    /// The text, taken out of the results.
    pub fn into_text(self) -> Vec<Vec<u8>> {
        self.text
    }

    /// Results found (also when only counted).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Totals of one directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuEntry {
    pub path: Vec<u8>,
    pub ino: u64,
    pub totals: DirTotals,
}

pub(super) fn bad_query(e: gpufs_compute::ComputeError) -> FsError {
    match e {
        gpufs_compute::ComputeError::BadQuery(m) => FsError::BadQuery(m),
        other => FsError::Compute(other.to_string()),
    }
}

/// Permission bits `mask` (4 r, 2 w, 1 x) of `rec` for `caller`.
pub(super) fn permits(rec: &InodeRecord, caller: Caller, groups: &[u32], mask: u32) -> bool {
    if caller.uid == 0 {
        return true;
    }
    let bits = if caller.uid == rec.uid {
        (rec.mode >> 6) & 7
    } else if caller.gid == rec.gid || groups.contains(&rec.gid) {
        (rec.mode >> 3) & 7
    } else {
        rec.mode & 7
    };
    bits & mask == mask
}

/// Which directories a caller may list: read on the directory and search on every
/// directory above it. Memoized per directory for one query, in arrays indexed by inode
/// number (0 unknown, 1 no, 2 yes), so a query with hundreds of thousands of hits in a
/// few thousand directories decides each directory once.
struct Visibility<'a> {
    ns: &'a Namespace,
    caller: Caller,
    groups: &'a [u32],
    /// Search permission on the directory and all above it.
    reach: Vec<u8>,
    /// May list the directory.
    list: Vec<u8>,
}

const UNKNOWN: u8 = 0;
const NO: u8 = 1;
const YES: u8 = 2;

fn memo_get(memo: &[u8], ino: u32) -> u8 {
    memo.get(ino as usize).copied().unwrap_or(UNKNOWN)
}

fn memo_set(memo: &mut Vec<u8>, ino: u32, yes: bool) {
    let i = ino as usize;
    if memo.len() <= i {
        memo.resize(i + 1, UNKNOWN);
    }
    memo[i] = if yes { YES } else { NO };
}

impl<'a> Visibility<'a> {
    fn new(ns: &'a Namespace, caller: Caller, groups: &'a [u32]) -> Self {
        Visibility {
            ns,
            caller,
            groups,
            reach: Vec::new(),
            list: Vec::new(),
        }
    }

    fn rec(&self, ino: u32) -> Option<&InodeRecord> {
        self.ns.inode(ino)
    }

    /// Search permission on `dir` and every directory above it.
    fn reachable(&mut self, dir: u32) -> bool {
        match memo_get(&self.reach, dir) {
            YES => return true,
            NO => return false,
            _ => {}
        }
        // Walk up to the first memoized (or the root), then fill in on the way back.
        let mut chain = Vec::new();
        let mut d = dir;
        let mut known = None;
        for _ in 0..4096 {
            match memo_get(&self.reach, d) {
                YES => {
                    known = Some(true);
                    break;
                }
                NO => {
                    known = Some(false);
                    break;
                }
                _ => {}
            }
            chain.push(d);
            if d == ROOT_INO {
                // Nothing above the root: the chain's own permissions decide.
                known = Some(true);
                break;
            }
            d = self.ns.parent_of_dir(d);
        }
        // A chain that never reached the root or a decided directory (deeper than any
        // walk goes, or a loop in a damaged namespace) is not searchable.
        let mut ok = known.unwrap_or(false);
        for &c in chain.iter().rev() {
            ok = ok
                && self
                    .rec(c)
                    .is_some_and(|r| permits(r, self.caller, self.groups, 1));
            memo_set(&mut self.reach, c, ok);
        }
        ok
    }

    /// May the caller list directory `dir` (and so see names in it)?
    fn may_list(&mut self, dir: u32) -> bool {
        if self.caller.uid == 0 {
            return true;
        }
        match memo_get(&self.list, dir) {
            YES => return true,
            NO => return false,
            _ => {}
        }
        let readable = self
            .rec(dir)
            .is_some_and(|r| permits(r, self.caller, self.groups, 4));
        // Reading a directory's names needs read on it and search on every directory
        // above it (not on itself).
        let parent = self.ns.parent_of_dir(dir);
        let ok = readable && (dir == ROOT_INO || self.reachable(parent));
        memo_set(&mut self.list, dir, ok);
        ok
    }
}

/// Which directories `du` reports besides the one asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuRows {
    /// That directory alone (`du -s`).
    Dir,
    /// It and its subdirectories.
    Children,
    /// It and every directory below it (`du -a`'s directories).
    All,
}

impl Filesystem {
    /// Entries matching `q` as the namespace is now, that `caller` may see, in entry
    /// order, at most `q.limit`.
    pub fn search(
        &self,
        compute: &Compute,
        q: &SearchQuery,
        caller: Caller,
        groups: &[u32],
    ) -> FsResult<SearchResults> {
        let mut g = self.lock();
        let dirty = g.vol.take_search_changes(q.full_path || q.want_paths);
        compute.note_changes(&dirty);
        search_in(compute, q, g.vol.namespace(), caller, groups)
    }

    /// Recursive totals of directory `dir` and of the directories below it that `rows`
    /// asks for, from one subtree aggregation.
    /// Directories the caller may not list count as empty (their own size only), as
    /// `du` skips what it cannot read.
    pub fn du(
        &self,
        compute: &Compute,
        dir: u64,
        rows: DuRows,
        caller: Caller,
        groups: &[u32],
    ) -> FsResult<Vec<DuEntry>> {
        let dir = Ino::from_kernel(dir)?;
        let mut g = self.lock();
        g.dir_inode(dir)?;
        let dir = dir.get();
        let dirty = g.vol.take_search_changes(false);
        compute.note_changes(&dirty);
        let g = &*g;
        let ns = g.vol.namespace();
        let view = ns.view();
        let mut vis = Visibility::new(ns, caller, groups);
        if !vis.may_list(dir) {
            return Err(FsError::Access);
        }
        let mut totals = compute.subtree_sum(&view).map_err(bad_query)?;
        // Directories below `dir` (dir, its entry id), parents before children: all of
        // them when they are all shown or some may be hidden, else only those shown.
        let below: Vec<(u32, u32)> = if rows == DuRows::All || caller.uid != 0 {
            ns.dirs_below(dir)
        } else if rows == DuRows::Children {
            ns.entries_after(dir, 0)
                .map(|(_, id)| (ns.dirent(id), id))
                .filter(|(e, _)| e.kind == FileKind::Directory as u8)
                .map(|(e, id)| (e.ino, id))
                .collect()
        } else {
            Vec::new()
        };
        if caller.uid != 0 {
            subtract_hidden(ns, &mut vis, dir, &below, &mut totals);
        }
        let mut out_dirs = vec![dir];
        out_dirs.extend(
            below
                .iter()
                .filter(|_| rows != DuRows::Dir)
                .filter(|&&(d, _)| rows == DuRows::All || ns.parent_of_dir(d) == dir)
                .filter(|&&(d, _)| vis.may_list(ns.parent_of_dir(d)))
                .map(|&(d, _)| d),
        );
        du_entries(compute, &view, &out_dirs, &totals)
    }
}

/// The entries of `ns` matching `q` that `caller` may see (directory paths ready in
/// `ns` when the query wants paths): the live namespace or a snapshot's.
pub(super) fn search_in(
    compute: &Compute,
    q: &SearchQuery,
    ns: &Namespace,
    caller: Caller,
    groups: &[u32],
) -> FsResult<SearchResults> {
    let matcher = NameMatcher::new(&q.pattern).map_err(bad_query)?;
    let view = ns.view();
    let under = q.under.map(Ino::from_kernel).transpose()?.map(Ino::get);
    let candidates: Vec<u32> = if q.full_path {
        let pm = PathMatcher::new(&q.pattern);
        full_path_candidates(compute, q, &matcher, pm.as_ref(), &view, ns)?
    } else {
        let m = matcher.with_kinds(q.kinds);
        compute.name_match(&m, &view).map_err(bad_query)?
    };
    let mut vis = Visibility::new(ns, caller, groups);
    let kept = filter_hits(ns, q, under, &mut vis, candidates);
    if !q.want_paths {
        return Ok(SearchResults {
            count: kept.len(),
            ..Default::default()
        });
    }
    if let Some(format) = &q.text {
        let text = compute.path_join(&view, &kept, format).map_err(bad_query)?;
        return Ok(SearchResults {
            count: kept.len(),
            text,
            ..Default::default()
        });
    }
    let paths = compute.path_build(&view, &kept).map_err(bad_query)?;
    Ok(SearchResults {
        count: kept.len(),
        paths,
        ..Default::default()
    })
}

/// The entries of `candidates` a search keeps: valid kinds, passing the inode
/// filters, below `under`, in directories the caller may list, at most `q.limit`.
fn filter_hits(
    ns: &Namespace,
    q: &SearchQuery,
    under: Option<u32>,
    vis: &mut Visibility<'_>,
    candidates: Vec<u32>,
) -> Vec<u32> {
    let by_inode = q.by_inode();
    // Root with no filter keeps every candidate: live entries of the wanted kinds
    // (kinds are checked by the kernels, and valid, as every entry's are).
    if vis.caller.uid == 0 && !by_inode && under.is_none() && q.limit.is_none() {
        return candidates;
    }
    let mut kept = Vec::new();
    for id in candidates {
        let d = ns.dirent(id);
        if FileKind::from_u8(d.kind).is_none() {
            continue;
        }
        // The inode is read only for size and time filters: an entry always names a
        // live inode (an entry is only put for a live inode, and an inode is freed
        // with its last entry; fsck checks it), and a random read of each hit's
        // inode costs more than the match itself on queries with many hits.
        if by_inode && !ns.inode(d.ino).is_some_and(|rec| q.inode_passes(rec)) {
            continue;
        }
        if let Some(top) = under {
            if !is_below(ns, d.parent, top) {
                continue;
            }
        }
        if !vis.may_list(d.parent) {
            continue;
        }
        kept.push(id);
        if q.limit.is_some_and(|l| kept.len() >= l) {
            break;
        }
    }
    kept
}

/// Takes what directories the caller may not list hold (all but their own size) out
/// of their totals and of every ancestor's up to `dir`.
fn subtract_hidden(
    ns: &Namespace,
    vis: &mut Visibility<'_>,
    dir: u32,
    below: &[(u32, u32)],
    totals: &mut [DirTotals],
) {
    for &(d, _) in below {
        if vis.may_list(d) || !vis.may_list(ns.parent_of_dir(d)) {
            continue;
        }
        let t = totals[d as usize];
        let own = ns.inode(d).map_or(0, |r| r.size);
        let own_alloc = ns.allocated_bytes(d);
        let hidden = DirTotals {
            bytes: t.bytes.wrapping_sub(own),
            allocated: t.allocated.wrapping_sub(own_alloc),
            files: t.files,
            dirs: t.dirs.saturating_sub(1),
        };
        let mut a = d;
        loop {
            let slot = &mut totals[a as usize];
            slot.bytes = slot.bytes.wrapping_sub(hidden.bytes);
            slot.allocated = slot.allocated.wrapping_sub(hidden.allocated);
            slot.files -= hidden.files.min(slot.files);
            slot.dirs -= hidden.dirs.min(slot.dirs);
            if a == dir || a == ROOT_INO {
                break;
            }
            a = ns.parent_of_dir(a);
        }
    }
}

/// The rows of `du` for directories `dirs`: each one's path and totals.
fn du_entries(
    compute: &Compute,
    view: &NamespaceView<'_>,
    dirs: &[u32],
    totals: &[DirTotals],
) -> FsResult<Vec<DuEntry>> {
    let ids: Vec<u32> = dirs
        .iter()
        .map(|&d| view.entry_of_dir(d).unwrap_or(u32::MAX))
        .collect();
    let real: Vec<u32> = ids.iter().copied().filter(|&i| i != u32::MAX).collect();
    let paths = compute.path_build(view, &real).map_err(bad_query)?;
    let mut k = 0;
    let mut out = Vec::with_capacity(dirs.len());
    for (&d, &id) in dirs.iter().zip(&ids) {
        let path = if id == u32::MAX {
            b"/".to_vec()
        } else {
            k += 1;
            paths.get(k - 1).to_vec()
        };
        out.push(DuEntry {
            path,
            ino: u64::from(d),
            totals: totals.get(d as usize).copied().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Is directory `dir` `top` or below it?
fn is_below(ns: &Namespace, mut dir: u32, top: u32) -> bool {
    for _ in 0..4096 {
        if dir == top {
            return true;
        }
        if dir == ROOT_INO {
            return false;
        }
        dir = ns.parent_of_dir(dir);
    }
    false
}

impl Filesystem {
    /// The inode a path relative to the root names ("/a/b", "a/b", "" for the root),
    /// through the same flat index lookups use. Symlinks are not followed.
    pub fn resolve_path(&self, rel: &[u8]) -> FsResult<u64> {
        let g = self.lock();
        let ino = gpufs_compute::kernels::path_lookup::resolve(&g.vol.namespace().view(), rel);
        if ino == 0 {
            Err(FsError::NotFound)
        } else {
            Ok(u64::from(ino))
        }
    }
}
