//! Sizes the edge-size tests cannot reach: a dispatch of more than 65,535 workgroups
//! (a real 2-D grid), and namespace arrays larger than one 128 MiB storage binding.

#![cfg(feature = "gpu")]

mod common;

use common::{random_name, Alphabet, Ns, Rng};
use gpufs_compute::kernels::dir_sort::{self, SortKey};
use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery};
use gpufs_compute::kernels::{path_build, path_lookup, subtree_sum};
use gpufs_compute::mirror::NamespaceMirror;
use gpufs_format::{FileKind, InodeRecord, ROOT_INO};

fn empty_ns() -> Ns {
    let mut ns = common::random_tree(1, 0, Alphabet::Small, 1);
    assert_eq!(ns.inodes.len(), 2);
    ns.inodes.truncate(2);
    ns
}

#[test]
fn more_than_65535_workgroups() {
    let Some(ctx) = common::gpu() else { return };
    let mut ns = empty_ns();
    let mut rng = Rng::new(3);
    let dir = ns
        .add(&mut rng, ROOT_INO, b"d", FileKind::Directory)
        .expect("fresh name");
    let dir_ino = ns.dirents[dir as usize].ino;
    for name in [&b"x"[..], b"yy", b"z"] {
        ns.add(&mut rng, dir_ino, name, FileKind::Regular);
    }
    // 65,535 workgroups of 256 plus a few more: the grid must go 2-D.
    let n = 65_535 * 256 + 1000;
    let ids: Vec<u32> = (0..n).map(|i| (i % ns.dirents.len()) as u32).collect();
    let mirror = NamespaceMirror::upload(ctx, &ns.view()).expect("upload");
    let gpu = path_build::gpu(ctx, &mirror, &ids).expect("gpu");
    let cpu = path_build::cpu(&ns.view(), &ids);
    assert_eq!(gpu.len(), n);
    assert!(gpu == cpu, "GPU and CPU paths differ on {n} ids");
    assert_eq!(gpu.get(n - 1), cpu.get(n - 1));
}

#[test]
fn names_larger_than_one_binding() {
    let Some(ctx) = common::gpu() else { return };
    let mut ns = empty_ns();
    let mut rng = Rng::new(17);
    // 700,000 names of 200..=255 bytes: about 140 MiB of names, past one 128 MiB binding.
    let mut dirs = vec![ROOT_INO];
    let target = 700_000;
    ns.dirents.reserve(target);
    ns.names.reserve(target * 230);
    while ns.dirents.len() < target {
        let parent = dirs[rng.below(dirs.len() as u64) as usize];
        let mut name = random_name(&mut rng, Alphabet::AnyByte, 56);
        let pad = 200 - name.len().min(200);
        name.extend(std::iter::repeat_n(b'p', pad));
        let kind = if rng.chance(5) {
            FileKind::Directory
        } else {
            FileKind::Regular
        };
        if let Some(id) = ns.add(&mut rng, parent, &name, kind) {
            if kind == FileKind::Directory {
                dirs.push(ns.dirents[id as usize].ino);
            }
        }
    }
    assert!(
        ns.names.len() > 128 << 20,
        "{} bytes of names",
        ns.names.len()
    );
    assert!(ns.inodes.iter().skip(1).all(InodeRecord::is_live));
    let view = ns.view();
    let mirror = NamespaceMirror::upload(ctx, &view).expect("upload");
    // Names at the very end of the arena, in the second binding.
    let last = ns.name(ns.dirents.len() as u32 - 1).to_vec();
    for q in [
        NameQuery::Substring {
            needle: last[..20].to_vec(),
            fold: false,
        },
        NameQuery::Substring {
            needle: b"ppp".to_vec(),
            fold: true,
        },
        NameQuery::Glob {
            pattern: b"*[a-c]*pp".to_vec(),
            fold: true,
        },
        NameQuery::Regex {
            pattern: "^[a-z]{2}".into(),
            fold: false,
        },
    ] {
        let m = NameMatcher::new(&q).expect("compiles");
        let cpu = m.cpu(&view);
        assert!(!cpu.is_empty(), "{q:?} matches something");
        assert_eq!(m.gpu(ctx, &mirror).expect("gpu"), cpu, "{q:?}");
    }
    // Paths of the last 20,000 entries, and looking them up again.
    let ids: Vec<u32> = (ns.dirents.len() as u32 - 20_000..ns.dirents.len() as u32).collect();
    let built = path_build::cpu(&view, &ids);
    assert_eq!(path_build::gpu(ctx, &mirror, &ids).expect("gpu"), built);
    let refs: Vec<&[u8]> = built.iter().collect();
    let found = path_lookup::cpu(&view, &refs);
    assert!(found.iter().all(|&i| i != 0));
    assert_eq!(path_lookup::gpu(ctx, &mirror, &refs).expect("gpu"), found);
    // More path bytes than one binding holds: the lookup runs as several dispatches.
    let one: u64 = refs.iter().map(|p| p.len() as u64).sum();
    let times = (ctx.max_binding / one + 2) as usize;
    let many: Vec<&[u8]> = refs
        .iter()
        .copied()
        .cycle()
        .take(refs.len() * times)
        .collect();
    let want: Vec<u32> = found.iter().copied().cycle().take(many.len()).collect();
    assert_eq!(path_lookup::gpu(ctx, &mirror, &many).expect("gpu"), want);
    // Sorting those entries by name reads names from the second binding too.
    for key in [SortKey::Name, SortKey::Size] {
        assert_eq!(
            dir_sort::gpu(ctx, &mirror, &ids, key, false).expect("gpu"),
            dir_sort::cpu(&view, &ids, key, false)
        );
    }
    // Totals over the whole namespace.
    assert_eq!(
        subtree_sum::gpu(ctx, &mirror).expect("gpu"),
        subtree_sum::cpu(&view)
    );
}
