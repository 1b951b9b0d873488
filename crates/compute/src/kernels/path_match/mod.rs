//! Full-path matching (`gpufs search --full-path`, like `find -path`/`-regex`) without
//! building a single path: what each directory's entries need (all match, none, those
//! whose names start with a tail, or a DFA run over the name) is decided once per
//! directory, over the namespace's [`DirTree`] (every directory's path, parents first),
//! and each entry then only looks at its own name. A substring is decided by literal
//! compares on the directory paths ([`literal`]: with one '/', from the words of the
//! paths' last bytes and the tree's child lists alone); a glob or regex becomes one
//! DFA over whole paths ("/dir/sub/name") whose state per directory comes from its
//! parent's. A state that
//! has matched stays matched (the match lies in the directory's path, so every path
//! below contains it) and a dead state rejects a whole subtree at once. Cost: the name
//! bytes, not the path bytes.
//!
//! Gives what matching the pattern against each entry's built path gives; a query whose
//! DFA would be too large returns `None` from [`PathMatcher::new`], and the caller
//! builds paths instead.

#[cfg(feature = "gpu")]
mod gpu;
mod heads;
mod literal;
mod reach;

use super::dfa::{self, DfaTable, FLAG_DEAD, FLAG_MATCH};
use super::glob::{self, ANY, CLASS, LITERAL, STAR};
use super::matching_ids;
use super::name_match::{NameMatcher, NameQuery};
use super::name_scan::Prefilter;
use super::path_build::{self, Keep, PathFormat, TextPiece};
use crate::dir_tree::DirTree;
use crate::ordered::in_order;
use crate::prefetch;
use crate::view::{head_kind, DirListing, NamespaceView, NO_ENTRY};
use gpufs_format::DirentRecord;
use rayon::prelude::*;

/// A visited entry its head decided (in place of its directory's index).
const DECIDED: u32 = u32::MAX;

/// Directories per piece of the parallel visit.
const VISIT_PIECE: usize = 256;

/// Entries ahead of the one compared whose names a visit starts loading (and twice as
/// far ahead, their records).
const AHEAD: usize = 4;

/// The path so far contains a match: so does every path below it.
const MATCHED: u32 = u32::MAX - 1;
/// No path below can match.
const DEAD: u32 = u32::MAX - 2;
/// The path of the directory cannot be built (broken or too deep chain).
const BROKEN: u32 = u32::MAX - 3;
/// Longest chain of directories followed, as path building does.
const MAX_DEPTH: usize = super::path_build::MAX_DEPTH;

pub const NAME: &str = "path_match";

/// A query compiled to one DFA over full paths, its states renumbered for the hot
/// loop: ids premultiplied by the stride (no multiply per byte) and the match and dead
/// states numbered last (one compare per byte tells them).
#[derive(Clone, Debug)]
pub struct PathMatcher {
    classes: [u32; 256],
    stride: u32,
    /// `trans[s + class]`, `s` premultiplied; the last column is end of input.
    trans: Vec<u32>,
    /// States from here on are match or dead states.
    special_from: u32,
    /// The start state (premultiplied), or MATCHED / DEAD.
    start: u32,
    /// Per premultiplied special state: does it match?
    matching: Vec<bool>,
    /// Per plain state (by index): can a name (bytes without '/') then the end of input
    /// reach a match from it ([`reach`])?
    name_live: Vec<bool>,
    /// For a substring without '/': it cannot span two path components, so an entry
    /// matches exactly when its directory's path does or its own name does, and the
    /// names are found by the whole-arena scan.
    names: Option<Box<NameMatcher>>,
    /// For a substring with '/': the part after its last '/' and whether case is
    /// ignored. An occurrence that is not wholly in the directory's path must put that
    /// '/' on the one before the name, so the name starts with this part and the
    /// directory's path ends with the rest: [`literal`] decides the latter per
    /// directory, a prefix compare per entry (on its head where it can) the former.
    tail: Option<(Vec<u8>, bool)>,
    /// For a substring: its finder, the substring and whether case is ignored. Which
    /// directories' entries need looking at then follows from literal searches over
    /// the directory paths, with no DFA run per directory.
    literal: Option<(Box<Prefilter>, Vec<u8>, bool)>,
}

