//! Search answered as text handed over while it is found: what `gpufs search` prints
//! by default. The matches' paths go to the caller in pieces, in order, so that the
//! reader of a large answer works alongside the search instead of after it, and who
//! may see what is decided once per directory so every core can check its hits.

use gpufs_compute::dir_tree::DirTree;
use gpufs_compute::kernels::name_match::NameMatcher;
use gpufs_compute::kernels::path_match::PathMatcher;
use gpufs_compute::Compute;
use gpufs_format::{DirentRecord, FileKind};

use super::search::{bad_query, full_path_candidates, permits, SearchQuery};
use super::{Caller, Filesystem};
use crate::error::{FsError, FsResult};
use crate::namespace::Namespace;
use crate::units::Ino;

/// Which directories' entries a query keeps, per slot of the namespace's directory
/// paths (parents before children), decided in one pass over the directories: the
/// caller may list the directory (read on it, search on it and every directory above
/// it, as [`Filesystem::search`] decides per hit) and it lies below the query's
/// `under`. A check per hit is then two loads, from any thread.
struct DirFilter {
    /// `None`: every directory with a path.
    keep: Option<Vec<bool>>,
}

impl DirFilter {
    fn new(
        ns: &Namespace,
        tree: &DirTree,
        caller: Caller,
        groups: &[u32],
        under: Option<u32>,
    ) -> DirFilter {
        if caller.uid == 0 && under.is_none() {
            return DirFilter { keep: None };
        }
        let n = tree.len();
        // Search permission on the directory and every one above it.
        let mut reach = vec![false; n];
        let mut below = vec![false; n];
        let mut keep = vec![false; n];
        for s in 0..n {
            let slot = s as u32;
            let ino = tree.ino(slot);
            let up = tree.parent(slot) as usize;
            let rec = ns.inode(ino);
            let may = |mask| rec.is_some_and(|r| permits(r, caller, groups, mask));
            // The root has nothing above it; a parent always has a lower slot.
            let up_reach = s == 0 || reach.get(up).copied().unwrap_or(false);
            reach[s] = up_reach && may(1);
            below[s] = under.is_none_or(|top| ino == top)
                || (s != 0 && below.get(up).copied().unwrap_or(false));
            keep[s] = below[s] && up_reach && may(4);
        }
        DirFilter { keep: Some(keep) }
    }

    /// Are the entries of directory `dir` kept? A directory without a path keeps none
    /// (its entries have no path either).
    fn keeps(&self, tree: &DirTree, dir: u32) -> bool {
        match (&self.keep, tree.slot(dir)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(k), Some(s)) => k.get(s as usize).copied().unwrap_or(false),
        }
    }
}

impl Filesystem {
    /// [`Filesystem::search`] for a query with a text format (`q.text`): the paths of
    /// the matches, written in that format, handed to `deliver` in pieces as they are
    /// found; returns how many paths. The namespace stays locked while the pieces are
    /// made, so `deliver` must not wait on the caller's reader: it takes a piece and
    /// returns. `backlog()` says how many bytes handed over the reader has not taken in
    /// yet (0 when unknown): a name search runs on one thread while that is large.
    ///
    /// Name queries answer in arena order (the order names were written: entry order
    /// on a namespace filled in one go), full-path queries in entry order. A query
    /// with a limit is answered whole first, its limit counted in entry order.
    pub fn search_text(
        &self,
        compute: &Compute,
        q: &SearchQuery,
        caller: Caller,
        groups: &[u32],
        backlog: &dyn Fn() -> usize,
        deliver: &mut dyn FnMut(Vec<u8>),
    ) -> FsResult<usize> {
        let Some(format) = q.text.as_ref().filter(|_| q.want_paths) else {
            return Err(FsError::BadQuery("no text format asked for".into()));
        };
        if q.limit.is_some() {
            let found = self.search(compute, q, caller, groups)?;
            let count = found.len();
            found.into_text().into_iter().for_each(deliver);
            return Ok(count);
        }
        let matcher = NameMatcher::new(&q.pattern).map_err(bad_query)?;
        let mut g = self.lock();
        let dirty = g.vol.take_search_changes(true);
        compute.note_changes(&dirty);
        let ns = g.vol.namespace();
        let view = ns.view();
        let Some(tree) = view.dirs else {
            return Err(FsError::Compute("directory paths were not built".into()));
        };
        let under = q.under.map(Ino::from_kernel).transpose()?.map(Ino::get);
        let dirs = DirFilter::new(ns, tree, caller, groups, under);
        let by_inode = q.by_inode();
        let keep = |d: &DirentRecord| {
            FileKind::from_u8(d.kind).is_some()
                && dirs.keeps(tree, d.parent)
                && (!by_inode || ns.inode(d.ino).is_some_and(|rec| q.inode_passes(rec)))
        };
        if q.full_path {
            if let Some(pm) = PathMatcher::new(&q.pattern) {
                return compute
                    .path_match_text(&pm, &view, q.kinds, ns, &keep, format, deliver)
                    .map_err(bad_query);
            }
            let candidates = full_path_candidates(compute, q, &matcher, None, &view, ns)?;
            return compute
                .join_text(&view, &candidates, &keep, format, deliver)
                .map_err(bad_query);
        }
        compute
            .name_match_text(
                &matcher.with_kinds(q.kinds),
                &view,
                &keep,
                format,
                backlog,
                deliver,
            )
            .map_err(bad_query)
    }
}
