//! Full-path matching (`gpufs search --full-path`, like `find -path`/`-regex`) without
//! building a single path: the query becomes one DFA over whole paths
//! ("/dir/sub/name"), each directory's path is run through it once — its state memoized
//! per directory, derived from its parent's — and each entry then only runs "/" + its
//! own name from its directory's state. A state that has matched stays matched (the
//! match lies in the directory's path, so every path below contains it) and a dead
//! state rejects a whole subtree at once. Cost: the name bytes, not the path bytes.
//!
//! Gives what matching the pattern against each entry's built path gives; a query whose
//! DFA would be too large returns `None` from [`PathMatcher::new`], and the caller
//! builds paths instead.

use super::dfa::{self, DfaTable, FLAG_DEAD, FLAG_MATCH};
use super::glob::{self, ANY, CLASS, LITERAL, STAR};
use super::name_match::{entry_hits, NameMatcher, NameQuery};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{GpuContext, Slot};
use crate::mirror::NamespaceMirror;
use crate::view::{matching_ids, DirListing, NamespaceView, NO_ENTRY};
use gpufs_format::DirentRecord;

/// Memo value of a directory not reached yet.
const UNKNOWN: u32 = u32::MAX;
/// The path so far contains a match: so does every path below it.
const MATCHED: u32 = u32::MAX - 1;
/// No path below can match.
const DEAD: u32 = u32::MAX - 2;
/// The path of the directory cannot be built (broken or too deep chain).
const BROKEN: u32 = u32::MAX - 3;
/// Longest chain of directories followed, as path building does.
const MAX_DEPTH: usize = super::path_build::MAX_DEPTH;

