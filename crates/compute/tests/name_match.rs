//! name_match: the WGSL kernel equals its CPU twin, and the twin equals plain oracles.

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use common::{random_tree, Alphabet, GpuContext, Ns, Rng, EDGE_SIZES};
use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery};
#[cfg(feature = "gpu")]
use gpufs_compute::mirror::NamespaceMirror;
use proptest::prelude::*;

/// A query with a fair chance of matching names of `ns`.
fn random_query(rng: &mut Rng, ns: &Ns) -> NameQuery {
    let live: Vec<u32> = (0..ns.dirents.len() as u32)
        .filter(|&i| ns.dirents[i as usize].ino != 0)
        .collect();
    let sample: Vec<u8> = if live.is_empty() {
        b"a".to_vec()
    } else {
        ns.name(live[rng.below(live.len() as u64) as usize])
            .to_vec()
    };
    let fold = rng.chance(50);
    let start = rng.below(sample.len() as u64) as usize;
    let end = start + 1 + rng.below((sample.len() - start) as u64) as usize;
    let piece = sample[start..end.min(sample.len())].to_vec();
    match rng.below(3) {
        0 => NameQuery::Substring {
            needle: piece,
            fold,
        },
        1 => {
            // Wildcards spliced into a real name.
            let mut pattern = Vec::new();
            for &b in &sample {
                match rng.below(12) {
                    0 => pattern.push(b'*'),
                    1 => pattern.push(b'?'),
                    2 => pattern.extend_from_slice(b"[a-c]"),
                    3 => pattern.extend_from_slice(b"[!x]"),
                    _ if matches!(b, b'*' | b'?' | b'[' | b'\\') => {
                        pattern.push(b'\\');
                        pattern.push(b);
                    }
                    _ => pattern.push(b),
                }
            }
            // A literal at a fixed place: anywhere, at the start, at the end, whole.
            let escaped: Vec<u8> = piece
                .iter()
                .flat_map(|&b| {
                    if matches!(b, b'*' | b'?' | b'[' | b'\\') {
                        vec![b'\\', b]
                    } else {
                        vec![b]
                    }
                })
                .collect();
            match rng.below(10) {
                0..=2 => pattern = [&b"*"[..], &escaped, b"*"].concat(),
                3 => pattern = [&escaped[..], b"*"].concat(),
                4 => pattern = [&b"*"[..], &escaped].concat(),
                5 => pattern = escaped,
                _ => {}
            }
            NameQuery::Glob { pattern, fold }
        }
        _ => {
            let lit: String = piece
                .iter()
                .map(|&b| {
                    if b.is_ascii_alphanumeric() {
                        char::from(b).to_string()
                    } else {
                        format!("\\x{b:02x}")
                    }
                })
                .collect();
            let pattern = match rng.below(4) {
                0 => lit,
                1 => format!("^{lit}"),
                2 => format!("{lit}$"),
                _ => format!("[a-c]+{lit}|x.?X"),
            };
            NameQuery::Regex { pattern, fold }
        }
    }
}

/// Plain oracles, independent of the twin's code.
fn oracle(q: &NameQuery, name: &[u8]) -> bool {
    match q {
        NameQuery::Substring { needle, fold } => {
            let (n, h) = if *fold {
                (needle.to_ascii_lowercase(), name.to_ascii_lowercase())
            } else {
                (needle.clone(), name.to_vec())
            };
            h.windows(n.len()).any(|w| w == n.as_slice())
        }
        NameQuery::Glob { pattern, fold } => fnmatch(pattern, name, *fold),
        NameQuery::Regex { pattern, fold } => regex_automata::meta::Regex::builder()
            .syntax(
                regex_automata::util::syntax::Config::new()
                    .case_insensitive(*fold)
                    .utf8(false),
            )
            .build(pattern)
            .map(|r| r.is_match(name))
            .unwrap_or(false),
    }
}

