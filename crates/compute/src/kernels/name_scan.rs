//! Whole-arena name scans on the CPU: instead of testing every entry's name one by one,
//! search the name arena end to end for a literal every match must contain (the
//! substring itself, the longest literal run of a glob, a literal a regex requires),
//! map each occurrence to the entry owning those bytes through the namespace's
//! [`crate::view::NameOwners`], and check only those entries. A literal search over contiguous
//! bytes runs at memory speed; the per-entry loop pays a call per name.
//!
//! Gives exactly the ids the per-entry scan gives: an occurrence counts only when it
//! lies wholly inside a live entry's current name, and one that runs past the end of
//! the name it starts in is skipped by restarting one byte later, so it cannot hide an
//! occurrence that starts inside it.

use memchr::memmem;
use rayon::prelude::*;
use regex_automata::meta::Regex;
use regex_automata::Input;

use crate::view::{NamespaceView, OwnersView};

/// How the literal is searched.
#[derive(Clone, Debug)]
enum Finder {
    Exact(Box<memmem::Finder<'static>>),
    /// ASCII case-insensitive: a regex of the literal (its prefilter does the work).
    Folded(Box<Regex>),
}

/// Where in the name an occurrence must lie for an exact prefilter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    Anywhere,
    /// The name starts with the literal (a glob `lit*`).
    Start,
    /// The name ends with the literal (a glob `*lit`).
    End,
    /// The name is the literal (a glob without wildcards).
    Whole,
}

/// A literal every matching name contains.
#[derive(Clone, Debug)]
pub struct Prefilter {
    len: usize,
    finder: Finder,
    /// The literal and whether ASCII case is ignored, for comparing it in place.
    literal: Vec<u8>,
    fold: bool,
    /// The literal (at `anchor`) is the whole query: such an occurrence is a match,
    /// nothing to verify.
    pub exact: bool,
    pub anchor: Anchor,
}

/// Shorter literals find too many candidates to beat the per-entry scan.
pub const MIN_LITERAL: usize = 2;

impl Prefilter {
    /// A prefilter for `literal` (ASCII case ignored with `fold`), or `None` when it
    /// is too short to pay.
    pub fn new(literal: &[u8], fold: bool, exact: bool) -> Option<Prefilter> {
        if literal.len() < MIN_LITERAL {
            return None;
        }
        Prefilter::build(literal, fold, exact)
    }

    fn build(literal: &[u8], fold: bool, exact: bool) -> Option<Prefilter> {
        let finder = if fold && literal.iter().any(u8::is_ascii_alphabetic) {
            let mut pattern = String::from("(?i-u)");
            for &b in literal {
                if b.is_ascii_alphanumeric() {
                    pattern.push(char::from(b));
                } else {
                    pattern.push_str(&format!(r"\x{b:02x}"));
                }
            }
            let re = Regex::builder()
                .syntax(regex_automata::util::syntax::Config::new().utf8(false))
                .build(&pattern)
                .ok()?;
            Finder::Folded(Box::new(re))
        } else {
            Finder::Exact(Box::new(memmem::Finder::new(literal).into_owned()))
        };
        Some(Prefilter {
            len: literal.len(),
            finder,
            literal: literal.to_vec(),
            fold,
            exact,
            anchor: Anchor::Anywhere,
        })
    }

    /// A finder for `literal` of any length but empty (ASCII case ignored with
    /// `fold`), for searches that want every occurrence, however many.
    pub fn finder(literal: &[u8], fold: bool) -> Option<Prefilter> {
        if literal.is_empty() {
            return None;
        }
        Prefilter::build(literal, fold, true)
    }

    /// An exact prefilter: the query is the literal at `anchor`, nothing more.
    pub fn anchored(literal: &[u8], fold: bool, anchor: Anchor) -> Option<Prefilter> {
        let mut p = Prefilter::new(literal, fold, true)?;
        p.anchor = anchor;
        Some(p)
    }

