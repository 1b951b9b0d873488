//! Name match over every directory entry: substring (case-sensitive or ASCII
//! case-insensitive), glob (`fnmatch` semantics) or regex (bounded DFA). The CPU twin of
//! kernels/name_match.wgsl; both return the matching dirent ids in ascending order.

use regex_automata::meta::Regex;

use super::dfa::{self, DfaRefusal, DfaTable};
use super::glob::{self, GlobProgram};
use super::name_scan::{self, ArenaScan, Prefilter};
use crate::error::{ComputeError, ComputeResult};
use crate::view::NamespaceView;

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub(crate) use gpu::entry_hits;

pub const NAME: &str = "name_match";

/// Every file kind (bits 1..=7 of `kinds`).
pub const ALL_KINDS: u32 = 0xfe;

/// What a name must satisfy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameQuery {
    Substring { needle: Vec<u8>, fold: bool },
    Glob { pattern: Vec<u8>, fold: bool },
    Regex { pattern: String, fold: bool },
}

/// A query compiled for both backends.
#[derive(Clone, Debug)]
pub struct NameMatcher {
    program: Program,
    /// A literal every match contains, for whole-arena scans on the CPU.
    prefilter: Option<Prefilter>,
    /// Bit k set: entries of `FileKind` k are wanted.
    pub kinds: u32,
}

#[derive(Clone, Debug)]
enum Program {
    Substring {
        needle: Vec<u8>,
        fold: bool,
        finder: Box<memchr::memmem::Finder<'static>>,
    },
    Glob(GlobProgram),
    Dfa(Box<DfaTable>),
    /// A valid regex too large for a DFA table: CPU only.
    CpuRegex(Box<Regex>),
}

impl NameMatcher {
    /// Compiles `query`; a bad pattern is a [`ComputeError::BadQuery`].
    pub fn new(query: &NameQuery) -> ComputeResult<NameMatcher> {
        let program = match query {
            NameQuery::Substring { needle, fold } => {
                if needle.is_empty() {
                    return Err(ComputeError::BadQuery("empty pattern".into()));
                }
                if needle.len() > gpufs_format::NAME_MAX {
                    return Err(ComputeError::BadQuery(
                        "pattern longer than any name (255 bytes)".into(),
                    ));
                }
                let needle: Vec<u8> = if *fold {
                    needle.to_ascii_lowercase()
                } else {
                    needle.clone()
                };
                Program::Substring {
                    finder: Box::new(memchr::memmem::Finder::new(&needle).into_owned()),
                    needle,
                    fold: *fold,
                }
            }
            NameQuery::Glob { pattern, fold } => Program::Glob(glob::compile(pattern, *fold)?),
            NameQuery::Regex { pattern, fold } => match dfa::compile(pattern, *fold) {
                Ok(t) => Program::Dfa(Box::new(t)),
                Err(DfaRefusal::Invalid(e)) => return Err(e),
                Err(DfaRefusal::TooLarge(why)) => {
                    tracing::info!("regex runs on the CPU: {why}");
                    let re = Regex::builder()
                        .syntax(dfa::syntax_config(*fold))
                        .build(pattern)
                        .map_err(|e| ComputeError::BadQuery(format!("invalid regex: {e}")))?;
                    Program::CpuRegex(Box::new(re))
                }
            },
        };
        let prefilter = match (query, &program) {
            (NameQuery::Substring { fold, .. }, Program::Substring { needle, .. }) => {
                Prefilter::new(needle, *fold, true)
            }
            (_, Program::Glob(g)) => match g.as_anchored_literal() {
                Some((lit, anchor)) => name_scan::Prefilter::anchored(&lit, g.fold, anchor),
                None => Prefilter::new(&g.longest_literal(), g.fold, false),
            },
            (NameQuery::Regex { pattern, fold }, _) => {
                Prefilter::new(&dfa::required_literal(pattern, *fold), *fold, false)
            }
            _ => None,
        };
        Ok(NameMatcher {
            program,
            prefilter,
            kinds: ALL_KINDS,
        })
    }

    /// Only entries whose kind bit is set in `kinds` (bit k = `FileKind` k) match.
    pub fn with_kinds(mut self, kinds: u32) -> Self {
        self.kinds = kinds;
        self
    }

    /// True when the GPU kernel can run this query.
    pub fn gpu_capable(&self) -> bool {
        !matches!(self.program, Program::CpuRegex(_))
    }

