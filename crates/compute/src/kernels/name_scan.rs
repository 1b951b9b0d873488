//! Whole-arena name scans on the CPU: instead of testing every entry's name one by one,
//! search the name arena end to end for a literal every match must contain (the
//! substring itself, the longest literal run of a glob, a literal a regex requires),
//! map each occurrence to the entry owning those bytes through the namespace's
//! [`crate::view::OwnersView`], and check only those entries. A literal search over contiguous
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

/// Names ahead of the one compared whose entries a name-by-name scan starts loading.
const PREFETCH_AHEAD: usize = 16;

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
    ///
    /// Two passes: the literal's occurrences are found and each is given the owner
    /// whose name region holds it (reading only the arena and the owner offsets); then
    /// the candidates are checked against the owner map's lengths and their entries,
    /// which lie scattered: the entries of candidates a few ahead are loaded while one
    /// is checked, where reading each as it is found waited on memory once per hit.
    fn piece_hits(&self, (a, b): (usize, usize)) -> Vec<u32> {
        let ArenaScan {
            view, owners, pre, ..
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
        // (owner, occurrence) for every occurrence, in arena order: an owner's are
        // together, and the check decides it by the first that lies wholly in its name
        // where the anchor wants it.
        let mut cands: Vec<(usize, usize)> = Vec::new();
        let mut out = Vec::new();
        let mut pos = start;
        let mut j = a;
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
            let stop = (j + step).min(b);
            j += offs[j..stop]
                .partition_point(|&o| o <= p as u64)
                .saturating_sub(1);
            cands.push((j, p));
            pos = p + 1;
            // Anchored and found in many names (an extension, `*.jpg`): a search restart
            // per hit costs more than looking at every name's own ends, so the rest of the
            // piece goes name by name (owner j is done once its candidates are checked).
            if pre.anchor != Anchor::Anywhere
                && cands.len() >= DENSE_AFTER
                && (j + 1 - a) < cands.len() * DENSE_RATIO
            {
                // Occurrences of owner j's name past p are the name-by-name scan's
                // to miss: this owner goes through the candidates whole.
                let name_end = usize::try_from(offs[j])
                    .unwrap_or(usize::MAX)
                    .saturating_add(owners.lens.get(j).map_or(0, |&l| usize::from(l)));
                while let Some(q) = pre.find(arena, pos, name_end.min(end)) {
                    cands.push((j, q));
                    pos = q + 1;
                }
                self.check_candidates(&cands, &mut out);
                self.check_each((j + 1, b), &mut out);
                return out;
            }
        }
        self.check_candidates(&cands, &mut out);
        out
    }

    /// Appends to `out` the entries of the owners in `cands` (ascending, an owner's
    /// occurrences together) with an occurrence wholly inside the owner's name and
    /// placed as the anchor says, that are live, still named there, of a wanted kind and
    /// pass the check: each once, in order.
    fn check_candidates(&self, cands: &[(usize, usize)], out: &mut Vec<u32>) {
        let ArenaScan {
            view, owners, pre, ..
        } = *self;
        let arena = view.names;
        let mut last = usize::MAX;
        for (i, &(j, p)) in cands.iter().enumerate() {
            if let Some(&(ahead, _)) = cands.get(i + PREFETCH_AHEAD) {
                if let Some(&id) = owners.ids.get(ahead) {
                    crate::prefetch::record(view.dirents, id as usize);
                }
            }
            if j == last {
                continue;
            }
            let (Some(&off), Some(&len), Some(&id)) =
                (owners.offsets.get(j), owners.lens.get(j), owners.ids.get(j))
            else {
                continue;
            };
            let (off, len) = (off as usize, usize::from(len));
            let name_end = off.saturating_add(len);
            if p + pre.len > name_end || name_end > arena.len() {
                // Running past the end of the name it starts in, or in bytes no name
                // holds: a later occurrence may still lie inside this name.
                continue;
            }
            let placed = match pre.anchor {
                Anchor::Anywhere => true,
                Anchor::Start => p == off,
                Anchor::End => p + pre.len == name_end,
                Anchor::Whole => p == off && p + pre.len == name_end,
            };
            if !placed {
                continue;
            }
            // This owner is decided by its first placed occurrence.
            last = j;
            if self.wanted(id, off, len) && out.last() != Some(&id) {
                out.push(id);
            }
        }
    }

    /// Is entry `id` live, still named by the `len` arena bytes at `off`, of a wanted
    /// kind, and does that name pass the check?
    #[inline(always)]
    fn wanted(&self, id: u32, off: usize, len: usize) -> bool {
        let current = self.view.dirents.get(id as usize).is_some_and(|d| {
            d.ino != 0
                && d.name_offset == off as u64
                && usize::from(d.name_len) == len
                && (self.kinds >> d.kind) & 1 == 1
        });
        current
            && (self.pre.exact
                || off
                    .checked_add(len)
                    .and_then(|end| self.view.names.get(off..end))
                    .is_some_and(|name| (self.verify)(name)))
    }

    /// The anchored scan of owners `a..b` name by name, reading each name where the
    /// owner map says it lies and only a candidate's entry (live, and this still its
    /// name): the hits [`Self::piece_hits`] finds there, appended to `out`.
    fn check_each(&self, range: (usize, usize), out: &mut Vec<u32>) {
        // One loop per kind of compare, so the test per name is a few instructions.
        let (pre, lit) = (self.pre, self.pre.literal.as_slice());
        let l = lit.len();
        match (pre.anchor, pre.fold) {
            // A literal of up to 8 bytes (an extension, a prefix) as one word compared
            // with the 8 arena bytes ending (or starting) the name: no loop and no call
            // per name, and bytes outside the name are shifted (or masked) away.
            (Anchor::End, false) if l <= 8 => {
                let want = word(lit);
                let shift = 64 - 8 * l as u32;
                self.check_names(range, out, |arena, s, e| {
                    e - s >= l
                        && match e.checked_sub(8).and_then(|w| word8(arena, w)) {
                            Some(w) => w >> shift == want,
                            None => arena[s..e].ends_with(lit),
                        }
                })
            }
            (Anchor::Start, false) if l <= 8 => {
                let want = word(lit);
                let mask = u64::MAX >> (64 - 8 * l as u32);
                self.check_names(range, out, |arena, s, e| {
                    e - s >= l
                        && match word8(arena, s) {
                            Some(w) => w & mask == want,
                            None => arena[s..e].starts_with(lit),
                        }
                })
            }
            _ => self.check_names(range, out, |arena, s, e| pre.placed_in(&arena[s..e])),
        }
    }

    /// [`Self::check_each`] with the compare `placed`.
    #[inline(always)]
    fn check_names(
        &self,
        (a, b): (usize, usize),
        out: &mut Vec<u32>,
        placed: impl Fn(&[u8], usize, usize) -> bool,
    ) {
        let ArenaScan { view, owners, .. } = *self;
        let arena = view.names;
        let end = b.min(owners.len());
        let (offsets, lens) = (&owners.offsets[..end], &owners.lens[..end]);
        for k in a..end {
            // The entry of a name a few ahead, which a match will read.
            if let Some(&ahead) = owners.ids.get(k + PREFETCH_AHEAD) {
                crate::prefetch::record(view.dirents, ahead as usize);
            }
            let (off, len) = (offsets[k], usize::from(lens[k]));
            let Some((s, e)) = usize::try_from(off)
                .ok()
                .and_then(|s| Some((s, s.checked_add(len)?)))
                .filter(|&(_, e)| e <= arena.len())
            else {
                continue;
            };
            if !placed(arena, s, e) {
                continue;
            }
            let id = owners.ids[k];
            if self.wanted(id, s, len) && out.last() != Some(&id) {
                out.push(id);
            }
        }
    }
}

/// The little-endian number of up to 8 bytes: the first byte lowest.
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .rev()
        .fold(0, |w, &b| (w << 8) | u64::from(b))
}

/// The 8 bytes of `arena` from `at` as one little-endian word, if there are 8.
#[inline(always)]
fn word8(arena: &[u8], at: usize) -> Option<u64> {
    let bytes = arena.get(at..at.checked_add(8)?)?;
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_le_bytes)
}