    /// Does `name` hold the literal where `anchor` says (never for `Anywhere`)?
    fn placed_in(&self, name: &[u8]) -> bool {
        let lit = self.literal.as_slice();
        let part = match self.anchor {
            Anchor::Start => name.get(..lit.len()),
            Anchor::End => name
                .len()
                .checked_sub(lit.len())
                .and_then(|s| name.get(s..)),
            Anchor::Whole => Some(name),
            Anchor::Anywhere => None,
        };
        // Byte by byte in line: these literals are a few bytes, shorter than a call to
        // the library compare costs.
        part.is_some_and(|p| {
            p.len() == lit.len()
                && if self.fold {
                    p.iter().zip(lit).all(|(a, b)| a.eq_ignore_ascii_case(b))
                } else {
                    p.iter().zip(lit).all(|(a, b)| a == b)
                }
        })
    }

    /// Start of the first occurrence in `hay[from..end]`.
    pub fn find(&self, hay: &[u8], from: usize, end: usize) -> Option<usize> {
        match &self.finder {
            Finder::Exact(f) => f.find(hay.get(from..end)?).map(|p| p + from),
            Finder::Folded(re) => re
                .search(&Input::new(hay).range(from..end))
                .map(|m| m.start()),
        }
    }
}

/// Arena pieces scanned in parallel (cut at owner boundaries).
const PIECES: usize = 64;

/// Hits in a piece after which an anchored scan weighs how dense they are.
const DENSE_AFTER: usize = 32;
/// One hit per this many names or more is dense.
const DENSE_RATIO: usize = 16;

/// One scan of the name arena: the namespace and its owner map, the literal every
/// match contains, the kinds wanted and what a candidate's name must also satisfy.
#[derive(Clone, Copy)]
pub struct ArenaScan<'s, 'v> {
    pub view: &'s NamespaceView<'v>,
    pub owners: OwnersView<'v>,
    pub pre: &'s Prefilter,
    pub kinds: u32,
    pub verify: &'s (dyn Fn(&[u8]) -> bool + Sync),
}

