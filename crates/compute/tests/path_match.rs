//! path_match: full-path matching through per-directory DFA states gives exactly what
//! matching the pattern against every entry's built path gives.

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use common::{random_tree, Alphabet, Rng};
use gpufs_compute::dir_tree::DirTree;
use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery, ALL_KINDS};
use gpufs_compute::kernels::path_build;
use gpufs_compute::kernels::path_match::PathMatcher;
#[cfg(feature = "gpu")]
use gpufs_compute::mirror::NamespaceMirror;
use gpufs_compute::view::{entry_head, DirListing, EntryList, NamespaceView, NO_ENTRY};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn escaped(piece: &[u8]) -> String {
    piece
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("(?-u:\\x{b:02x})")
            }
        })
        .collect()
}

/// A query built from a piece of a real path, so it matches some entries.
fn query_from(rng: &mut Rng, path: &[u8]) -> NameQuery {
    let start = rng.below(path.len() as u64) as usize;
    let end = (start + 1 + rng.below(8) as usize).min(path.len());
    let piece = path[start..end].to_vec();
    let fold = rng.chance(40);
    match rng.below(6) {
        0 | 1 => NameQuery::Substring {
            needle: piece,
            fold,
        },
        2 => {
            let mut p = b"*".to_vec();
            for &b in &piece {
                if matches!(b, b'*' | b'?' | b'[' | b'\\') {
                    p.push(b'\\');
                }
                p.push(if rng.chance(15) { b'?' } else { b });
            }
            p.push(b'*');
            NameQuery::Glob { pattern: p, fold }
        }
        3 => {
            // A whole path with a wildcard or class in it.
            let mut p = Vec::new();
            for &b in path {
                match rng.below(10) {
                    0 => p.push(b'*'),
                    1 => p.extend_from_slice(b"[a-c/]"),
                    _ if matches!(b, b'*' | b'?' | b'[' | b'\\') => {
                        p.push(b'\\');
                        p.push(b);
                    }
                    _ => p.push(b),
                }
            }
            NameQuery::Glob { pattern: p, fold }
        }
        4 => NameQuery::Regex {
            pattern: format!("^{}", escaped(&path[..end])),
            fold,
        },
        _ => NameQuery::Regex {
            pattern: format!("{}[^/]*$", escaped(&piece)),
            fold,
        },
    }
}

/// What a [`Listing`] says of each directory's size, to steer `cpu_listed` to either way.
#[derive(Clone, Copy, Debug)]
enum Claim {
    Few,
    Many,
}

/// A directory listing of the model tree, as the namespace's owner keeps one.
struct Listing {
    entries: BTreeMap<u32, (Vec<u32>, Vec<u64>)>,
    claim: Claim,
}

impl Listing {
    fn of(ns: &common::Ns, claim: Claim) -> Listing {
        let view = ns.view();
        let mut entries: BTreeMap<u32, (Vec<u32>, Vec<u64>)> = BTreeMap::new();
        for (id, d) in ns.dirents.iter().enumerate() {
            if d.ino == 0 {
                continue;
            }
            let (ids, heads) = entries.entry(d.parent).or_default();
            ids.push(id as u32);
            heads.push(entry_head(view.name_of(d), d.kind));
        }
        // Holes where entries were removed, and a listing order unlike the ids'.
        for (ids, heads) in entries.values_mut() {
            ids.reverse();
            heads.reverse();
            for at in [ids.len(), ids.len() / 2] {
                ids.insert(at, NO_ENTRY);
                heads.insert(at, 0);
            }
        }
        Listing { entries, claim }
    }
}

