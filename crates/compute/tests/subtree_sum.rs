//! subtree_sum: the WGSL kernel equals its CPU twin, and the twin equals a recursive
//! oracle written from the documented semantics.

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use std::collections::BTreeMap;

use common::{random_tree, Alphabet, GpuContext, Ns, Rng, EDGE_SIZES};
use gpufs_compute::kernels::subtree_sum::{self, DirTotals, MAX_DEPTH};
#[cfg(feature = "gpu")]
use gpufs_compute::mirror::NamespaceMirror;
use gpufs_format::{DirentRecord, FileKind, ROOT_INO};
use proptest::prelude::*;

const DIR: u8 = FileKind::Directory as u8;

fn own(ns: &Ns, ino: u32, files: u64, dirs: u64) -> DirTotals {
    DirTotals {
        bytes: ns.inodes[ino as usize].size,
        allocated: ns.allocated.get(ino as usize).copied().unwrap_or(0),
        files,
        dirs,
    }
}

fn add(a: &mut DirTotals, b: &DirTotals) {
    a.bytes = a.bytes.wrapping_add(b.bytes);
    a.allocated = a.allocated.wrapping_add(b.allocated);
    a.files = a.files.wrapping_add(b.files);
    a.dirs = a.dirs.wrapping_add(b.dirs);
}

/// Children lists from the lowest live entry per inode, then a recursive walk from the
/// root that stops below `MAX_DEPTH`. Anything the walk never visits stays zero.
fn oracle(ns: &Ns) -> Vec<DirTotals> {
    let n = ns.inodes.len();
    let mut out = vec![DirTotals::default(); n];
    if n <= ROOT_INO as usize {
        return out;
    }
    let mut naming: BTreeMap<u32, u32> = BTreeMap::new();
    let mut counting: BTreeMap<u32, u32> = BTreeMap::new();
    for (e, d) in ns.dirents.iter().enumerate() {
        if d.ino == 0 || d.ino as usize >= n || d.ino == ROOT_INO {
            continue;
        }
        let first = if d.kind == DIR {
            &mut naming
        } else {
            &mut counting
        };
        first.entry(d.ino).or_insert(e as u32);
    }
    let mut children: BTreeMap<u32, Vec<(u32, bool)>> = BTreeMap::new();
    for (&ino, &e) in &naming {
        let parent = ns.dirents[e as usize].parent;
        children.entry(parent).or_default().push((ino, true));
    }
    for (&ino, &e) in &counting {
        if !naming.contains_key(&ino) {
            let parent = ns.dirents[e as usize].parent;
            children.entry(parent).or_default().push((ino, false));
        }
    }
    fn visit(
        ns: &Ns,
        children: &BTreeMap<u32, Vec<(u32, bool)>>,
        out: &mut [DirTotals],
        dir: u32,
        depth: u32,
    ) -> DirTotals {
        let mut t = own(ns, dir, 0, 1);
        for &(c, is_dir) in children.get(&dir).map(Vec::as_slice).unwrap_or(&[]) {
            if !is_dir {
                add(&mut t, &own(ns, c, 1, 0));
            } else if depth < MAX_DEPTH {
                let sub = visit(ns, children, out, c, depth + 1);
                add(&mut t, &sub);
            }
        }
        out[dir as usize] = t;
        t
    }
    // Deep chains recurse MAX_DEPTH levels: give the walk a roomy stack.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn_scoped(s, || {
                visit(ns, &children, &mut out, ROOT_INO, 0);
            })
            .expect("spawn oracle")
            .join()
            .expect("oracle ran");
    });
    out
}

/// CPU twin == oracle, one thread == all cores, and every GPU == CPU.
fn check(ns: &Ns, gpus: &[Option<&GpuContext>]) -> Vec<DirTotals> {
    let cpu = subtree_sum::cpu(&ns.view());
    let want = oracle(ns);
    assert_eq!(cpu.len(), ns.inodes.len());
    if let Some(i) = (0..cpu.len()).find(|&i| cpu[i] != want[i]) {
        panic!(
            "CPU twin vs oracle at inode {i}: {:?} != {:?}",
            cpu[i], want[i]
        );
    }
    assert!(
        subtree_sum::cpu_one_thread(&ns.view()) == cpu,
        "one thread vs all cores"
    );
    #[cfg(feature = "gpu")]
    for ctx in gpus.iter().flatten() {
        let mirror = NamespaceMirror::upload(ctx, &ns.view()).expect("upload");
        let gpu = subtree_sum::gpu(ctx, &mirror).expect("gpu run");
        assert_eq!(gpu.len(), cpu.len());
        if let Some(i) = (0..cpu.len()).find(|&i| gpu[i] != cpu[i]) {
            panic!(
                "GPU vs CPU at inode {i} of {}: {:?} != {:?}",
                cpu.len(),
                gpu[i],
                cpu[i]
            );
        }
    }
    cpu
}