impl ArenaScan<'_, '_> {
    /// Ids of live entries whose kind bit is in `kinds`, whose name contains the
    /// literal and satisfies `verify`, ascending.
    pub fn all(&self, parallel: bool) -> Vec<u32> {
        let pieces = self.pieces();
        let run = |&range: &(usize, usize)| self.piece_hits(range);
        let mut ids: Vec<u32> = if parallel {
            pieces.par_iter().flat_map_iter(&run).collect()
        } else {
            pieces.iter().flat_map(run).collect()
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The owner ranges `(first, end)` the scan cuts the arena into, in arena order.
    pub fn pieces(&self) -> Vec<(usize, usize)> {
        let n = self.owners.len();
        let per = n.div_ceil(PIECES).max(1);
        (0..n).step_by(per).map(|a| (a, (a + per).min(n))).collect()
    }

    /// Ids of the entries [`Self::all`] finds among the owners of `range`, ascending.
    pub fn piece(&self, range: (usize, usize)) -> Vec<u32> {
        let mut ids = self.piece_hits(range);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The owners `a..b` and the arena bytes from the first one's name up to the next
    /// piece's first name (or the end of the arena), in arena order.
    fn piece_hits(&self, (a, b): (usize, usize)) -> Vec<u32> {
        let ArenaScan {
            view,
            owners,
            pre,
            kinds,
            verify,
        } = *self;
        let arena = view.names;
        let offs = &owners.offsets;
        let at = |k: usize| {
            usize::try_from(offs[k])
                .unwrap_or(usize::MAX)
                .min(arena.len())
        };
        let start = at(a);
        let end = if b < offs.len() { at(b) } else { arena.len() };
        let mut out = Vec::new();
        let mut pos = start;
        let mut j = a;
        let mut last = u32::MAX;
        while pos < end {
            let Some(p) = pre.find(arena, pos, end) else {
                break;
            };
            // The owner whose name region holds p: the last k in j..b with offset <= p,
            // found by galloping from the last one (hits are often a few names apart).
            let mut step = 1;
            while j + step < b && offs[j + step] <= p as u64 {
                j += step;
                step *= 2;
            }
            let end = (j + step).min(b);
            j += offs[j..end]
                .partition_point(|&o| o <= p as u64)
                .saturating_sub(1);
            let off = offs[j];
            let id = owners.ids[j];
            // A live entry whose current name is this one, wholly inside the arena.
            let entry = view.dirents.get(id as usize).filter(|d| {
                d.ino != 0
                    && d.name_offset == off
                    && (off as usize).saturating_add(usize::from(d.name_len)) <= arena.len()
            });
            let name_end = entry.map_or(0, |d| off as usize + usize::from(d.name_len));
            if p + pre.len > name_end {
                // In dead bytes, or running past the end of the name it starts in: it
                // may hide an occurrence starting inside it, so look again one byte on.
                pos = p + 1;
                continue;
            }
            let placed = match pre.anchor {
                Anchor::Anywhere => true,
                Anchor::Start => p as u64 == off,
                Anchor::End => p + pre.len == name_end,
                Anchor::Whole => p as u64 == off && p + pre.len == name_end,
            };
            if !placed {
                // A later occurrence in this name may end it; none can start it.
                pos = match pre.anchor {
                    Anchor::End => p + 1,
                    _ => name_end.max(p + 1),
                };
                continue;
            }
            if let Some(d) = entry {
                if id != last
                    && (kinds >> d.kind) & 1 == 1
                    && (pre.exact || verify(view.name_of(d)))
                {
                    out.push(id);
                    last = id;
                }
            }
            // One hit per name is enough.
            pos = name_end.max(p + 1);
            // Anchored and found in many names (an extension, `*.jpg`): a search restart
            // per hit costs more than looking at every name's own ends, so the rest of the
            // piece goes name by name (owner j is done).
            if pre.anchor != Anchor::Anywhere
                && out.len() >= DENSE_AFTER
                && (j + 1 - a) < out.len() * DENSE_RATIO
            {
                self.check_each((j + 1, b), &mut out);
                break;
            }
        }
        out
    }

    /// The anchored scan of owners `a..b` name by name, reading each name where the
    /// owner map says it lies and only a candidate's entry (live, and this still its
    /// name): the hits [`Self::piece_hits`] finds there, appended to `out`.
    fn check_each(&self, range: (usize, usize), out: &mut Vec<u32>) {
        // One loop per kind of compare, so the test per name is a few instructions.
        let (pre, lit) = (self.pre, self.pre.literal.as_slice());
        match (pre.anchor, pre.fold) {
            (Anchor::End, false) => self.check_names(range, out, |n| n.ends_with(lit)),
            (Anchor::Start, false) => self.check_names(range, out, |n| n.starts_with(lit)),
            _ => self.check_names(range, out, |n| pre.placed_in(n)),
        }
    }

    /// [`Self::check_each`] with the compare `placed`.
    #[inline(always)]
    fn check_names(
        &self,
        (a, b): (usize, usize),
        out: &mut Vec<u32>,
        placed: impl Fn(&[u8]) -> bool,
    ) {
        let ArenaScan {
            view,
            owners,
            pre,
            kinds,
            verify,
        } = *self;
        let arena = view.names;
        let end = b.min(owners.len());
        let (offsets, lens) = (&owners.offsets[..end], &owners.lens[..end]);
        for k in a..end {
            let (off, len) = (offsets[k], usize::from(lens[k]));
            let Some(name) = usize::try_from(off)
                .ok()
                .and_then(|s| arena.get(s..s.checked_add(len)?))
            else {
                continue;
            };
            if !placed(name) {
                continue;
            }
            let id = owners.ids[k];
            let current = view.dirents.get(id as usize).is_some_and(|d| {
                d.ino != 0
                    && d.name_offset == off
                    && usize::from(d.name_len) == len
                    && (kinds >> d.kind) & 1 == 1
            });
            if current && (pre.exact || verify(name)) && out.last() != Some(&id) {
                out.push(id);
            }
        }
    }
}