pub const NAME: &str = "path_match";
const SOURCE: &str = include_str!("../../kernels/path_match.wgsl");

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
    /// For a substring without '/': it cannot span two path components, so an entry
    /// matches exactly when its directory's path does or its own name does, and the
    /// names are found by the whole-arena scan.
    names: Option<Box<NameMatcher>>,
    /// For a substring with '/': the part after its last '/' and whether case is
    /// ignored. An occurrence that is not wholly in the directory's path must put that
    /// '/' on the one before the name, so the name starts with this part and the
    /// directory's path ends with the rest: one DFA run per directory decides the
    /// latter, a prefix compare per entry the former.
    tail: Option<(Vec<u8>, bool)>,
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
            names: None,
            tail: None,
        };
        // State 0 of the table is its start state.
        m.start = m.settle(new_id.first().copied().unwrap_or(0));
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

    /// The state of every directory's path (UNKNOWN for inodes that are not reachable
    /// directories) and its depth (entries on its chain, 0 for the root). A directory
    /// whose chain is broken, or deeper than path building follows, is BROKEN, so what
    /// matches never depends on how inodes are numbered. Directories go in inode order,
    /// which is near the order they were made in: parents are mostly known already and
    /// the entries and names read lie close together.
    fn dir_states(&self, view: &NamespaceView<'_>) -> DirStates {
        let slots = view.dir_entry.len().max(view.inodes.len());
        let mut st = DirStates {
            memo: vec![0; slots],
            depth: vec![0; slots],
            dirs: Vec::new(),
        };
        st.set(gpufs_format::ROOT_INO, self.start, 0);
        let mut chain = Vec::new();
        for (dir, &entry) in view.dir_entry.iter().enumerate() {
            let dir = dir as u32;
            if entry == NO_ENTRY || view.entry_of_dir(dir).is_none() || st.get(dir) != UNKNOWN {
                continue;
            }
            // Up to the first known ancestor, then down again.
            chain.clear();
            let mut d = dir;
            let mut known = (BROKEN, 0u32);
            for _ in 0..=MAX_DEPTH {
                if (d as usize) >= slots {
                    break;
                }
                let s = st.get(d);
                if s != UNKNOWN {
                    known = (s, st.depth_of(d));
                    break;
                }
                let Some(e) = view
                    .entry_of_dir(d)
                    .and_then(|e| view.dirents.get(e as usize))
                else {
                    break;
                };
                if e.ino == 0 {
                    break;
                }
                chain.push(d);
                d = e.parent;
            }
            let (mut s, mut dep) = known;
            for &c in chain.iter().rev() {
                dep += 1;
                s = match s {
                    MATCHED | DEAD | BROKEN => s,
                    _ if dep as usize > MAX_DEPTH => BROKEN,
                    _ => match view
                        .entry_of_dir(c)
                        .and_then(|e| view.dirents.get(e as usize))
                    {
                        Some(e) => self.run(s, view.name_of(e)),
                        None => BROKEN,
                    },
                };
                if dep as usize > MAX_DEPTH {
                    s = BROKEN;
                }
                st.set(c, s, dep);
            }
        }
        st
    }

    /// Does every path below directory `dir` match (the substring lies in its path, or
    /// ends where it does: a match state shows one byte late, and the next byte of every
    /// path below is '/')?
    fn all_below(&self, states: &DirStates, dir: u32) -> bool {
        match states.below(dir) {
            MATCHED => true,
            DEAD | BROKEN | UNKNOWN => false,
            st => self.run(st, &[]) == MATCHED,
        }
    }

    /// What the entries of directory `dir` need, by the kind of query.
    fn look(&self, states: &DirStates, dir: u32) -> Look {
        if self.names.is_some() {
            // Names holding the substring come from the arena scan.
            return if self.all_below(states, dir) {
                Look::All
            } else {
                Look::Nothing
            };
        }
        if let Some((tail, _)) = &self.tail {
            if self.all_below(states, dir) {
                return Look::All;
            }
            return match states.below(dir) {
                BROKEN | UNKNOWN | DEAD => Look::Nothing,
                st => match self.run(st, tail) {
                    MATCHED => Look::Tail,
                    DEAD => Look::Nothing,
                    end if self.ends_matched(end) => Look::Tail,
                    _ => Look::Nothing,
                },
            };
        }
        match states.below(dir) {
            MATCHED => Look::All,
            DEAD | BROKEN | UNKNOWN => Look::Nothing,
            s => Look::Run(s),
        }
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

    /// Ids of live entries of a kind in `kinds` whose full path matches, ascending: one
    /// pass over every entry.
    pub fn cpu(&self, view: &NamespaceView<'_>, kinds: u32) -> Vec<u32> {
        let states = self.dir_states(view);
        self.scan(view, kinds, &states)
    }

    /// What [`Self::cpu`] gives, visiting through `listing` only the directories whose
    /// entries can match, when they hold few of all entries (else one pass over all).
    pub fn cpu_listed(
        &self,
        view: &NamespaceView<'_>,
        kinds: u32,
        listing: &dyn DirListing,
    ) -> Vec<u32> {
        let states = self.dir_states(view);
        let mut looks = Vec::new();
        let mut work = 0usize;
        for &d in &states.dirs {
            let look = self.look(&states, d);
            if look != Look::Nothing {
                work = work.saturating_add(listing.entry_count(d));
                looks.push((d, look));
            }
        }
        if work > view.dirents.len() / 4 {
            return self.scan(view, kinds, &states);
        }
        let mut found = Vec::with_capacity(work);
        for (dir, look) in looks {
            listing.for_each_entry(dir, &mut |id| {
                let Some(d) = view.dirents.get(id as usize) else {
                    return;
                };
                if d.ino != 0
                    && d.parent == dir
                    && (kinds >> d.kind) & 1 == 1
                    && self.accepts(look, d, view)
                {
                    found.push(id);
                }
            });
        }
        found.sort_unstable();
        found.dedup();
        match &self.names {
            Some(names) => merge(&self.by_name(view, kinds, &states, names), &found),
            None => found,
        }
    }

    /// Per directory inode, what its entries need ([`Look::code`]), so that the
    /// allocator's zeroed memory reads as Nothing.
    fn look_codes(&self, states: &DirStates) -> Vec<u32> {
        let mut looks = vec![0u32; states.memo.len()];
        for &d in &states.dirs {
            looks[d as usize] = self.look(states, d).code();
        }
        looks
    }

    /// The GPU kernel over the mirror: the same ids as [`Self::cpu`]. The directories'
    /// states are computed here (one pass over the directories), the entries' part (one
    /// invocation per entry, over the mirror) on the GPU; a substring without '/' takes
    /// its names from the name-match kernel.
    pub fn gpu(
        &self,
        ctx: &GpuContext,
        mirror: &NamespaceMirror,
        view: &NamespaceView<'_>,
        kinds: u32,
    ) -> ComputeResult<Vec<u32>> {
        let states = self.dir_states(view);
        let looks = self.look_codes(&states);
        let count = mirror.dirent_count;
        let mut prog: Vec<u32> = self.classes.to_vec();
        let trans_base = prog.len() as u32;
        prog.extend_from_slice(&self.trans);
        let match_base = prog.len() as u32;
        prog.extend(self.matching.iter().map(|&m| u32::from(m)));
        let tail_base = prog.len() as u32;
        let (tail, fold) = match &self.tail {
            Some((t, f)) => (t.as_slice(), *f),
            None => (&[][..], false),
        };
        prog.extend(tail.iter().map(|&b| u32::from(b)));
        prog.push(0);
        let looks_len = u32::try_from(looks.len())
            .map_err(|_| ComputeError::TooLarge(format!("{} directories", looks.len())))?;
        if looks.len() as u64 * 4 > ctx.max_binding {
            return Err(ComputeError::TooLarge(format!(
                "{} inode slots of directory states",
                looks.len()
            )));
        }
        let params: [u32; 12] = [
            count,
            looks_len,
            self.stride,
            self.special_from,
            trans_base,
            match_base,
            tail_base,
            tail.len() as u32,
            u32::from(fold),
            kinds,
            0,
            0,
        ];
        let kernel = ctx.kernel(
            NAME,
            SOURCE,
            &["dirents", "names"],
            &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite],
        )?;
        let uniform = ctx.uniform(bytemuck::cast_slice(&params));
        let prog_buf = ctx.upload("path program", bytemuck::cast_slice(&prog));
        let looks_buf = ctx.upload("directory looks", bytemuck::cast_slice(&looks));
        let in_dirs = entry_hits(
            ctx,
            mirror,
            &kernel,
            &[&uniform, &prog_buf, &looks_buf],
            count,
        )?;
        match &self.names {
            Some(names) => {
                let mut by_name = names.clone().with_kinds(kinds).gpu(ctx, mirror)?;
                by_name.retain(|&id| {
                    view.dirents
                        .get(id as usize)
                        .is_some_and(|d| states.below(d.parent) != BROKEN)
                });
                Ok(merge(&by_name, &in_dirs))
            }
            None => Ok(in_dirs),
        }
    }

    /// The pass over every entry, from the directories' states.
    fn scan(&self, view: &NamespaceView<'_>, kinds: u32, states: &DirStates) -> Vec<u32> {
        let looks = self.look_codes(states);
        let in_dirs = matching_ids(view.dirents, |d| {
            d.ino != 0
                && (kinds >> d.kind) & 1 == 1
                && looks
                    .get(d.parent as usize)
                    .is_some_and(|&l| l != 0 && self.accepts(Look::from_code(l), d, view))
        });
        match &self.names {
            Some(names) => merge(&self.by_name(view, kinds, states, names), &in_dirs),
            None => in_dirs,
        }
    }

    /// Substring without '/': entries whose name holds it, by the whole-arena scan,
    /// whose directories have a buildable path.
    fn by_name(
        &self,
        view: &NamespaceView<'_>,
        kinds: u32,
        states: &DirStates,
        names: &NameMatcher,
    ) -> Vec<u32> {
        let mut by_name = names.clone().with_kinds(kinds).cpu(view);
        by_name.retain(|&id| {
            view.dirents
                .get(id as usize)
                .is_some_and(|d| states.below(d.parent) != BROKEN)
        });
        by_name
    }
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