/// Recursive fnmatch for the subset the random globs use: * ? [a-c] [!x] \c.
fn fnmatch(p: &[u8], n: &[u8], fold: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    match p.first() {
        None => n.is_empty(),
        Some(b'*') => (0..=n.len()).any(|k| fnmatch(&p[1..], &n[k..], fold)),
        Some(b'?') => !n.is_empty() && fnmatch(&p[1..], &n[1..], fold),
        Some(b'[') if p.starts_with(b"[a-c]") => {
            !n.is_empty() && (b'a'..=b'c').any(|c| eq(c, n[0])) && fnmatch(&p[5..], &n[1..], fold)
        }
        Some(b'[') if p.starts_with(b"[!x]") => {
            !n.is_empty() && !eq(b'x', n[0]) && fnmatch(&p[4..], &n[1..], fold)
        }
        Some(b'\\') if p.len() > 1 => {
            !n.is_empty() && eq(p[1], n[0]) && fnmatch(&p[2..], &n[1..], fold)
        }
        Some(&c) => !n.is_empty() && eq(c, n[0]) && fnmatch(&p[1..], &n[1..], fold),
    }
}

fn check(ns: &Ns, q: &NameQuery, gpus: &[Option<&GpuContext>]) {
    let m = NameMatcher::new(q).expect("query compiles");
    let cpu = m.cpu(&ns.view());
    let want: Vec<u32> = (0..ns.dirents.len() as u32)
        .filter(|&i| ns.dirents[i as usize].ino != 0 && oracle(q, ns.name(i)))
        .collect();
    assert_eq!(cpu, want, "CPU twin vs oracle for {q:?}");
    assert_eq!(m.cpu_one_thread(&ns.view()), cpu);
    #[cfg(feature = "gpu")]
    for ctx in gpus.iter().flatten() {
        let mirror = NamespaceMirror::upload(ctx, &ns.view()).expect("upload");
        let gpu = m.gpu(ctx, &mirror).expect("gpu run");
        assert_eq!(
            gpu,
            cpu,
            "GPU vs CPU for {q:?} on {} entries",
            ns.dirents.len()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn gpu_equals_cpu_at_edge_sizes(seed in any::<u64>(), size_pick in 0usize..6, any_byte in any::<bool>()) {
        let alphabet = if any_byte { Alphabet::AnyByte } else { Alphabet::Small };
        let ns = random_tree(seed, EDGE_SIZES[size_pick], alphabet, if any_byte { 255 } else { 12 });
        let mut rng = Rng::new(seed);
        for _ in 0..4 {
            let q = random_query(&mut rng, &ns);
            check(&ns, &q, &[common::gpu(), common::tight_gpu()]);
        }
    }
}

#[test]
fn kind_filter_and_case_folding() {
    let ns = random_tree(7, 2000, Alphabet::Small, 10);
    let q = NameQuery::Substring {
        needle: b"AB".to_vec(),
        fold: true,
    };
    check(&ns, &q, &[common::gpu()]);
    let dirs_only = NameMatcher::new(&q).expect("compiles").with_kinds(1 << 2);
    let cpu = dirs_only.cpu(&ns.view());
    assert!(cpu.iter().all(|&i| ns.dirents[i as usize].kind == 2));
    #[cfg(feature = "gpu")]
    if let Some(ctx) = common::gpu() {
        let mirror = NamespaceMirror::upload(ctx, &ns.view()).expect("upload");
        assert_eq!(dirs_only.gpu(ctx, &mirror).expect("gpu"), cpu);
    }
}

#[test]
fn bad_patterns_are_clear_errors() {
    for q in [
        NameQuery::Substring {
            needle: vec![],
            fold: false,
        },
        NameQuery::Glob {
            pattern: vec![],
            fold: false,
        },
        NameQuery::Glob {
            pattern: b"[[:nope:]]".to_vec(),
            fold: false,
        },
        NameQuery::Regex {
            pattern: "(".into(),
            fold: false,
        },
        NameQuery::Regex {
            pattern: String::new(),
            fold: false,
        },
    ] {
        let e = NameMatcher::new(&q).expect_err("refused");
        assert!(!e.to_string().is_empty());
    }
    // Too big for a DFA: still answered, on the CPU.
    let big = NameMatcher::new(&NameQuery::Regex {
        pattern: "a[ab]{20}$".into(),
        fold: false,
    })
    .expect("valid regex");
    assert!(!big.gpu_capable());
    let ns = random_tree(3, 500, Alphabet::Small, 30);
    let got = big.cpu(&ns.view());
    let re = regex_automata::meta::Regex::new("a[ab]{20}$").expect("regex");
    let want: Vec<u32> = (0..ns.dirents.len() as u32)
        .filter(|&i| ns.dirents[i as usize].ino != 0 && re.is_match(ns.name(i)))
        .collect();
    assert_eq!(got, want);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The whole-arena scan (dead bytes, stale owners, removed entries, occurrences
    /// running across name boundaries) gives exactly the per-entry scan's ids.
    #[test]
    fn arena_scan_equals_the_per_entry_scan(seed in any::<u64>(), any_byte in any::<bool>(), removals in 0u64..40) {
        let alphabet = if any_byte { Alphabet::AnyByte } else { Alphabet::Small };
        let mut ns = random_tree(seed, 1500, alphabet, if any_byte { 40 } else { 6 });
        let mut rng = Rng::new(seed ^ 0xA7);
        for _ in 0..removals * 10 {
            let id = rng.below(ns.dirents.len() as u64) as u32;
            ns.remove(id);
        }
        for _ in 0..6 {
            let q = random_query(&mut rng, &ns);
            let m = NameMatcher::new(&q).expect("query compiles");
            let want: Vec<u32> = (0..ns.dirents.len() as u32)
                .filter(|&i| ns.dirents[i as usize].ino != 0 && oracle(&q, ns.name(i)))
                .collect();
            prop_assert_eq!(m.cpu_per_entry(&ns.view()), want.clone(), "per entry {:?}", q);
            prop_assert_eq!(m.cpu(&ns.view()), want.clone(), "arena {:?}", q);
            prop_assert_eq!(m.cpu_one_thread(&ns.view()), want, "arena, one thread {:?}", q);
        }
    }
}

/// A namespace where most names share an ending or a start (`IMG_…`, `….jpg`), with
/// dead bytes, stale owners and removed entries, large enough for many hits in every
/// piece of the arena scan.
fn common_affix_tree(seed: u64, entries: usize) -> Ns {
    let mut ns = random_tree(seed, 40, Alphabet::Small, 6);
    let mut rng = Rng::new(seed ^ 0xD5);
    let root = gpufs_format::ROOT_INO;
    while ns.dirents.len() < entries {
        let stem = common::random_name(&mut rng, Alphabet::Small, 6);
        let mut name = match rng.below(4) {
            0 => b"IMG_".to_vec(),
            1 => b"img_".to_vec(),
            _ => Vec::new(),
        };
        name.extend_from_slice(&stem);
        name.extend_from_slice(
            [&b".jpg"[..], b".JPG", b".jpg", b".png", b""][rng.below(5) as usize],
        );
        let kind = if rng.chance(10) {
            gpufs_format::FileKind::Directory
        } else {
            gpufs_format::FileKind::Regular
        };
        ns.add(&mut rng, root, &name, kind);
        if rng.chance(8) {
            let victim = rng.below(ns.dirents.len() as u64) as u32;
            ns.remove(victim);
        }
    }
    ns
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Anchored globs over names that mostly match: the arena scan and its pieces, one
    /// by one in arena order, give the per-entry ids.
    #[test]
    fn anchored_scan_pieces_equal_the_per_entry_scan(seed in any::<u64>()) {
        let ns = common_affix_tree(seed, 9000);
        let view = ns.view();
        for (pattern, fold) in [
            (&b"*.jpg"[..], false), (b"*.jpg", true), (b"*.JPG", false), (b"IMG_*", false),
            (b"img_*", true), (b"*.png", false), (b"IMG_abc.jpg", true),
        ] {
            let q = NameQuery::Glob { pattern: pattern.to_vec(), fold };
            let want: Vec<u32> = (0..ns.dirents.len() as u32)
                .filter(|&i| ns.dirents[i as usize].ino != 0 && oracle(&q, ns.name(i)))
                .collect();
            for kinds in [gpufs_compute::kernels::name_match::ALL_KINDS, 1 << 1] {
                let m = NameMatcher::new(&q).expect("glob compiles").with_kinds(kinds);
                let want: Vec<u32> = want
                    .iter()
                    .copied()
                    .filter(|&i| (kinds >> ns.dirents[i as usize].kind) & 1 == 1)
                    .collect();
                prop_assert_eq!(m.cpu(&view), want.clone(), "{:?} kinds {:#x}", q, kinds);
                prop_assert_eq!(m.cpu_one_thread(&view), want.clone(), "{:?}", q);
                // Piece by piece, in arena order: the same ids (names were written in
                // entry order here, so also in the same order).
                let pieces = m.arena_pieces(&view).expect("an arena scan");
                let streamed: Vec<u32> = (0..pieces.len()).flat_map(|i| pieces.ids(i)).collect();
                prop_assert_eq!(streamed, want, "pieces {:?}", q);
            }
        }
    }
}