/// Makes about one non-directory entry in 20 a hard link to another's inode.
fn add_hard_links(ns: &mut Ns, rng: &mut Rng) {
    let files: Vec<usize> = (0..ns.dirents.len())
        .filter(|&i| ns.dirents[i].ino != 0 && ns.dirents[i].kind != DIR)
        .collect();
    if files.len() < 2 {
        return;
    }
    for &f in &files {
        if rng.chance(5) {
            let other = files[rng.below(files.len() as u64) as usize];
            ns.dirents[f].ino = ns.dirents[other].ino;
        }
    }
}

/// Sizes near 2^64 so that sums wrap, and a shortened `allocated` array.
fn add_huge_sizes(ns: &mut Ns, rng: &mut Rng) {
    for i in 0..ns.inodes.len() {
        if rng.chance(10) {
            ns.inodes[i].size = u64::MAX - rng.below(1 << 20);
        }
        if i < ns.allocated.len() && rng.chance(10) {
            ns.allocated[i] = u64::MAX - rng.below(1 << 33);
        }
    }
    let keep = rng.below(ns.allocated.len() as u64 + 1) as usize;
    ns.allocated.truncate(keep);
}

/// The shared edge sizes, and one larger.
fn sizes() -> Vec<usize> {
    EDGE_SIZES.iter().copied().chain([20_000]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn gpu_equals_cpu_equals_oracle(
        seed in any::<u64>(),
        size in prop::sample::select(sizes()),
        links in any::<bool>(),
        huge in any::<bool>(),
    ) {
        let mut ns = random_tree(seed, size, Alphabet::Small, 8);
        let mut rng = Rng::new(seed ^ 0x5eed);
        if links {
            add_hard_links(&mut ns, &mut rng);
        }
        if huge {
            add_huge_sizes(&mut ns, &mut rng);
        }
        // The tight context's chunked arrays (4 bindings of 128 KiB) hold about 16,000
        // entries: the largest size runs on the plain one only.
        let tight = if size <= 3000 { common::tight_gpu() } else { None };
        let totals = check(&ns, &[common::gpu(), tight]);
        if let Some(root) = totals.get(ROOT_INO as usize) {
            // Every directory of a valid tree is counted once, at the root.
            let dirs: std::collections::BTreeSet<u32> = ns
                .dirents
                .iter()
                .filter(|d| d.ino != 0 && d.kind == DIR)
                .map(|d| d.ino)
                .collect();
            prop_assert_eq!(root.dirs, dirs.len() as u64 + 1);
        }
    }
}

/// A chain of `len` directories below the root, each holding `files` files; returns
/// the chain's inodes, shallowest first.
fn chain(ns: &mut Ns, rng: &mut Rng, len: usize, files: usize) -> Vec<u32> {
    let mut dirs = Vec::with_capacity(len);
    let mut parent = ROOT_INO;
    for _ in 0..len {
        let id = ns
            .add(rng, parent, b"d", FileKind::Directory)
            .expect("fresh");
        parent = ns.dirents[id as usize].ino;
        dirs.push(parent);
        for f in 0..files {
            ns.add(rng, parent, format!("f{f}").as_bytes(), FileKind::Regular)
                .expect("fresh");
        }
    }
    dirs
}

#[test]
fn chain_of_300_directories() {
    let mut ns = random_tree(11, 500, Alphabet::Small, 8);
    let mut rng = Rng::new(11);
    let dirs = chain(&mut ns, &mut rng, 300, 2);
    let totals = check(&ns, &[common::gpu(), common::tight_gpu()]);
    let deepest = totals[*dirs.last().expect("chain") as usize];
    assert_eq!((deepest.files, deepest.dirs), (2, 1));
    assert_eq!(totals[dirs[0] as usize].dirs, 300);
    assert_eq!(totals[dirs[0] as usize].files, 600);
}

#[test]
fn directories_deeper_than_the_bound_count_nowhere() {
    let mut ns = random_tree(12, 0, Alphabet::Small, 8);
    let mut rng = Rng::new(12);
    let len = MAX_DEPTH as usize + 3;
    let dirs = chain(&mut ns, &mut rng, len, 1);
    let totals = check(&ns, &[common::gpu()]);
    // dirs[k] is at depth k + 1: the last counted one is at MAX_DEPTH.
    let last = dirs[MAX_DEPTH as usize - 1] as usize;
    assert_eq!((totals[last].files, totals[last].dirs), (1, 1));
    for &d in &dirs[MAX_DEPTH as usize..] {
        assert_eq!(totals[d as usize], DirTotals::default());
    }
    let root = totals[ROOT_INO as usize];
    assert_eq!(root.dirs, u64::from(MAX_DEPTH) + 1);
    assert_eq!(root.files, u64::from(MAX_DEPTH));
}

#[test]
fn hard_links_count_once_under_the_lowest_live_entry() {
    let mut ns = random_tree(15, 0, Alphabet::Small, 8);
    let mut rng = Rng::new(15);
    let mut dir = |ns: &mut Ns, name: &[u8]| {
        let id = ns.add(&mut rng, ROOT_INO, name, FileKind::Directory);
        ns.dirents[id.expect("fresh") as usize].ino
    };
    let (x, y) = (dir(&mut ns, b"x"), dir(&mut ns, b"y"));
    let first = ns.add(&mut rng, x, b"f", FileKind::Regular).expect("fresh");
    let f = ns.dirents[first as usize].ino;
    raw_entry(&mut ns, y, f, FileKind::Regular);
    raw_entry(&mut ns, y, f, FileKind::Symlink);
    let totals = check(&ns, &[common::gpu()]);
    assert_eq!((totals[x as usize].files, totals[y as usize].files), (1, 0));
    assert_eq!(totals[ROOT_INO as usize].files, 1);
    ns.remove(first);
    let totals = check(&ns, &[common::gpu()]);
    assert_eq!((totals[x as usize].files, totals[y as usize].files), (0, 1));
    assert_eq!(
        totals[y as usize].bytes,
        ns.inodes[y as usize]
            .size
            .wrapping_add(ns.inodes[f as usize].size)
    );
}

/// Pushes a raw entry (no index upkeep: this kernel never reads the index).
fn raw_entry(ns: &mut Ns, parent: u32, ino: u32, kind: FileKind) -> u32 {
    let id = ns.dirents.len() as u32;
    ns.dirents.push(DirentRecord {
        parent,
        ino,
        kind: kind as u8,
        name_len: 1,
        ..Default::default()
    });
    id
}

#[test]
fn corrupt_namespaces_terminate_and_agree() {
    let mut ns = random_tree(13, 0, Alphabet::Small, 8);
    let mut rng = Rng::new(13);
    let mut mk = |ns: &mut Ns, parent: u32, name: &[u8], kind: FileKind| {
        let id = ns.add(&mut rng, parent, name, kind).expect("fresh");
        (id, ns.dirents[id as usize].ino)
    };
    // A and B: a cycle of two directories (A's parent made B), each with a file.
    let (a_entry, a) = mk(&mut ns, ROOT_INO, b"a", FileKind::Directory);
    let (_, b) = mk(&mut ns, a, b"b", FileKind::Directory);
    mk(&mut ns, a, b"fa", FileKind::Regular);
    let (_, fb) = mk(&mut ns, b, b"fb", FileKind::Regular);
    ns.dirents[a_entry as usize].parent = b;
    // S: a directory that is its own parent.
    let (s_entry, s) = mk(&mut ns, ROOT_INO, b"s", FileKind::Directory);
    ns.dirents[s_entry as usize].parent = s;
    // C: a valid directory with one file, also hard-linked from the cycle (counted in C).
    let (_, c) = mk(&mut ns, ROOT_INO, b"c", FileKind::Directory);
    let (_, fc) = mk(&mut ns, c, b"fc", FileKind::Regular);
    raw_entry(&mut ns, a, fc, FileKind::Regular);
    // fb's lowest entry sits in the cycle: a later link under the root does not count.
    raw_entry(&mut ns, ROOT_INO, fb, FileKind::Regular);
    // A second directory entry for C inside the cycle, and one naming the root.
    raw_entry(&mut ns, b, c, FileKind::Directory);
    raw_entry(&mut ns, c, ROOT_INO, FileKind::Directory);
    // A regular entry naming directory C, entries under a file, under a parent past the
    // table, and naming an inode past the table.
    raw_entry(&mut ns, ROOT_INO, c, FileKind::Regular);
    mk(&mut ns, ROOT_INO, b"u", FileKind::Regular);
    ns.dirents.last_mut().expect("entry").parent = fc;
    let (_, linked) = mk(&mut ns, c, b"l", FileKind::Regular);
    raw_entry(&mut ns, 1_000_000, linked, FileKind::Regular);
    raw_entry(&mut ns, ROOT_INO, 1_000_000, FileKind::Regular);

    let totals = check(&ns, &[common::gpu(), common::tight_gpu()]);
    for d in [a, b, s] {
        assert_eq!(totals[d as usize], DirTotals::default(), "inode {d}");
    }
    let mut want_c = own(&ns, c, 0, 1);
    add(&mut want_c, &own(&ns, fc, 1, 0));
    add(&mut want_c, &own(&ns, linked, 1, 0));
    assert_eq!(totals[c as usize], want_c);
    let mut want_root = own(&ns, ROOT_INO, 0, 1);
    add(&mut want_root, &want_c);
    assert_eq!(totals[ROOT_INO as usize], want_root);
}

#[test]
fn empty_and_root_only() {
    let empty = Ns::default();
    assert!(subtree_sum::cpu(&empty.view()).is_empty());
    #[cfg(feature = "gpu")]
    if let Some(ctx) = common::gpu() {
        let mirror = NamespaceMirror::upload(ctx, &empty.view()).expect("upload");
        assert!(subtree_sum::gpu(ctx, &mirror).expect("gpu").is_empty());
    }
    let mut root_only = random_tree(14, 0, Alphabet::Small, 8);
    let totals = check(&root_only, &[common::gpu()]);
    assert_eq!(totals[ROOT_INO as usize], own(&root_only, ROOT_INO, 0, 1));
    root_only.allocated.clear();
    let totals = check(&root_only, &[common::gpu()]);
    assert_eq!(totals[ROOT_INO as usize].allocated, 0);
}
