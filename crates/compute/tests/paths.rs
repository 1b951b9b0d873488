//! path_build and path_lookup: WGSL kernels equal their CPU twins, and the twins agree
//! with a plain walk of the model tree.

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use common::{random_tree, Alphabet, Ns, Rng, EDGE_SIZES};
use gpufs_compute::dir_tree::DirTree;
use gpufs_compute::kernels::{path_build, path_lookup};
#[cfg(feature = "gpu")]
use gpufs_compute::mirror::NamespaceMirror;
use gpufs_compute::view::NamespaceView;
use gpufs_format::ROOT_INO;
use proptest::prelude::*;

/// Path of `id` by walking parents with a linear scan (no dir_entry, no index).
fn oracle_path(ns: &Ns, id: u32) -> Vec<u8> {
    let mut parts = Vec::new();
    let mut e = id;
    loop {
        let d = ns.dirents[e as usize];
        if d.ino == 0 {
            return Vec::new();
        }
        parts.push(ns.name(e).to_vec());
        if d.parent == ROOT_INO {
            break;
        }
        let Some(up) = (0..ns.dirents.len() as u32)
            .find(|&x| ns.dirents[x as usize].ino == d.parent && ns.dirents[x as usize].kind == 2)
        else {
            return Vec::new();
        };
        e = up;
    }
    let mut out = Vec::new();
    for p in parts.iter().rev() {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    out
}

fn some_ids(rng: &mut Rng, ns: &Ns) -> Vec<u32> {
    let n = ns.dirents.len() as u64;
    let mut ids: Vec<u32> = (0..n as u32).collect();
    // A shuffled subset with repeats, dead entries included.
    for _ in 0..(n / 3) {
        ids.push(rng.below(n) as u32);
    }
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    ids
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn build_gpu_equals_cpu(seed in any::<u64>(), size_pick in 0usize..6, any_byte in any::<bool>()) {
        let alphabet = if any_byte { Alphabet::AnyByte } else { Alphabet::Small };
        let ns = random_tree(seed, EDGE_SIZES[size_pick], alphabet, if any_byte { 255 } else { 8 });
        let ids = some_ids(&mut Rng::new(seed), &ns);
        let view = ns.view();
        let cpu = path_build::cpu(&view, &ids);
        prop_assert_eq!(cpu.len(), ids.len());
        prop_assert_eq!(&path_build::cpu_one_thread(&view, &ids), &cpu);
        // From the directory tree the namespace's owner keeps: the same paths.
        let tree = DirTree::build(&view);
        let kept = NamespaceView { dirs: Some(&tree), ..view };
        prop_assert_eq!(&path_build::cpu(&kept, &ids), &cpu);
        let format = path_build::PathFormat { prefix: b"/mnt".to_vec(), end: 0 };
        let joined = path_build::cpu_joined(&view, &ids, &format).concat();
        prop_assert_eq!(&path_build::join(&cpu, &format).concat(), &joined);
        let mut want = Vec::new();
        for p in cpu.iter().filter(|p| !p.is_empty()) {
            want.extend_from_slice(b"/mnt");
            want.extend_from_slice(p);
            want.push(0);
        }
        prop_assert_eq!(&path_build::cpu_joined(&kept, &ids, &format).concat(), &want);
        prop_assert_eq!(joined, want);
        if ids.len() <= 600 {
            for (i, &id) in ids.iter().enumerate() {
                let want = oracle_path(&ns, id);
                prop_assert_eq!(cpu.get(i), want.as_slice());
            }
        }
        #[cfg(feature = "gpu")]
        for ctx in common::gpus() {
            let mirror = NamespaceMirror::upload(ctx, &view).expect("upload");
            let gpu = path_build::gpu(ctx, &mirror, &ids).expect("gpu");
            prop_assert_eq!(&gpu, &cpu);
        }
    }

    #[test]
    fn dir_tree_paths_equal_chain_walks(seed in any::<u64>(), any_byte in any::<bool>(), removals in 0u64..40) {
        let alphabet = if any_byte { Alphabet::AnyByte } else { Alphabet::Small };
        let mut ns = random_tree(seed, 900, alphabet, if any_byte { 40 } else { 6 });
        // Directories removed with their entries left in place: broken chains.
        let mut rng = Rng::new(seed ^ 0x7EE);
        for _ in 0..removals {
            let id = rng.below(ns.dirents.len() as u64) as u32;
            ns.remove(id);
        }
        let view = ns.view();
        let tree = DirTree::build(&view);
        prop_assert_eq!(tree.slot(ROOT_INO), Some(0));
        prop_assert!(tree.path(0).is_empty());
        for s in 1..tree.len() as u32 {
            prop_assert!(tree.parent(s) < s, "a parent comes before its children");
            let e = view.entry_of_dir(tree.ino(s)).expect("a tree directory has an entry");
            let want = oracle_path(&ns, e);
            prop_assert_eq!(tree.path(s), want.as_slice());
            prop_assert_eq!(tree.name(s), ns.name(e));
        }
        // Every directory with a path is in the tree.
        for (id, d) in ns.dirents.iter().enumerate() {
            if d.ino != 0 && d.kind == 2 && !oracle_path(&ns, id as u32).is_empty() {
                prop_assert!(tree.slot(d.ino).is_some(), "directory {} missing", d.ino);
            }
        }
        for id in 0..ns.dirents.len() as u32 {
            let mut got = Vec::new();
            let want = oracle_path(&ns, id);
            prop_assert_eq!(tree.append_entry(&view, id, &mut got), !want.is_empty());
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn lookup_gpu_equals_cpu(seed in any::<u64>(), size_pick in 0usize..6, any_byte in any::<bool>()) {
        let alphabet = if any_byte { Alphabet::AnyByte } else { Alphabet::Small };
        let ns = random_tree(seed, EDGE_SIZES[size_pick], alphabet, if any_byte { 255 } else { 8 });
        let view = ns.view();
        let mut rng = Rng::new(seed ^ 5);
        let ids = some_ids(&mut rng, &ns);
        let built = path_build::cpu(&view, &ids);
        // Real paths, some bent: "./", "//", "x/..", a missing tail, through a file.
        let mut paths: Vec<Vec<u8>> = Vec::new();
        for p in built.iter() {
            let mut q = p.to_vec();
            match rng.below(8) {
                0 => q.extend_from_slice(b"/."),
                1 => q.extend_from_slice(b"//"),
                2 => q.extend_from_slice(b"/missing-name"),
                3 => q.extend_from_slice(b"/../."),
                4 => q.insert(0, b'/'),
                _ => {}
            }
            paths.push(q);
        }
        paths.push(Vec::new());
        paths.push(b"/".to_vec());
        paths.push(b"..".to_vec());
        paths.push(vec![b'a'; 300]);
        let refs: Vec<&[u8]> = paths.iter().map(|p| p.as_slice()).collect();
        let cpu = path_lookup::cpu(&view, &refs);
        prop_assert_eq!(&path_lookup::cpu_one_thread(&view, &refs), &cpu);
        // Every unbent path of a live entry resolves to that entry's inode.
        for (i, &id) in ids.iter().enumerate() {
            let d = ns.dirents[id as usize];
            if d.ino != 0 && paths[i] == built.get(i) {
                prop_assert_eq!(cpu[i], d.ino);
            }
        }
        #[cfg(feature = "gpu")]
        for ctx in common::gpus() {
            let mirror = NamespaceMirror::upload(ctx, &view).expect("upload");
            let gpu = path_lookup::gpu(ctx, &mirror, &refs).expect("gpu");
            prop_assert_eq!(&gpu, &cpu);
        }
    }
}

#[test]
#[cfg(feature = "gpu")]
fn mirror_follows_mutations_through_dirty_ranges() {
    let Some(ctx) = common::gpu() else { return };
    let mut ns = random_tree(11, 3000, Alphabet::Small, 8);
    let mut mirror = NamespaceMirror::upload(ctx, &ns.view()).expect("upload");
    let mut rng = Rng::new(99);
    for round in 0..5 {
        let mut dirty = gpufs_compute::view::NamespaceDirty::default();
        let before = (ns.dirents.len(), ns.names.len(), ns.inodes.len());
        // Unlink some, add some (new dirents, names, inodes, index slots, dir entries).
        for _ in 0..50 {
            let id = rng.below(ns.dirents.len() as u64) as u32;
            if ns.dirents[id as usize].kind != 2 {
                ns.remove(id);
                dirty.dirents.mark(u64::from(id), u64::from(id) + 1);
            }
        }
        for k in 0..200 {
            let name = format!("new-{round}-{k}");
            ns.add(
                &mut rng,
                ROOT_INO,
                name.as_bytes(),
                gpufs_format::FileKind::Directory,
            );
        }
        dirty.dirents.mark(before.0 as u64, ns.dirents.len() as u64);
        dirty.names.mark(before.1 as u64, ns.names.len() as u64);
        dirty.inodes.mark(before.2 as u64, ns.inodes.len() as u64);
        dirty
            .allocated
            .mark(before.2 as u64, ns.inodes.len() as u64);
        dirty.dir_entry.mark(0, ns.dir_entry.len() as u64);
        dirty.index = ns.index.take_dirty();
        mirror.update(ctx, &ns.view(), &mut dirty).expect("update");
        let paths: Vec<Vec<u8>> = (0..200)
            .map(|k| format!("/new-{round}-{k}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = paths.iter().map(|p| p.as_slice()).collect();
        let cpu = path_lookup::cpu(&ns.view(), &refs);
        assert!(cpu.iter().all(|&i| i != 0));
        assert_eq!(path_lookup::gpu(ctx, &mirror, &refs).expect("gpu"), cpu);
        let all: Vec<u32> = (0..ns.dirents.len() as u32).collect();
        assert_eq!(
            path_build::gpu(ctx, &mirror, &all).expect("gpu"),
            path_build::cpu(&ns.view(), &all)
        );
    }
}

#[test]
#[cfg(feature = "gpu")]
fn hash_emulation_matches_the_format() {
    // Names with every byte value 1..=255 except '/', under parents with high bits set.
    let Some(ctx) = common::gpu() else { return };
    let mut ns = random_tree(5, 1, Alphabet::Small, 4);
    let mut rng = Rng::new(1);
    let mut paths = Vec::new();
    for b in 1..=255u8 {
        if b == b'/' || b == b'.' {
            continue;
        }
        let name = vec![b, b.wrapping_mul(7).max(1), 0xff];
        let name: Vec<u8> = name
            .into_iter()
            .map(|c| if c == b'/' { b'x' } else { c })
            .collect();
        if ns
            .add(&mut rng, ROOT_INO, &name, gpufs_format::FileKind::Regular)
            .is_some()
        {
            let mut p = b"/".to_vec();
            p.extend_from_slice(&name);
            paths.push(p);
        }
    }
    let refs: Vec<&[u8]> = paths.iter().map(|p| p.as_slice()).collect();
    let cpu = path_lookup::cpu(&ns.view(), &refs);
    assert!(cpu.iter().all(|&i| i != 0));
    let mirror = NamespaceMirror::upload(ctx, &ns.view()).expect("upload");
    assert_eq!(path_lookup::gpu(ctx, &mirror, &refs).expect("gpu"), cpu);
}

/// A chain of directories deeper than `MAX_DEPTH`: entries at most `MAX_DEPTH` deep get
/// their paths, deeper ones none, on every builder; shallow directories of the chain
/// keep theirs whichever entry is built first.
#[test]
fn chains_deeper_than_the_bound_have_no_path() {
    use gpufs_format::FileKind;
    let mut ns = random_tree(21, 0, Alphabet::Small, 8);
    let mut rng = Rng::new(21);
    let len = path_build::MAX_DEPTH + 3;
    let mut parent = ROOT_INO;
    let mut files = Vec::new();
    for _ in 0..len {
        let id = ns
            .add(&mut rng, parent, b"d", FileKind::Directory)
            .expect("fresh");
        parent = ns.dirents[id as usize].ino;
        files.push(
            ns.add(&mut rng, parent, b"f", FileKind::Regular)
                .expect("fresh"),
        );
    }
    // Deepest first, so the table meets the too-deep part of the chain before the rest.
    let ids: Vec<u32> = files.iter().rev().copied().collect();
    let view = ns.view();
    let cpu = path_build::cpu(&view, &ids);
    assert_eq!(cpu, path_build::cpu_one_thread(&view, &ids));
    let tree = DirTree::build(&view);
    let kept = NamespaceView {
        dirs: Some(&tree),
        ..view
    };
    assert_eq!(path_build::cpu(&kept, &ids), cpu);
    // The tree holds the root and the directories at most MAX_DEPTH deep, each with
    // the path its own entry gets.
    assert_eq!(tree.len(), path_build::MAX_DEPTH + 1);
    for s in 1..tree.len() as u32 {
        let mut want = Vec::new();
        let e = view.entry_of_dir(tree.ino(s)).expect("entry");
        path_build::path_of(&view, e, &mut want);
        assert_eq!(tree.path(s), want.as_slice(), "slot {s}");
    }
    for i in 0..ids.len() {
        // files[k] sits k + 1 directories down: its path has k + 2 entries.
        let k = files.len() - 1 - i;
        if k + 2 <= path_build::MAX_DEPTH {
            assert_eq!(cpu.get(i).len(), 2 * (k + 1) + 2, "file {k}");
        } else {
            assert!(cpu.get(i).is_empty(), "file {k} is too deep");
        }
    }
    // (The tight test adapter's four small bindings cannot hold 8,000 entries.)
    #[cfg(feature = "gpu")]
    if let Some(ctx) = common::gpu() {
        let mirror = NamespaceMirror::upload(ctx, &view).expect("upload");
        assert_eq!(path_build::gpu(ctx, &mirror, &ids).expect("gpu"), cpu);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// The streamed text (pieces handed over in order while later ones are built, on
    /// the CPU and through `Compute`) is the whole text of the kept entries.
    #[test]
    fn streamed_text_equals_the_whole_text(seed in any::<u64>(), size_pick in 0usize..6, any_byte in any::<bool>()) {
        let alphabet = if any_byte { Alphabet::AnyByte } else { Alphabet::Small };
        let ns = random_tree(seed, EDGE_SIZES[size_pick], alphabet, if any_byte { 255 } else { 8 });
        let mut ids = some_ids(&mut Rng::new(seed), &ns);
        // Enough ids for several pieces.
        while !ids.is_empty() && ids.len() < 40_000 {
            ids.extend_from_within(..ids.len().min(40_000 - ids.len()));
        }
        let view = ns.view();
        let tree = DirTree::build(&view);
        let kept_view = NamespaceView { dirs: Some(&tree), ..view };
        let format = path_build::PathFormat { prefix: b"/m".to_vec(), end: b'\n' };
        let keep = |d: &gpufs_format::DirentRecord| !d.name_len.is_multiple_of(3);
        let kept: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&id| ns.dirents.get(id as usize).is_some_and(&keep))
            .collect();
        let want = path_build::cpu_joined(&view, &kept, &format).concat();
        let lines = path_build::cpu(&view, &kept).iter().filter(|p| !p.is_empty()).count();
        for v in [&view, &kept_view] {
            let mut got = Vec::new();
            let mut count = 0;
            let mut pieces = 0;
            path_build::cpu_join_streamed(v, &ids, &keep, &format, &mut |p| {
                count += p.lines;
                pieces += 1;
                got.extend_from_slice(&p.text);
            });
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(count, lines);
            prop_assert_eq!(pieces, ids.len().div_ceil(2048));
            let compute = gpufs_compute::Compute::cpu_only();
            let mut got = Vec::new();
            let n = compute
                .join_text(v, &ids, &keep, &format, &mut |t| got.extend_from_slice(&t))
                .expect("join_text");
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(n, lines);
        }
    }
}