    /// Does one name match (kind filter aside)?
    pub fn matches_name(&self, name: &[u8]) -> bool {
        match &self.program {
            Program::Substring {
                needle,
                fold,
                finder,
            } => {
                if *fold {
                    // Candidates where the first byte matches in either case, then the
                    // rest compared ignoring ASCII case: no copy of the name.
                    let m = needle.len();
                    if name.len() < m {
                        return false;
                    }
                    let first = needle[0];
                    let last_start = name.len() - m;
                    memchr::memchr2_iter(first, first.to_ascii_uppercase(), &name[..=last_start])
                        .any(|p| name[p + 1..p + m].eq_ignore_ascii_case(&needle[1..]))
                } else {
                    finder.find(name).is_some()
                }
            }
            Program::Glob(g) => g.matches(name),
            Program::Dfa(t) => t.matches(name),
            Program::CpuRegex(re) => re.is_match(name),
        }
    }

    /// The CPU twin: ids of live entries whose kind is wanted and whose name matches,
    /// ascending. Runs on every core; searches the whole name arena for the query's
    /// literal when the namespace maps arena bytes to entries (see [`name_scan`]).
    pub fn cpu(&self, view: &NamespaceView<'_>) -> Vec<u32> {
        if let Some(ids) = self.arena_scan(view, true) {
            return ids;
        }
        super::matching_ids(view.dirents, |d| self.entry_matches(view, d))
    }

    /// The same on one thread (the benchmark's baseline).
    pub fn cpu_one_thread(&self, view: &NamespaceView<'_>) -> Vec<u32> {
        if let Some(ids) = self.arena_scan(view, false) {
            return ids;
        }
        self.cpu_per_entry(view)
    }

    /// Entry by entry on one thread, never through the arena: the reference the
    /// arena scan is tested against.
    pub fn cpu_per_entry(&self, view: &NamespaceView<'_>) -> Vec<u32> {
        view.dirents
            .iter()
            .enumerate()
            .filter(|(_, d)| self.entry_matches(view, d))
            .map(|(i, _)| i as u32)
            .collect()
    }

    fn entry_matches(&self, view: &NamespaceView<'_>, d: &gpufs_format::DirentRecord) -> bool {
        d.ino != 0 && (self.kinds >> d.kind) & 1 == 1 && self.matches_name(view.name_of(d))
    }

    /// Runs `f` with the arena scan of this query over `view`; `None` when the query
    /// has no literal or the view no owner map.
    fn with_arena_scan<R>(
        &self,
        view: &NamespaceView<'_>,
        f: impl FnOnce(&ArenaScan<'_, '_>) -> R,
    ) -> Option<R> {
        let pre = self.prefilter.as_ref()?;
        let owners = view.owners.filter(|o| !o.is_empty())?;
        // The scan maps an occurrence to its name by binary search over the offsets.
        debug_assert!(owners.offsets.is_sorted(), "owner offsets ascend");
        let verify = |name: &[u8]| self.matches_name(name);
        Some(f(&ArenaScan {
            view,
            owners,
            pre,
            kinds: self.kinds,
            verify: &verify,
        }))
    }

    /// The arena scan, when the query has a literal and the view an owner map.
    fn arena_scan(&self, view: &NamespaceView<'_>, parallel: bool) -> Option<Vec<u32>> {
        self.with_arena_scan(view, |scan| scan.all(parallel))
    }

    /// The arena scan cut into pieces, for answers handed over piece by piece in arena
    /// order; `None` when this query or `view` has no arena scan.
    pub fn arena_pieces<'m, 'v>(
        &'m self,
        view: &'m NamespaceView<'v>,
    ) -> Option<ArenaPieces<'m, 'v>> {
        Some(ArenaPieces {
            matcher: self,
            view,
            pieces: self.with_arena_scan(view, |scan| scan.pieces())?,
        })
    }
}

/// [`NameMatcher::arena_pieces`]: the pieces of one arena scan, each searched alone.
pub struct ArenaPieces<'m, 'v> {
    matcher: &'m NameMatcher,
    view: &'m NamespaceView<'v>,
    pieces: Vec<(usize, usize)>,
}

impl ArenaPieces<'_, '_> {
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Ids of the matching entries of piece `i`, ascending: together, in piece order,
    /// every id [`NameMatcher::cpu`] gives (each piece's ids above the last piece's
    /// when names were written in entry order).
    pub fn ids(&self, i: usize) -> Vec<u32> {
        let Some(&range) = self.pieces.get(i) else {
            return Vec::new();
        };
        self.matcher
            .with_arena_scan(self.view, |scan| scan.piece(range))
            .unwrap_or_default()
    }
}