impl PathMatcher {
    fn from_table(t: &DfaTable) -> PathMatcher {
        let states = t.flags.len();
        let stride = t.stride as usize;
        let special = |s: usize| t.flags[s] & (FLAG_MATCH | FLAG_DEAD) != 0;
        let mut order: Vec<usize> = (0..states).filter(|&s| !special(s)).collect();
        let plain = order.len();
        order.extend((0..states).filter(|&s| special(s)));
        let mut new_id = vec![0u32; states];
        for (k, &old) in order.iter().enumerate() {
            new_id[old] = (k * stride) as u32;
        }
        let mut trans = vec![0u32; states * stride];
        let mut matching = vec![false; states];
        for (k, &old) in order.iter().enumerate() {
            for c in 0..stride {
                trans[k * stride + c] = new_id[t.trans[old * stride + c] as usize];
            }
            matching[k] = t.flags[old] & FLAG_MATCH != 0;
        }
        let mut m = PathMatcher {
            classes: t.classes,
            stride: t.stride,
            trans,
            special_from: (plain * stride) as u32,
            start: 0,
            matching,
            name_live: Vec::new(),
            names: None,
            tail: None,
            literal: None,
        };
        // State 0 of the table is its start state.
        m.start = m.settle(new_id.first().copied().unwrap_or(0));
        m.name_live = m.name_live_states();
        m
    }

    /// `s`, or MATCHED / DEAD when it is a special state.
    fn settle(&self, s: u32) -> u32 {
        if s < self.special_from {
            s
        } else if self
            .matching
            .get((s / self.stride) as usize)
            .copied()
            .unwrap_or(false)
        {
            MATCHED
        } else {
            DEAD
        }
    }
}

/// `b` as a regex atom matching exactly that byte.
fn byte_atom(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() {
        out.push(char::from(b));
    } else {
        out.push_str(&format!(r"\x{b:02x}"));
    }
}

/// The regex (bytes mode) a glob program stands for, anchored at both ends.
fn glob_regex(g: &glob::GlobProgram) -> Option<String> {
    let mut r = String::from("(?s-u)^");
    for &t in &g.tokens {
        match t >> 24 {
            LITERAL => byte_atom(&mut r, (t & 0xff) as u8),
            ANY => r.push('.'),
            STAR => r.push_str(".*"),
            CLASS => {
                let set = g.classes.get((t & 0xff_ffff) as usize)?;
                let member = |b: usize| set[b >> 5] >> (b & 31) & 1 == 1;
                if !(0..256).any(member) {
                    // An empty set matches nothing; a regex class cannot be empty.
                    r.push_str(r"[^\x00-\xff]");
                    continue;
                }
                r.push('[');
                let mut b = 0usize;
                while b < 256 {
                    if member(b) {
                        let start = b;
                        while b + 1 < 256 && member(b + 1) {
                            b += 1;
                        }
                        r.push_str(&format!(r"\x{start:02x}-\x{b:02x}"));
                    }
                    b += 1;
                }
                r.push(']');
            }
            _ => return None,
        }
    }
    r.push('$');
    Some(r)
}

