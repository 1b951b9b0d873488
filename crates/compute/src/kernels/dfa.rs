//! Regular expressions compiled on the CPU (`regex-automata`) to a bounded, dense DFA
//! table the name-match kernel runs per name: byte -> class, state x class -> state,
//! per-state flags. A pattern whose DFA exceeds the budget is refused here; the caller
//! then runs it on the CPU with `regex-automata`'s meta engine.

use std::collections::HashMap;

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::util::syntax;
use regex_automata::Anchored;

use crate::error::ComputeError;

/// Most DFA states the GPU table may have.
pub const MAX_STATES: usize = 16_384;
/// Most bytes regex-automata may use while building the DFA.
const BUILD_LIMIT: usize = 16 << 20;

pub const FLAG_MATCH: u32 = 1;
pub const FLAG_DEAD: u32 = 2;

/// A dense DFA as flat tables. State 0 is the start state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DfaTable {
    /// byte -> class
    pub classes: [u32; 256],
    /// classes + 1 (the last column is end of input)
    pub stride: u32,
    /// `trans[s * stride + c]`
    pub trans: Vec<u32>,
    pub flags: Vec<u32>,
}

/// Why a regex cannot become a table.
#[derive(Debug)]
pub enum DfaRefusal {
    /// Not a valid regex: the user must fix it.
    Invalid(ComputeError),
    /// Valid, but too big or needs look-around the DFA cannot do: run it on the CPU.
    TooLarge(String),
}

/// The syntax every regex query uses (Rust `regex` syntax, Unicode-aware, matching
/// anywhere in the name unless anchored with `^`/`$`).
pub fn syntax_config(fold: bool) -> syntax::Config {
    syntax::Config::new().case_insensitive(fold).utf8(false)
}

/// Compiles `pattern` to a table within [`MAX_STATES`].
pub fn compile(pattern: &str, fold: bool) -> Result<DfaTable, DfaRefusal> {
    if pattern.is_empty() {
        return Err(DfaRefusal::Invalid(ComputeError::BadQuery(
            "empty pattern".into(),
        )));
    }
    // Parse first, so a syntax error is told apart from a DFA that is too big.
    if let Err(e) = regex_automata::util::syntax::parse_with(pattern, &syntax_config(fold)) {
        return Err(DfaRefusal::Invalid(ComputeError::BadQuery(format!(
            "invalid regex: {e}"
        ))));
    }
    let dfa = dense::Builder::new()
        .configure(
            dense::Config::new()
                .start_kind(StartKind::Unanchored)
                .dfa_size_limit(Some(BUILD_LIMIT))
                .determinize_size_limit(Some(BUILD_LIMIT)),
        )
        .syntax(syntax_config(fold))
        .build(pattern)
        .map_err(|e| DfaRefusal::TooLarge(e.to_string()))?;
    let start_cfg = start::Config::new()
        .look_behind(None)
        .anchored(Anchored::No);
    let start = dfa
        .start_state(&start_cfg)
        .map_err(|e| DfaRefusal::TooLarge(e.to_string()))?;
    let (classes, reps) = class_table(&dfa);
    let (trans, flags) = flat_states(&dfa, start, &reps)?;
    Ok(DfaTable {
        classes,
        stride: reps.len() as u32 + 1,
        trans,
        flags,
    })
}

/// Each byte's class (numbered in order of first byte) and one byte of each class.
fn class_table(dfa: &dense::DFA<Vec<u32>>) -> ([u32; 256], Vec<u8>) {
    let byte_classes = dfa.byte_classes();
    let mut reps: Vec<u8> = Vec::new();
    let mut classes = [0u32; 256];
    let mut class_of_rep: HashMap<u8, u32> = HashMap::new();
    for b in 0..=255u8 {
        let c = byte_classes.get(b);
        let id = *class_of_rep.entry(c).or_insert_with(|| {
            reps.push(b);
            (reps.len() - 1) as u32
        });
        classes[usize::from(b)] = id;
    }
    (classes, reps)
}

