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
use super::name_match::{NameMatcher, NameQuery};
use crate::view::{matching_ids, NamespaceView};

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

    /// The state of every directory's path, indexed by inode (UNKNOWN for inodes that
    /// are not reachable directories), and the directory's depth (entries on its chain,
    /// 0 for the root). A directory whose chain is broken, or deeper than path building
    /// follows, is BROKEN, so what matches never depends on how inodes are numbered.
    fn dir_states(&self, view: &NamespaceView<'_>) -> (Vec<u32>, Vec<u32>) {
        let slots = view.dir_entry.len().max(view.inodes.len());
        let mut memo = vec![UNKNOWN; slots];
        let mut depth = vec![0u32; slots];
        if let Some(root) = memo.get_mut(gpufs_format::ROOT_INO as usize) {
            *root = self.start;
        }
        let mut chain = Vec::new();
        for dir in 0..view.dir_entry.len() as u32 {
            if view.entry_of_dir(dir).is_none() || memo[dir as usize] != UNKNOWN {
                continue;
            }
            // Up to the first known ancestor, then down again.
            chain.clear();
            let mut d = dir;
            let mut known = (BROKEN, 0u32);
            for _ in 0..=MAX_DEPTH {
                match memo.get(d as usize) {
                    Some(&s) if s != UNKNOWN => {
                        known = (s, depth[d as usize]);
                        break;
                    }
                    Some(_) => {}
                    None => break,
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
                memo[c as usize] = s;
                depth[c as usize] = dep;
            }
        }
        (memo, depth)
    }

    /// The state of a path below directory `parent`, or BROKEN when it has no
    /// buildable path (a broken chain, or deeper than path building follows).
    fn state_below(states: &(Vec<u32>, Vec<u32>), parent: u32) -> u32 {
        let (memo, depth) = states;
        match memo.get(parent as usize).copied() {
            None | Some(UNKNOWN) | Some(BROKEN) => BROKEN,
            Some(_) if depth[parent as usize] as usize + 1 > MAX_DEPTH => BROKEN,
            Some(s) => s,
        }
    }

    /// Ids of live entries of a kind in `kinds` whose full path matches, ascending.
    pub fn cpu(&self, view: &NamespaceView<'_>, kinds: u32) -> Vec<u32> {
        let states = self.dir_states(view);
        if let Some(names) = &self.names {
            return self.by_components(view, kinds, &states, names);
        }
        if let Some((tail, fold)) = &self.tail {
            return self.by_tail(view, kinds, &states, tail, *fold);
        }
        matching_ids(view.dirents, |d| {
            if d.ino == 0 || (kinds >> d.kind) & 1 == 0 {
                return false;
            }
            match Self::state_below(&states, d.parent) {
                MATCHED => true,
                DEAD | BROKEN | UNKNOWN => false,
                s => match self.run(s, view.name_of(d)) {
                    MATCHED => true,
                    DEAD => false,
                    end => self.ends_matched(end),
                },
            }
        })
    }

    /// Substring with '/': an entry matches when its directory's path holds the
    /// substring (as in [`Self::by_components`]), or when its name starts with `tail`
    /// and the directory's path + "/" + `tail` ends with the substring.
    fn by_tail(
        &self,
        view: &NamespaceView<'_>,
        kinds: u32,
        states: &(Vec<u32>, Vec<u32>),
        tail: &[u8],
        fold: bool,
    ) -> Vec<u32> {
        // Per directory: 2 = every path below matches, 1 = a name starting with the
        // tail completes a match, 0 = neither (or no buildable path).
        let verdict: Vec<u8> = (0..states.0.len() as u32)
            .map(|d| match Self::state_below(states, d) {
                BROKEN | UNKNOWN | DEAD => 0,
                MATCHED => 2,
                st if self.run(st, &[]) == MATCHED => 2,
                st => match self.run(st, tail) {
                    MATCHED => 1,
                    DEAD => 0,
                    end => u8::from(self.ends_matched(end)),
                },
            })
            .collect();
        matching_ids(view.dirents, |d| {
            if d.ino == 0 || (kinds >> d.kind) & 1 == 0 {
                return false;
            }
            match verdict.get(d.parent as usize) {
                Some(2) => true,
                Some(1) => {
                    let name = view.name_of(d);
                    name.len() >= tail.len()
                        && if fold {
                            name[..tail.len()].eq_ignore_ascii_case(tail)
                        } else {
                            name.starts_with(tail)
                        }
                }
                _ => false,
            }
        })
    }

    /// Entries whose name contains the substring (arena scan) or whose directory's
    /// path does, merged ascending.
    fn by_components(
        &self,
        view: &NamespaceView<'_>,
        kinds: u32,
        states: &(Vec<u32>, Vec<u32>),
        names: &NameMatcher,
    ) -> Vec<u32> {
        let reachable = |parent: u32| Self::state_below(states, parent) != BROKEN;
        let mut by_name = names.clone().with_kinds(kinds).cpu(view);
        by_name.retain(|&id| {
            view.dirents
                .get(id as usize)
                .is_some_and(|d| reachable(d.parent))
        });
        // Matched in the directory's path, or at its end: a match state shows one byte
        // late, and the next byte of every path below is '/'.
        let by_dir = matching_ids(view.dirents, |d| {
            d.ino != 0
                && (kinds >> d.kind) & 1 == 1
                && match Self::state_below(states, d.parent) {
                    MATCHED => true,
                    DEAD | BROKEN | UNKNOWN => false,
                    st => self.run(st, &[]) == MATCHED,
                }
        });
        let mut out = Vec::with_capacity(by_name.len() + by_dir.len());
        let (mut a, mut b) = (by_name.iter().peekable(), by_dir.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(&&x), Some(&&y)) if y < x => b.next(),
                (Some(_), Some(_)) => {
                    b.next();
                    a.next()
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            if let Some(&id) = next {
                out.push(id);
            }
        }
        out
    }
}