impl PathMatcher {
    /// `query` as a DFA over full paths; `None` when it cannot be one (too large).
    pub fn new(query: &NameQuery) -> Option<PathMatcher> {
        let (pattern, fold) = match query {
            NameQuery::Substring { needle, fold } => {
                let mut r = String::from("(?-u)");
                for &b in needle {
                    byte_atom(&mut r, b);
                }
                (r, *fold)
            }
            NameQuery::Glob { pattern, fold } => {
                (glob_regex(&glob::compile(pattern, *fold).ok()?)?, *fold)
            }
            NameQuery::Regex { pattern, fold } => (pattern.clone(), *fold),
        };
        let mut m = PathMatcher::from_table(&dfa::compile(&pattern, fold).ok()?);
        if let NameQuery::Substring { needle, fold } = query {
            m.literal =
                Prefilter::finder(needle, *fold).map(|f| (Box::new(f), needle.clone(), *fold));
            match needle.iter().rposition(|&b| b == b'/') {
                None => m.names = NameMatcher::new(query).ok().map(Box::new),
                Some(last) => m.tail = Some((needle[last + 1..].to_vec(), *fold)),
            }
        }
        Some(m)
    }

    /// The state after "/" + `name` from state `s` (premultiplied), or MATCHED / DEAD.
    fn run(&self, mut s: u32, name: &[u8]) -> u32 {
        for &b in std::iter::once(&b'/').chain(name) {
            s = self.trans[(s + self.classes[usize::from(b)]) as usize];
            if s >= self.special_from {
                return self.settle(s);
            }
        }
        s
    }

    /// Does a path ending in state `s` match (end of input taken)?
    fn ends_matched(&self, s: u32) -> bool {
        let end = self.trans[(s + self.stride - 1) as usize];
        self.settle(end) == MATCHED
    }

