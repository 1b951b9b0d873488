//! Search answers as text, streamed: the paths of the matches written out as the caller
//! prints them and handed over piece by piece, in order, while the rest is still being
//! found. A reader of a large answer (hundreds of thousands of paths through a pipe)
//! then works alongside the search instead of after it.

use std::cell::Cell;
use std::time::Instant;

use crate::choice::Backend;
use crate::compute::Compute;
use crate::error::ComputeResult;
use crate::kernels::name_match::{self, NameMatcher};
use crate::kernels::path_build::{self, Keep, PathFormat, TextPiece};
use crate::kernels::path_match::{self, PathMatcher};
use crate::ordered::in_order;
use crate::view::{DirListing, NamespaceView};

/// Pieces of a streamed name search run on one thread before their text is weighed.
const NARROW_PIECES: usize = 4;
/// Bytes of text per name searched from which a streamed name search runs on one
/// thread: a reader takes in such text about as fast as one thread searches names (on
/// 2 cores, a glob finding 236,742 of 1,000,000 names, 30 bytes of paths per name,
/// reached its reader in 19 ms from one thread and in 26 ms from two; a search
/// writing 3.5 bytes per name was faster on two).
const TEXT_PER_NAME_NARROW: usize = 8;

impl Compute {
    /// The paths of the entries whose names match `m` and that `keep` keeps, written as
    /// `format` says and handed to `deliver` in pieces. Returns how many paths were
    /// written.
    ///
    /// On the CPU, with the namespace's directory paths and an arena scan for the
    /// query, each piece of the name arena is searched and written out on its own, on
    /// every core, and pieces go out in arena order (entry order within a piece);
    /// otherwise the ids come from [`Compute::name_match`] (GPU or CPU) and go out in
    /// entry order.
    pub fn name_match_text(
        &self,
        m: &NameMatcher,
        view: &NamespaceView<'_>,
        keep: Keep<'_>,
        format: &PathFormat,
        deliver: &mut dyn FnMut(Vec<u8>),
    ) -> ComputeResult<usize> {
        let items = view.dirents.len() as u64;
        let on_gpu = m.gpu_capable() && self.backend_for(name_match::NAME, items) == Backend::Gpu;
        if let (false, Some(tree), Some(pieces)) = (on_gpu, view.dirs, m.arena_pieces(view)) {
            let start = Instant::now();
            let mut lines = 0;
            let (bytes, done) = (Cell::new(0usize), Cell::new(0usize));
            // On one thread until the first pieces show how much text they carry (its
            // reader may need a core of its own), then on every core if they are
            // mostly search.
            let per_piece = pieces.names().div_ceil(pieces.len().max(1)).max(1);
            let wide = || {
                done.get() >= NARROW_PIECES
                    && bytes.get() < done.get() * per_piece * TEXT_PER_NAME_NARROW
            };
            in_order(
                pieces.len(),
                |i| path_build::tree_lines(view, tree, &pieces.ids(i), keep, format),
                &wide,
                &mut |p: TextPiece| {
                    lines += p.lines;
                    bytes.set(bytes.get() + p.text.len());
                    done.set(done.get() + 1);
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