/// The states reachable from `start`, numbered in the order they are found (`start` is
/// 0): their transitions on each class (by its byte in `reps`) then on end of input, and
/// their flags.
fn flat_states(
    dfa: &dense::DFA<Vec<u32>>,
    start: StateID,
    reps: &[u8],
) -> Result<(Vec<u32>, Vec<u32>), DfaRefusal> {
    let mut ids: HashMap<StateID, u32> = HashMap::new();
    let mut order: Vec<StateID> = vec![start];
    ids.insert(start, 0);
    let mut trans = Vec::new();
    let mut flags = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let s = order[i];
        if dfa.is_quit_state(s) {
            return Err(DfaRefusal::TooLarge(
                "pattern needs Unicode word boundaries on non-ASCII names".into(),
            ));
        }
        let mut f = 0;
        if dfa.is_match_state(s) {
            f |= FLAG_MATCH;
        }
        if dfa.is_dead_state(s) {
            f |= FLAG_DEAD;
        }
        flags.push(f);
        let nexts = reps
            .iter()
            .map(|&b| dfa.next_state(s, b))
            .chain(std::iter::once(dfa.next_eoi_state(s)));
        for n in nexts {
            let next_id = match ids.get(&n) {
                Some(&id) => id,
                None => {
                    if order.len() >= MAX_STATES {
                        return Err(DfaRefusal::TooLarge(format!(
                            "its DFA has more than {MAX_STATES} states"
                        )));
                    }
                    let id = order.len() as u32;
                    ids.insert(n, id);
                    order.push(n);
                    id
                }
            };
            trans.push(next_id);
        }
        i += 1;
    }
    Ok((trans, flags))
}

/// The longest literal every match of `pattern` must contain: the longest literal
/// among the top-level pieces of a concatenation (or the pattern itself when it is one
/// literal). Empty when there is none, e.g. under case folding, where letters become
/// classes, and for patterns anchored at the start of the name: the per-entry DFA
/// rejects most names of those at their first bytes, faster than any arena search.
pub fn required_literal(pattern: &str, fold: bool) -> Vec<u8> {
    use regex_syntax::hir::HirKind;
    let Ok(hir) = regex_automata::util::syntax::parse_with(pattern, &syntax_config(fold)) else {
        return Vec::new();
    };
    match hir.kind() {
        HirKind::Literal(l) => l.0.to_vec(),
        HirKind::Concat(parts) => {
            if matches!(parts.first().map(|h| h.kind()), Some(HirKind::Look(_))) {
                return Vec::new();
            }
            parts
                .iter()
                .filter_map(|h| match h.kind() {
                    HirKind::Literal(l) => Some(l.0.to_vec()),
                    _ => None,
                })
                .max_by_key(Vec::len)
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

impl DfaTable {
    /// Does the regex match anywhere in `name`? The same loop as `dfa()` in
    /// kernels/name_match.wgsl.
    pub fn matches(&self, name: &[u8]) -> bool {
        let stride = self.stride as usize;
        let mut s = 0usize;
        for &b in name {
            let c = self.classes[usize::from(b)] as usize;
            s = self.trans[s * stride + c] as usize;
            let f = self.flags[s];
            if f & FLAG_MATCH != 0 {
                return true;
            }
            if f & FLAG_DEAD != 0 {
                return false;
            }
        }
        s = self.trans[s * stride + stride - 1] as usize;
        self.flags[s] & FLAG_MATCH != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        compile(p, false)
            .map(|d| d.matches(n.as_bytes()))
            .unwrap_or(false)
    }

    #[test]
    fn matches_like_the_regex_crate() {
        assert!(m("a+b", "xxaab"));
        assert!(!m("a+b", "xxab_".trim_end_matches("b_")));
        assert!(m("^foo", "foobar"));
        assert!(!m("^foo", "xfoo"));
        assert!(m("bar$", "foobar"));
        assert!(!m("bar$", "barx"));
        assert!(m(r"\.rs$", "lib.rs"));
        assert!(m("é", "café"));
        assert!(m("^$", ""));
        assert!(compile("(", false).is_err());
        assert!(matches!(compile("(", false), Err(DfaRefusal::Invalid(_))));
        let ci = compile("readme", true).map(|d| d.matches(b"README.md"));
        assert!(matches!(ci, Ok(true)));
    }

    #[test]
    fn huge_dfas_are_refused_not_built() {
        // A classic exponential DFA: the 20th byte from the end is an 'a'.
        let r = compile("a[ab]{20}$", false);
        assert!(matches!(r, Err(DfaRefusal::TooLarge(_))), "{r:?}");
    }
}
