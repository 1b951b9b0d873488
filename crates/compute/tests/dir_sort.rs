//! dir_sort: the WGSL kernels equal the CPU twin, and the twin equals std's stable sort
//! with the obvious comparator.

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use common::{random_name, random_tree, Alphabet, GpuContext, Ns, Rng, EDGE_SIZES};
use gpufs_compute::kernels::dir_sort::{self, SortKey};
#[cfg(feature = "gpu")]
use gpufs_compute::mirror::NamespaceMirror;
use gpufs_format::{FileKind, ROOT_INO};
use proptest::prelude::*;

const KEYS: [SortKey; 3] = [SortKey::Name, SortKey::Size, SortKey::Mtime];

/// The name the oracle sorts by: the arena range, empty when out of range.
fn name_of(ns: &Ns, id: u32) -> &[u8] {
    ns.dirents
        .get(id as usize)
        .and_then(|d| {
            let start = usize::try_from(d.name_offset).ok()?;
            ns.names
                .get(start..start.checked_add(usize::from(d.name_len))?)
        })
        .unwrap_or(&[])
}

fn inode_of(ns: &Ns, id: u32) -> Option<&gpufs_format::InodeRecord> {
    ns.dirents
        .get(id as usize)
        .and_then(|d| ns.inodes.get(d.ino as usize))
}

/// std's stable sort: byte order of names, size as u64, mtime as i64.
fn oracle(ns: &Ns, ids: &[u32], key: SortKey, descending: bool) -> Vec<u32> {
    let mut v = ids.to_vec();
    v.sort_by(|&a, &b| {
        let o = match key {
            SortKey::Name => name_of(ns, a).cmp(name_of(ns, b)),
            SortKey::Size => {
                let s = |id| inode_of(ns, id).map_or(0, |i| i.size);
                s(a).cmp(&s(b))
            }
            SortKey::Mtime => {
                let t = |id| inode_of(ns, id).map_or(0, |i| i.mtime_ns);
                t(a).cmp(&t(b))
            }
        };
        if descending {
            o.reverse()
        } else {
            o
        }
    });
    v
}

/// Each of `keys`, both directions: twin == oracle (when `with_oracle`), one thread ==
/// twin, and each GPU == twin.
fn check_with(
    ns: &Ns,
    ids: &[u32],
    gpus: &[Option<&GpuContext>],
    keys: &[SortKey],
    with_oracle: bool,
) {
    let view = ns.view();
    #[cfg(feature = "gpu")]
    let mirrors: Vec<(&GpuContext, NamespaceMirror)> = gpus
        .iter()
        .flatten()
        .map(|ctx| (*ctx, NamespaceMirror::upload(ctx, &view).expect("upload")))
        .collect();
    for &key in keys {
        for desc in [false, true] {
            let cpu = dir_sort::cpu(&view, ids, key, desc);
            if with_oracle {
                assert_eq!(
                    cpu,
                    oracle(ns, ids, key, desc),
                    "CPU twin vs oracle, {key:?} desc={desc}, {} ids",
                    ids.len()
                );
            }
            assert_eq!(dir_sort::cpu_one_thread(&view, ids, key, desc), cpu);
            #[cfg(feature = "gpu")]
            for (ctx, mirror) in &mirrors {
                let gpu = dir_sort::gpu(ctx, mirror, ids, key, desc).expect("gpu run");
                assert_eq!(
                    gpu,
                    cpu,
                    "GPU vs CPU, {key:?} desc={desc}, {} ids",
                    ids.len()
                );
            }
        }
    }
}

fn check(ns: &Ns, ids: &[u32], gpus: &[Option<&GpuContext>]) {
    check_with(ns, ids, gpus, &KEYS, true);
}

/// Names only (the deep name rounds; size and mtime gain nothing from these trees).
fn check_names(ns: &Ns, ids: &[u32], gpus: &[Option<&GpuContext>]) {
    check_with(ns, ids, gpus, &[SortKey::Name], true);
}

fn live(ns: &Ns) -> Vec<u32> {
    (0..ns.dirents.len() as u32)
        .filter(|&i| ns.dirents[i as usize].ino != 0)
        .collect()
}

/// Exactly `n` ids of live entries in random order (repeats once the tree runs out).
fn pick_ids(rng: &mut Rng, ns: &Ns, n: usize) -> Vec<u32> {
    let mut ids = live(ns);
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    ids.truncate(n);
    let pool = ids.clone();
    while ids.len() < n && !pool.is_empty() {
        ids.push(pool[rng.below(pool.len() as u64) as usize]);
    }
    ids
}

