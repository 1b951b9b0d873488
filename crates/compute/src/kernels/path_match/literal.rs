//! Which directories' entries a full-path substring query needs to look at, decided
//! from the directory paths with literal compares and no DFA run: every path below a
//! directory holds the substring when the directory's path + "/" does; failing that,
//! with a '/' in the substring, an entry's path holds it exactly when the directory's
//! path ends with the part before the last '/' (the head) and the entry's name starts
//! with the part after it (the tail).

use super::{starts_with, Look, MAX_DEPTH};
use crate::dir_tree::DirTree;
use crate::kernels::name_scan::Prefilter;
use rayon::prelude::*;
use std::collections::HashSet;

/// Slot ranges the directory states of a substring are decided in, in parallel.
const LOOK_RANGES: usize = 16;

/// The slots of `tree` whose entries can hold `needle` (found by `finder`; ASCII case
/// ignored with `fold`) in their paths, and what they need, ascending.
pub(super) fn literal_looks(
    tree: &DirTree,
    finder: &Prefilter,
    needle: &[u8],
    fold: bool,
) -> Vec<(u32, Look)> {
    let slashes = needle.iter().filter(|&&b| b == b'/').count();
    match needle.iter().position(|&b| b == b'/') {
        Some(at) if slashes == 1 => one_slash_looks(tree, &needle[..at], &needle[at + 1..], fold),
        _ => searched_looks(tree, finder, needle, fold),
    }
}

/// For a needle `head` + "/" + `tail` with no other '/', from the directories whose
/// paths end with the head (found in the dense last-bytes words, see
/// [`DirTree::paths_ending_with`]): a path ends with the head exactly when its last
/// component does, so their entries need the tail. And a path holds the needle exactly
/// when an ancestor's path ends with the head and the next directory down starts with
/// the tail (the needle's '/' must sit on a '/' of the path): those subtrees are all
/// matched. No pass over all path bytes.
fn one_slash_looks(tree: &DirTree, head: &[u8], tail: &[u8], fold: bool) -> Vec<(u32, Look)> {
    // The root's path is empty: it ends with an empty head, and holds nothing.
    let ends = tree.paths_ending_with(head, fold);
    // A needle ending in '/' holds in every path below a directory ending with the
    // head.
    let end_look = if tail.is_empty() {
        Look::All
    } else {
        Look::Tail
    };
    let mut looks: Vec<(u32, Look)> = ends.iter().map(|&s| (s, end_look)).collect();
    let mut matched: HashSet<u32> = HashSet::new();
    let mut stack = Vec::new();
    for &e in &ends {
        for &c in tree.children(e) {
            if starts_with(tree.name(c), tail, fold) && matched.insert(c) {
                stack.push(c);
            }
        }
        while let Some(s) = stack.pop() {
            looks.push((s, Look::All));
            for &c in tree.children(s) {
                if matched.insert(c) {
                    stack.push(c);
                }
            }
        }
    }
    // Tree order; a directory both ending with the head and below a match is matched.
    looks.sort_unstable_by_key(|&(s, look)| (s, look != Look::All));
    looks.dedup_by_key(|&mut (s, _)| s);
    looks.retain(|&(s, _)| tree.depth_of(s) < MAX_DEPTH);
    looks
}

/// Any needle: one search over the paths end to end for the directories whose paths
/// hold it, and with a '/' in it an end compare per path for those that end with the
/// part before the last one.
fn searched_looks(
    tree: &DirTree,
    finder: &Prefilter,
    needle: &[u8],
    fold: bool,
) -> Vec<(u32, Look)> {
    let n = tree.len();
    let head = needle
        .iter()
        .rposition(|&b| b == b'/')
        .map(|last| &needle[..last]);
    let whole_if_ends = needle.ends_with(b"/");
    let ends: Option<Vec<bool>> = head.map(|head| {
        let mut each = vec![false; n];
        for s in tree.paths_ending_with(head, fold) {
            if let Some(x) = each.get_mut(s as usize) {
                *x = true;
            }
        }
        each
    });
    let ends = ends.as_deref();
    // Ranges of slots on every core: an occurrence counts only inside one path, so
    // the paths of a range are searched on their own.
    let per = n.div_ceil(LOOK_RANGES).max(1);
    let ranges: Vec<(usize, usize)> = (0..n).step_by(per).map(|a| (a, (a + per).min(n))).collect();
    ranges
        .par_iter()
        .flat_map_iter(|&(a, b)| {
            let all = paths_holding(tree, finder, needle.len(), a, b);
            (a..b).filter_map(move |s| {
                let slot = s as u32;
                let ends_here = ends.is_some_and(|e| e.get(s).copied().unwrap_or(false));
                let look = if all[s - a] || (whole_if_ends && ends_here) {
                    Look::All
                } else if ends_here {
                    Look::Tail
                } else {
                    return None;
                };
                (tree.depth_of(slot) < MAX_DEPTH).then_some((slot, look))
            })
        })
        .collect()
}

/// Per slot in `a..b` of `tree`: does its path hold the literal `finder` finds (of
/// `len` bytes)? One search over those paths end to end.
fn paths_holding(tree: &DirTree, finder: &Prefilter, len: usize, a: usize, b: usize) -> Vec<bool> {
    let (bytes, offsets) = tree.arena();
    let mut all = vec![false; b - a];
    let (Some(&from), Some(&to)) = (offsets.get(a), offsets.get(b)) else {
        return all;
    };
    let mut pos = from;
    let mut slot = a;
    while let Some(p) = finder.find(bytes, pos, to) {
        // The slot whose path holds byte p (offsets ascend; empty paths share one).
        slot += offsets[slot..b]
            .partition_point(|&o| o <= p)
            .saturating_sub(1);
        if offsets.get(slot + 1).is_some_and(|&end| p + len <= end) {
            if let Some(x) = all.get_mut(slot - a) {
                *x = true;
            }
        }
        pos = p + 1;
    }
    all
}