    /// The state of every directory's path, per slot of `tree` (parents first, so each
    /// state comes from its parent's with one run over the directory's own name, read
    /// front to back). Directories without a buildable path are not in the tree.
    fn dir_states<'t>(&self, tree: &'t DirTree) -> DirStates<'t> {
        let mut states = Vec::with_capacity(tree.len());
        states.push(self.start);
        for s in 1..tree.len() as u32 {
            let up = states.get(tree.parent(s) as usize).copied().unwrap_or(DEAD);
            states.push(match up {
                MATCHED | DEAD => up,
                _ => self.run(up, tree.name(s)),
            });
        }
        DirStates { tree, states }
    }

    /// Does every path below directory `dir` match (the substring lies in its path, or
    /// ends where it does: a match state shows one byte late, and the next byte of every
    /// path below is '/')?
    fn all_below(&self, states: &DirStates<'_>, slot: u32) -> bool {
        match states.below_slot(slot) {
            MATCHED => true,
            DEAD | BROKEN => false,
            st => self.run(st, &[]) == MATCHED,
        }
    }

    /// What the entries of the directory in tree slot `slot` need, by the kind of query.
    fn look(&self, states: &DirStates<'_>, slot: u32) -> Look {
        if self.names.is_some() {
            // Names holding the substring come from the arena scan.
            return if self.all_below(states, slot) {
                Look::All
            } else {
                Look::Nothing
            };
        }
        if let Some((tail, _)) = &self.tail {
            if self.all_below(states, slot) {
                return Look::All;
            }
            return match states.below_slot(slot) {
                BROKEN | DEAD => Look::Nothing,
                st => match self.run(st, tail) {
                    MATCHED => Look::Tail,
                    DEAD => Look::Nothing,
                    end if self.ends_matched(end) => Look::Tail,
                    _ => Look::Nothing,
                },
            };
        }
        match states.below_slot(slot) {
            MATCHED => Look::All,
            DEAD | BROKEN => Look::Nothing,
            s if self.entries_can_match(s) => Look::Run(s),
            _ => Look::Nothing,
        }
    }

    /// What the entries of each directory of `tree` need, per slot.
    fn slot_looks(&self, tree: &DirTree) -> Vec<Look> {
        if let Some((finder, needle, fold)) = &self.literal {
            let mut looks = vec![Look::Nothing; tree.len()];
            for (s, look) in literal::literal_looks(tree, finder, needle, *fold) {
                looks[s as usize] = look;
            }
            return looks;
        }
        let states = self.dir_states(tree);
        (0..tree.len() as u32)
            .map(|s| self.look(&states, s))
            .collect()
    }

    /// The slots whose entries can match and what they need, ascending.
    fn slots_to_visit(&self, tree: &DirTree) -> Vec<(u32, Look)> {
        if let Some((finder, needle, fold)) = &self.literal {
            return literal::literal_looks(tree, finder, needle, *fold);
        }
        let states = self.dir_states(tree);
        (0..tree.len() as u32)
            .map(|s| (s, self.look(&states, s)))
            .filter(|&(_, look)| look != Look::Nothing)
            .collect()
    }

    /// Does entry `d` of a directory whose entries need `look` match?
    fn accepts(&self, look: Look, d: &DirentRecord, view: &NamespaceView<'_>) -> bool {
        match look {
            Look::Nothing => false,
            Look::All => true,
            Look::Tail => match &self.tail {
                Some((tail, fold)) => starts_with(view.name_of(d), tail, *fold),
                None => false,
            },
            Look::Run(s) => match self.run(s, view.name_of(d)) {
                MATCHED => true,
                DEAD => false,
                end => self.ends_matched(end),
            },
        }
    }

    /// The directories to visit and what their entries need, in tree order; or, when
    /// they hold more than a quarter of all entries, what every directory's entries need
    /// for one pass over all of them instead.
    fn plan_visits(
        &self,
        view: &NamespaceView<'_>,
        listing: &dyn DirListing,
        tree: &DirTree,
    ) -> Result<Vec<(u32, Look)>, Vec<Look>> {
        let to_visit = self.slots_to_visit(tree);
        let mut visits = Vec::with_capacity(to_visit.len());
        let mut work = 0usize;
        for &(slot, look) in &to_visit {
            let dir = tree.ino(slot);
            work = work.saturating_add(listing.entry_count(dir));
            visits.push((dir, look));
        }
        if work > view.dirents.len() / 4 {
            let mut looks = vec![Look::Nothing; tree.len()];
            for (s, look) in to_visit {
                looks[s as usize] = look;
            }
            return Err(looks);
        }
        Ok(visits)
    }

    /// The matching entries of the directories `piece` lists, directory by directory,
    /// each in its listing's order (which the listing vouches for: its entries are
    /// live and in that directory, with the kinds and name starts their heads say).
    fn visit(
        &self,
        view: &NamespaceView<'_>,
        kinds: u32,
        listing: &dyn DirListing,
        piece: &[(u32, Look)],
    ) -> Vec<u32> {
        // First from the lists alone: each entry's kind and first name bytes (its head)
        // decide most entries. The rest (a tail longer than a head, a DFA still running
        // after it) keep the index of their directory in the piece, to be decided from
        // their records and names.
        let tail_key = self.tail_key();
        let mut listed: Vec<(u32, u32)> = Vec::new();
        for (k, &(dir, look)) in piece.iter().enumerate() {
            let list = listing.entries(dir);
            for (&id, &head) in list.ids.iter().zip(list.heads) {
                if id == NO_ENTRY || (kinds >> head_kind(head)) & 1 == 0 {
                    continue;
                }
                match self.by_head(look, head, tail_key) {
                    Some(true) => listed.push((id, DECIDED)),
                    Some(false) => {}
                    None => listed.push((id, k as u32)),
                }
            }
        }
        let mut out = Vec::with_capacity(listed.len());
        // Each entry left is two scattered reads (its record, then its name): the
        // records of entries a few ahead and the names of the next ones are loaded while
        // this one is compared.
        for (i, &(id, k)) in listed.iter().enumerate() {
            if k == DECIDED {
                out.push(id);
                continue;
            }
            if let Some(&(ahead, ak)) = listed.get(i + 2 * AHEAD) {
                if ak != DECIDED {
                    prefetch::record(view.dirents, ahead as usize);
                }
            }
            if let Some(&(next, nk)) = listed.get(i + AHEAD) {
                if nk != DECIDED {
                    if let Some(n) = view.dirents.get(next as usize) {
                        prefetch::record(view.names, n.name_offset as usize);
                    }
                }
            }
            let (Some(d), Some(&(dir, look))) =
                (view.dirents.get(id as usize), piece.get(k as usize))
            else {
                continue;
            };
            if d.ino != 0
                && d.parent == dir
                && (kinds >> d.kind) & 1 == 1
                && self.accepts(look, d, view)
            {
                out.push(id);
            }
        }
        out
    }

    /// [`Self::cpu_listed`]'s matches that `keep` keeps, written out as `format` says
    /// while the directories are visited: pieces of directories in tree order (parents
    /// before children), each directory's entries in its listing's order, handed to
    /// `deliver` in order as each is done. Returns how many paths; `None`, having
    /// delivered nothing, where the answer cannot come that way (a substring without
    /// '/', whose names come from the arena scan; a visit of most entries; no kept
    /// directory paths).
    pub fn cpu_listed_text(
        &self,
        view: &NamespaceView<'_>,
        kinds: u32,
        listing: &dyn DirListing,
        keep: Keep<'_>,
        format: &PathFormat,
        deliver: &mut dyn FnMut(Vec<u8>),
    ) -> Option<usize> {
        if self.names.is_some() {
            return None;
        }
        let tree = view.dirs?;
        let visits = self.plan_visits(view, listing, tree).ok()?;
        let mut lines = 0;
        in_order(
            visits.len().div_ceil(VISIT_PIECE),
            |i| {
                let piece = &visits[i * VISIT_PIECE..((i + 1) * VISIT_PIECE).min(visits.len())];
                let ids = self.visit(view, kinds, listing, piece);
                path_build::tree_lines(view, tree, &ids, keep, format)
            },
            // Random reads more than text: on every core.
            &|| usize::MAX,
            &mut |p: TextPiece| {
                lines += p.lines;
                deliver(p.text);
            },
        );
        Some(lines)
    }

    /// Ids of live entries of a kind in `kinds` whose full path matches, ascending: one
    /// pass over every entry.
    pub fn cpu(&self, view: &NamespaceView<'_>, kinds: u32) -> Vec<u32> {
        let tree = DirTree::of(view);
        let looks = self.slot_looks(&tree);
        self.scan(view, kinds, &tree, &looks)
    }

    /// What [`Self::cpu`] gives, visiting through `listing` only the directories whose
    /// entries can match, when they hold few of all entries (else one pass over all).
    pub fn cpu_listed(
        &self,
        view: &NamespaceView<'_>,
        kinds: u32,
        listing: &dyn DirListing,
    ) -> Vec<u32> {
        let tree = DirTree::of(view);
        let visits = match self.plan_visits(view, listing, &tree) {
            Ok(visits) => visits,
            Err(looks) => return self.scan(view, kinds, &tree, &looks),
        };
        // The directories in pieces over every core: each entry is a few random reads.
        let mut found: Vec<u32> = visits
            .par_chunks(VISIT_PIECE)
            .flat_map_iter(|piece| self.visit(view, kinds, listing, piece))
            .collect();
        found.sort_unstable();
        found.dedup();
        match &self.names {
            Some(names) => merge(&self.by_name(view, kinds, &tree, names), &found),
            None => found,
        }
    }

    /// Per directory inode, what its entries need ([`Look::code`]), so that the
    /// allocator's zeroed memory reads as Nothing.
    fn look_codes(&self, view: &NamespaceView<'_>, tree: &DirTree, looks: &[Look]) -> Vec<u32> {
        let slots = view
            .dir_entry
            .len()
            .max(view.inodes.len())
            .max(gpufs_format::ROOT_INO as usize + 1);
        let mut codes = vec![0u32; slots];
        for (slot, look) in looks.iter().enumerate() {
            if let Some(c) = codes.get_mut(tree.ino(slot as u32) as usize) {
                *c = look.code();
            }
        }
        codes
    }

    /// The pass over every entry, from what each directory's entries need.
    fn scan(
        &self,
        view: &NamespaceView<'_>,
        kinds: u32,
        tree: &DirTree,
        looks: &[Look],
    ) -> Vec<u32> {
        let codes = self.look_codes(view, tree, looks);
        let in_dirs = matching_ids(view.dirents, |d| {
            d.ino != 0
                && (kinds >> d.kind) & 1 == 1
                && codes
                    .get(d.parent as usize)
                    .is_some_and(|&l| l != 0 && self.accepts(Look::from_code(l), d, view))
        });
        match &self.names {
            Some(names) => merge(&self.by_name(view, kinds, tree, names), &in_dirs),
            None => in_dirs,
        }
    }

    /// Substring without '/': entries whose name holds it, by the whole-arena scan,
    /// whose directories have a buildable path.
    fn by_name(
        &self,
        view: &NamespaceView<'_>,
        kinds: u32,
        tree: &DirTree,
        names: &NameMatcher,
    ) -> Vec<u32> {
        let mut by_name = names.clone().with_kinds(kinds).cpu(view);
        by_name.retain(|&id| has_path(view, tree, id));
        by_name
    }
}