/// Many inodes share a few sizes and mtimes (negative, extreme, differing only in one
/// word or one byte), so ties are everywhere.
fn force_ties(rng: &mut Rng, ns: &mut Ns) {
    const SIZES: [u64; 6] = [0, 1, 4096, 1 << 32, (1 << 32) + 1, u64::MAX];
    const TIMES: [i64; 7] = [i64::MIN, -(1 << 40), -1, 0, 1, 1 << 32, i64::MAX];
    for inode in ns.inodes.iter_mut() {
        if rng.chance(70) {
            inode.size = SIZES[rng.below(SIZES.len() as u64) as usize];
        }
        if rng.chance(70) {
            inode.mtime_ns = TIMES[rng.below(TIMES.len() as u64) as usize];
        }
    }
}

/// A tree of `n` entries under a few directories whose names share long prefixes (up to
/// 250 bytes) and repeat across directories, so the name rounds run deep.
fn long_prefix_tree(seed: u64, n: usize) -> Ns {
    let mut rng = Rng::new(seed);
    let mut ns = random_tree(seed, 0, Alphabet::Small, 4);
    let mut dirs = vec![ROOT_INO];
    for d in 0..6u8 {
        let id = ns
            .add(&mut rng, ROOT_INO, &[b'd', b'0' + d], FileKind::Directory)
            .expect("fresh name");
        dirs.push(ns.dirents[id as usize].ino);
    }
    let stems: Vec<Vec<u8>> = (0..5)
        .map(|k| {
            let len = [0usize, 7, 8, 9, 250][k];
            (0..len).map(|i| b"ab"[(i * 7 + k) % 2]).collect()
        })
        .collect();
    let mut attempts = 0;
    while ns.dirents.len() < n + 7 && attempts < n * 4 {
        attempts += 1;
        let mut name = stems[rng.below(stems.len() as u64) as usize].clone();
        let tail = rng.below(7);
        for _ in 0..tail {
            name.push(b"ab."[rng.below(3) as usize]);
        }
        name.truncate(255);
        if name.is_empty() {
            name.push(b'a');
        }
        let parent = dirs[rng.below(dirs.len() as u64) as usize];
        let _ = ns.add(&mut rng, parent, &name, FileKind::Regular);
    }
    ns
}

/// The GPU, and the tight one (64 KiB chunks, 4 workgroups a dimension) when the
/// namespace fits its bindings (with the mirror's quarter of headroom).
#[cfg(feature = "gpu")]
fn gpus_for(ns: &Ns) -> Vec<Option<&'static GpuContext>> {
    let limit = gpufs_compute::gpu::SLOTS * (64 << 10) * 4 / 5 - 1024;
    let fits =
        ns.names.len() <= limit && ns.dirents.len() * 32 <= limit && ns.inodes.len() * 64 <= limit;
    if fits {
        vec![common::gpu(), common::tight_gpu()]
    } else {
        vec![common::gpu()]
    }
}

#[cfg(not(feature = "gpu"))]
fn gpus_for(_: &Ns) -> Vec<Option<&'static GpuContext>> {
    Vec::new()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn gpu_equals_cpu_at_edge_sizes(
        seed in any::<u64>(),
        size_pick in 0usize..6,
        any_byte in any::<bool>(),
        ties in any::<bool>(),
    ) {
        let n = EDGE_SIZES[size_pick];
        let alphabet = if any_byte { Alphabet::AnyByte } else { Alphabet::Small };
        // Names up to 255 bytes; at 3000 entries shorter, so the tight GPU's bindings hold them.
        let max_name = match (any_byte, n) {
            (false, _) => 12,
            (true, 3000) => 60,
            (true, _) => 255,
        };
        let mut ns = random_tree(seed, n, alphabet, max_name);
        let mut rng = Rng::new(seed);
        if ties {
            force_ties(&mut rng, &mut ns);
        }
        let ids = pick_ids(&mut rng, &ns, n);
        check(&ns, &ids, &gpus_for(&ns));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn long_shared_prefixes(seed in any::<u64>(), size_pick in 2usize..6) {
        let n = EDGE_SIZES[size_pick];
        let ns = long_prefix_tree(seed, n);
        let mut rng = Rng::new(seed);
        let ids = pick_ids(&mut rng, &ns, n);
        check_names(&ns, &ids, &gpus_for(&ns));
    }
}

#[test]
fn many_tiles() {
    for (seed, n, alphabet, max_name) in [
        (11, 20_000, Alphabet::Small, 12),
        (12, 70_000, Alphabet::AnyByte, 40),
    ] {
        let mut ns = random_tree(seed, n + n / 8, alphabet, max_name);
        let mut rng = Rng::new(seed);
        force_ties(&mut rng, &mut ns);
        let ids = pick_ids(&mut rng, &ns, n);
        check(&ns, &ids, &[common::gpu()]);
    }
}