impl DirListing for Listing {
    fn entry_count(&self, dir: u32) -> usize {
        match self.claim {
            Claim::Few => 0,
            Claim::Many => {
                usize::MAX / (1 << 20) + self.entries.get(&dir).map_or(0, |(ids, _)| ids.len())
            }
        }
    }
    fn entries(&self, dir: u32) -> EntryList<'_> {
        self.entries
            .get(&dir)
            .map(|(ids, heads)| EntryList { ids, heads })
            .unwrap_or_default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn path_states_equal_matching_built_paths(seed in any::<u64>(), any_byte in any::<bool>(), removals in 0u64..30) {
        let alphabet = if any_byte { Alphabet::AnyByte } else { Alphabet::Small };
        let mut ns = random_tree(seed, 1200, alphabet, if any_byte { 30 } else { 5 });
        let mut rng = Rng::new(seed ^ 0x9A7);
        for _ in 0..removals {
            let id = rng.below(ns.dirents.len() as u64) as u32;
            ns.remove(id);
        }
        let view = ns.view();
        let ids: Vec<u32> = (0..ns.dirents.len() as u32).collect();
        let paths = path_build::cpu(&view, &ids);
        // The same arrays with the directory tree their owner would keep.
        let tree = DirTree::build(&view);
        let kept = NamespaceView { dirs: Some(&tree), ..view };
        let live: Vec<u32> = ids.iter().copied().filter(|&i| !paths.get(i as usize).is_empty()).collect();
        prop_assume!(!live.is_empty());
        #[cfg(feature = "gpu")]
        let mirrors: Vec<_> = [common::gpu(), common::tight_gpu()]
            .into_iter()
            .flatten()
            .filter_map(|ctx| NamespaceMirror::upload(ctx, &view).ok().map(|m| (ctx, m)))
            .collect();
        for _ in 0..8 {
            let pick = live[rng.below(live.len() as u64) as usize];
            let q = query_from(&mut rng, paths.get(pick as usize));
            let m = NameMatcher::new(&q).expect("query compiles");
            let kinds = if rng.chance(20) { 1 << 2 } else { ALL_KINDS };
            let want: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|&i| {
                    let d = &ns.dirents[i as usize];
                    let p = paths.get(i as usize);
                    d.ino != 0 && (kinds >> d.kind) & 1 == 1 && !p.is_empty() && m.matches_name(p)
                })
                .collect();
            let pm = PathMatcher::new(&q).expect("a DFA this small is built");
            prop_assert_eq!(&pm.cpu(&view, kinds), &want, "{:?}", q);
            prop_assert_eq!(&pm.cpu(&kept, kinds), &want, "{:?} with a kept tree", q);
            // Through a directory listing: entry by entry (counts said small) and by the
            // pass over all entries (counts said large), the same ids.
            for claim in [Claim::Few, Claim::Many] {
                let listing = Listing::of(&ns, claim);
                prop_assert_eq!(&pm.cpu_listed(&view, kinds, &listing), &want, "{:?} {:?}", q, claim);
                prop_assert_eq!(&pm.cpu_listed(&kept, kinds, &listing), &want, "{:?} {:?} kept", q, claim);
                // Written out while visiting (when it can be: a listed visit, a kept
                // tree): the same paths, each once, whatever their order.
                let format = path_build::PathFormat { prefix: b"/m".to_vec(), end: 0 };
                let mut text = Vec::new();
                let streamed = pm.cpu_listed_text(&kept, kinds, &listing, &|_| true, &format, &mut |t| text.extend_from_slice(&t));
                if let Some(lines) = streamed {
                    let mut got: Vec<&[u8]> = text.split(|&b| b == 0).filter(|l| !l.is_empty()).collect();
                    got.sort();
                    let mut expect: Vec<Vec<u8>> = want.iter().map(|&i| [&b"/m"[..], paths.get(i as usize)].concat()).collect();
                    expect.sort();
                    prop_assert_eq!(lines, want.len());
                    prop_assert_eq!(got, expect.iter().map(|e| e.as_slice()).collect::<Vec<_>>(), "{:?} {:?} streamed", q, claim);
                } else {
                    prop_assert!(text.is_empty());
                }
                prop_assert!(pm.cpu_listed_text(&view, kinds, &listing, &|_| true, &format, &mut |_| {}).is_none(), "no kept tree");
            }
            // The WGSL kernel over the mirror.
            #[cfg(feature = "gpu")]
            for (ctx, mirror) in &mirrors {
                prop_assert_eq!(&pm.gpu(ctx, mirror, &view, kinds).expect("gpu"), &want, "{:?} on the GPU", q);
            }
        }
    }
}