/// Per directory inode, the state of its path and its depth, as [`PathMatcher::dir_states`]
/// leaves them.
struct DirStates {
    /// `!state`, so that the allocator's zeroed memory reads as UNKNOWN.
    memo: Vec<u32>,
    depth: Vec<u16>,
    /// The directories with a state, in the order they got it.
    dirs: Vec<u32>,
}

impl DirStates {
    fn get(&self, dir: u32) -> u32 {
        self.memo.get(dir as usize).map_or(UNKNOWN, |&m| !m)
    }

    fn depth_of(&self, dir: u32) -> u32 {
        self.depth.get(dir as usize).map_or(0, |&d| u32::from(d))
    }

    fn set(&mut self, dir: u32, state: u32, depth: u32) {
        if let (Some(m), Some(d)) = (
            self.memo.get_mut(dir as usize),
            self.depth.get_mut(dir as usize),
        ) {
            *m = !state;
            // MAX_DEPTH + 1 at most: a deeper chain is BROKEN before it gets here.
            *d = depth.min(u32::from(u16::MAX)) as u16;
            self.dirs.push(dir);
        }
    }

    /// The state of a path below directory `parent`, or BROKEN when it has no
    /// buildable path (a broken chain, or deeper than path building follows).
    fn below(&self, parent: u32) -> u32 {
        match self.get(parent) {
            UNKNOWN | BROKEN => BROKEN,
            _ if self.depth_of(parent) as usize + 1 > MAX_DEPTH => BROKEN,
            s => s,
        }
    }
}

/// Two ascending id lists as one, each id once.
fn merge(a: &[u32], b: &[u32]) -> Vec<u32> {
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