/// More ids than the tight GPU's 16 workgroups cover at once (ids repeat: a small
/// namespace fits its bindings), so every kernel loops over its grid.
#[test]
#[cfg(feature = "gpu")]
fn grid_strides_on_the_tight_gpu() {
    let mut rng = Rng::new(31);
    let mut ns = random_tree(31, 2500, Alphabet::Small, 12);
    force_ties(&mut rng, &mut ns);
    let gpus = gpus_for(&ns);
    assert_eq!(gpus.len(), 2, "the tight GPU holds this namespace");
    let ids = pick_ids(&mut rng, &ns, 6000);
    check(&ns, &ids, &gpus);
    // Over 64 tiles: the tile counts are scanned a workgroup per digit.
    let ids = pick_ids(&mut rng, &ns, 70_000);
    check_with(&ns, &ids, &gpus, &[SortKey::Mtime], true);
}

#[test]
fn one_directory_in_listing_order() {
    let mut ns = random_tree(5, 300, Alphabet::Small, 6);
    let mut rng = Rng::new(5);
    let dir = ns
        .add(&mut rng, ROOT_INO, b"big", FileKind::Directory)
        .expect("fresh");
    let dir_ino = ns.dirents[dir as usize].ino;
    for _ in 0..1500 {
        let name = random_name(&mut rng, Alphabet::Small, 7);
        let _ = ns.add(&mut rng, dir_ino, &name, FileKind::Regular);
    }
    // Its live entries in id (= cookie) order, as a listing has them.
    let ids: Vec<u32> = live(&ns)
        .into_iter()
        .filter(|&id| ns.dirents[id as usize].parent == dir_ino)
        .collect();
    assert!(ids.len() > 1000);
    check(&ns, &ids, &gpus_for(&ns));
}

#[test]
fn tiny_inputs() {
    let ns = random_tree(9, 10, Alphabet::Small, 6);
    for ids in [vec![], vec![3], vec![4, 4], vec![5, 2], vec![2, 5, 2]] {
        check(&ns, &ids, &gpus_for(&ns));
    }
}

/// Names with zero bytes (only a corrupt arena has them) still sort exactly: equal up to
/// zero padding, the shorter first.
#[test]
fn zero_bytes_in_names() {
    let mut rng = Rng::new(3);
    let mut ns = random_tree(3, 0, Alphabet::Small, 4);
    let names: [&[u8]; 12] = [
        b"x\0",
        b"x",
        b"x\0\0",
        b"x\0\x01",
        b"abcdefgh\0",
        b"abcdefgh",
        b"abcdefgh\0\0\0\0\0\0\0\0\0",
        b"abcdefgh\0\0\0\0\0\0\0\0\0z",
        b"abcdefg",
        b"\0",
        b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        b"abcdefgh\0\0\0\0\0\0\0\0",
    ];
    let mut ids = Vec::new();
    for (k, parent) in [ROOT_INO, ROOT_INO].iter().enumerate() {
        let dir = ns
            .add(
                &mut rng,
                *parent,
                &[b'd', b'0' + k as u8],
                FileKind::Directory,
            )
            .expect("fresh");
        let dir_ino = ns.dirents[dir as usize].ino;
        for name in names.iter().rev() {
            ids.push(
                ns.add(&mut rng, dir_ino, name, FileKind::Regular)
                    .expect("fresh"),
            );
        }
    }
    check(&ns, &ids, &gpus_for(&ns));
    let mut shuffled = ids.clone();
    shuffled.reverse();
    check(&ns, &shuffled, &gpus_for(&ns));
}

/// Ids past the table, inodes past the table and name ranges past the arena sort as
/// empty / zero keys on both backends, without panics.
#[test]
fn bad_records_sort_as_zero_keys() {
    let mut ns = random_tree(21, 600, Alphabet::Small, 9);
    let mut ids = live(&ns);
    let (nd, ni, nn) = (
        ns.dirents.len() as u32,
        ns.inodes.len() as u32,
        ns.names.len() as u64,
    );
    for (k, &id) in ids.clone().iter().enumerate().take(40) {
        let d = &mut ns.dirents[id as usize];
        match k % 5 {
            0 => d.ino = u32::MAX,
            1 => d.ino = ni,
            2 => d.name_offset = 1 << 40,
            3 => d.name_offset = nn + 100,
            _ => {
                // Past the arena even counted in whole words.
                d.name_offset = nn.next_multiple_of(4) - 1;
                d.name_len = 2;
            }
        }
    }
    ids.extend([nd, nd + 7, u32::MAX, 0]);
    check(&ns, &ids, &gpus_for(&ns));

    // A name running past the arena's end but inside its last word reads zeros there,
    // the same on both backends (the mirror holds the arena in whole words).
    while ns.names.len().is_multiple_of(4) {
        let id = ns.dirents.len();
        let name = format!("t{id}");
        ns.add(
            &mut Rng::new(1),
            ROOT_INO,
            name.as_bytes(),
            FileKind::Regular,
        )
        .expect("fresh");
    }
    let last = ns.dirents.len() - 1;
    let pad = 4 - (ns.names.len() % 4) as u8;
    ns.dirents[last].name_len += pad;
    let mut ids = live(&ns);
    ids.push(last as u32);
    check_with(&ns, &ids, &gpus_for(&ns), &KEYS, false);
}