/// Does entry `id` have a buildable path (its directory has one, not too deep)?
fn has_path(view: &NamespaceView<'_>, tree: &DirTree, id: u32) -> bool {
    view.dirents
        .get(id as usize)
        .is_some_and(|d| tree.parent_slot(d.parent).is_some())
}

/// What the entries of one directory need to match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    Nothing,
    /// Every entry matches.
    All,
    /// Entries whose names start with the query's tail.
    Tail,
    /// Entries for which "/" + name from this state ends matched.
    Run(u32),
}

impl Look {
    /// One word per directory for the pass over every entry: 0 is Nothing.
    fn code(self) -> u32 {
        match self {
            Look::Nothing => 0,
            Look::All => 1,
            Look::Tail => 2,
            // Plain states lie below the special ones, far from u32::MAX.
            Look::Run(s) => s + 3,
        }
    }

    fn from_code(c: u32) -> Look {
        match c {
            0 => Look::Nothing,
            1 => Look::All,
            2 => Look::Tail,
            s => Look::Run(s - 3),
        }
    }
}

/// Does `name` start with `tail` (ASCII case ignored with `fold`)?
fn starts_with(name: &[u8], tail: &[u8], fold: bool) -> bool {
    // A byte loop: tails are short, and a library compare costs a call per entry.
    match name.get(..tail.len()) {
        Some(head) if fold => head
            .iter()
            .zip(tail)
            .all(|(a, b)| a.eq_ignore_ascii_case(b)),
        Some(head) => head.iter().zip(tail).all(|(a, b)| a == b),
        None => false,
    }
}

/// Per slot of a [`DirTree`], the state of that directory's path, as
/// [`PathMatcher::dir_states`] leaves them.
struct DirStates<'t> {
    tree: &'t DirTree,
    states: Vec<u32>,
}

impl DirStates<'_> {
    /// The state of a path below tree slot `slot`, or BROKEN when entries there have
    /// no path (deeper than path building follows).
    fn below_slot(&self, slot: u32) -> u32 {
        if self.tree.depth_of(slot) < MAX_DEPTH {
            self.states.get(slot as usize).copied().unwrap_or(BROKEN)
        } else {
            BROKEN
        }
    }
}

/// Two ascending id lists as one, each id once.
fn merge(a: &[u32], b: &[u32]) -> Vec<u32> {
    debug_assert!(a.is_sorted() && b.is_sorted(), "merge takes ascending ids");
    if b.is_empty() {
        return a.to_vec();
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}
