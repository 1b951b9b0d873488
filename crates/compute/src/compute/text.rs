//! Search answers as text, streamed: the paths of the matches written out as the caller
//! prints them and handed over piece by piece, in order, while the rest is still being
//! found. A reader of a large answer (hundreds of thousands of paths through a pipe)
//! then works alongside the search instead of after it.

use std::time::Instant;

use super::Compute;
use crate::choice::Backend;
use crate::error::ComputeResult;
use crate::kernels::name_match::{self, NameMatcher};
use crate::kernels::path_build::{self, Keep, PathFormat, TextPiece};
use crate::kernels::path_match::{self, PathMatcher};
use crate::ordered::in_order;
use crate::view::{DirListing, NamespaceView};

/// Bytes handed over and not yet taken in by the reader from which a streamed name
/// search runs on one thread: the reader is behind, and more searching threads would
/// only take its core. Otherwise it runs on every core but one, which is the reader's:
/// on 2 cores, one thread. On a 2-core dev mount (one-off timings) a glob printing
/// 236,742 paths (30 MB) reached its reader in 17.8 ms (median of 40) from one thread,
/// 19.5 ms when a second thread searched two of its pieces, and 26 ms from two threads
/// throughout; a case-insensitive search printing 3.5 MB took 9.2 ms from one thread
/// and 5.8 ms from two, which more cores would give it.
pub const NARROW_BACKLOG: usize = 1 << 20;

impl Compute {
    /// The paths of the entries whose names match `m` and that `keep` keeps, written as
    /// `format` says and handed to `deliver` in pieces. Returns how many paths were
    /// written.
    ///
    /// On the CPU, with the namespace's directory paths and an arena scan for the
    /// query, each piece of the name arena is searched and written out on its own, and
    /// pieces go out in arena order (entry order within a piece): on every core but one
    /// (the reader's), on this thread alone while `backlog()` (bytes handed over that
    /// its reader has not taken in yet) is [`NARROW_BACKLOG`] or more. Otherwise the ids come from
    /// [`Compute::name_match`] (GPU or CPU) and go out in entry order.
    pub fn name_match_text(
        &self,
        m: &NameMatcher,
        view: &NamespaceView<'_>,
        keep: Keep<'_>,
        format: &PathFormat,
        backlog: &dyn Fn() -> usize,
        deliver: &mut dyn FnMut(Vec<u8>),
    ) -> ComputeResult<usize> {
        let items = view.dirents.len() as u64;
        let on_gpu = m.gpu_capable() && self.backend_for(name_match::NAME, items) == Backend::Gpu;
        if let (false, Some(tree), Some(pieces)) = (on_gpu, view.dirs, m.arena_pieces(view)) {
            let start = Instant::now();
            let mut lines = 0;
            // Every core but one while the reader keeps up: it needs a core of its own
            // (on 2 cores that leaves one thread, this one, searching).
            let cores = rayon::current_num_threads();
            let width = || {
                if backlog() < NARROW_BACKLOG {
                    cores - 1
                } else {
                    1
                }
            };
            in_order(
                pieces.len(),
                |i| path_build::tree_lines(view, tree, &pieces.ids(i), keep, format),
                &width,
                &mut |p: TextPiece| {
                    lines += p.lines;
                    deliver(p.text);
                },
            );
            // Matching and writing out are one pass here: counted as the match.
            self.stats
                .record(name_match::NAME, Backend::Cpu, items, start.elapsed());
            return Ok(lines);
        }
        let ids = self.name_match(m, view)?;
        self.join_text(view, &ids, keep, format, deliver)
    }

    /// The paths of the entries whose full path matches `m`, of a kind in `kinds`, that
    /// `keep` keeps, written as `format` says and handed to `deliver` in pieces. Returns
    /// how many paths were written. On the CPU, where it can, while the directories
    /// that can match are visited ([`PathMatcher::cpu_listed_text`]: directory by
    /// directory); otherwise the ids come from [`Compute::path_match`] (GPU or CPU) and
    /// go out in entry order.
    #[allow(clippy::too_many_arguments)]
    pub fn path_match_text(
        &self,
        m: &PathMatcher,
        view: &NamespaceView<'_>,
        kinds: u32,
        listing: &dyn DirListing,
        keep: Keep<'_>,
        format: &PathFormat,
        deliver: &mut dyn FnMut(Vec<u8>),
    ) -> ComputeResult<usize> {
        let items = view.dirents.len() as u64;
        if self.backend_for(path_match::NAME, items) == Backend::Cpu {
            let start = Instant::now();
            if let Some(lines) = m.cpu_listed_text(view, kinds, listing, keep, format, deliver) {
                self.stats
                    .record(path_match::NAME, Backend::Cpu, items, start.elapsed());
                return Ok(lines);
            }
        }
        let ids = self.path_match(m, view, kinds, listing)?;
        self.join_text(view, &ids, keep, format, deliver)
    }

    /// The paths of the entries of `ids` that `keep` keeps, written as `format` says and
    /// handed to `deliver` in pieces, in order. Returns how many paths were written.
    pub fn join_text(
        &self,
        view: &NamespaceView<'_>,
        ids: &[u32],
        keep: Keep<'_>,
        format: &PathFormat,
        deliver: &mut dyn FnMut(Vec<u8>),
    ) -> ComputeResult<usize> {
        let mut lines = 0;
        let mut take = |p: TextPiece| {
            lines += p.lines;
            deliver(p.text);
        };
        if self.backend_for(path_build::NAME, ids.len() as u64) == Backend::Gpu {
            let kept: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|&id| view.dirents.get(id as usize).is_some_and(keep))
                .collect();
            let list = self.path_build(view, &kept)?;
            path_build::join_pieces(&list, format)
                .into_iter()
                .for_each(&mut take);
            return Ok(lines);
        }
        let start = Instant::now();
        path_build::cpu_join_streamed(view, ids, keep, format, &mut take);
        self.stats.record(
            path_build::NAME,
            Backend::Cpu,
            ids.len() as u64,
            start.elapsed(),
        );
        Ok(lines)
    }
}
