//! The Compute facade: backend choice, fallback, the mirror kept current through
//! `note_changes`, and the statistics of what ran where.

mod common;

use common::{random_tree, Alphabet, Rng};
use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery};
use gpufs_compute::view::NamespaceDirty;
use gpufs_compute::{Backend, Choice, Compute};
use gpufs_format::{FileKind, ROOT_INO};

#[test]
fn forced_gpu_runs_on_the_gpu_and_follows_changes() {
    if common::gpu().is_none() {
        return;
    }
    let compute = Compute::open(Choice::Gpu).expect("an adapter (lavapipe counts)");
    assert!(compute.gpu().is_some());
    let mut ns = random_tree(21, 2000, Alphabet::Small, 8);
    let m = NameMatcher::new(&NameQuery::Substring {
        needle: b"zz-new".to_vec(),
        fold: false,
    })
    .expect("compiles");
    assert!(compute.name_match(&m, &ns.view()).expect("runs").is_empty());
    // Changes reach the mirror only through note_changes.
    let mut rng = Rng::new(1);
    let before = (ns.dirents.len(), ns.names.len(), ns.inodes.len());
    let id = ns
        .add(&mut rng, ROOT_INO, b"zz-new-file", FileKind::Regular)
        .expect("fresh");
    let mut dirty = NamespaceDirty::default();
    dirty.dirents.mark(before.0 as u64, ns.dirents.len() as u64);
    dirty.names.mark(before.1 as u64, ns.names.len() as u64);
    dirty.inodes.mark(before.2 as u64, ns.inodes.len() as u64);
    dirty
        .allocated
        .mark(before.2 as u64, ns.inodes.len() as u64);
    dirty
        .dir_entry
        .mark(before.2 as u64, ns.inodes.len() as u64);
    dirty.index = ns.index.take_dirty();
    compute.note_changes(&dirty);
    assert_eq!(compute.name_match(&m, &ns.view()).expect("runs"), vec![id]);
    let paths = compute.path_build(&ns.view(), &[id]).expect("runs");
    assert_eq!(paths.get(0), b"/zz-new-file");
    let stats = compute.stats.snapshot();
    assert!(stats
        .iter()
        .any(|(k, b, t)| *k == "name_match" && *b == Backend::Gpu && t.calls == 2));
    assert!(stats.iter().all(|(_, b, _)| *b == Backend::Gpu));
}

#[test]
fn auto_never_uses_a_software_adapter() {
    let compute = Compute::open(Choice::Auto).expect("auto always opens");
    if let Some(ctx) = compute.gpu() {
        assert!(!ctx.software, "auto picked a software adapter");
    }
    let ns = random_tree(2, 500, Alphabet::Small, 8);
    let m = NameMatcher::new(&NameQuery::Glob {
        pattern: b"*a*".to_vec(),
        fold: true,
    })
    .expect("compiles");
    let got = compute.name_match(&m, &ns.view()).expect("runs");
    assert_eq!(got, m.cpu(&ns.view()));
    let cpu_only = Compute::cpu_only();
    assert_eq!(cpu_only.name_match(&m, &ns.view()).expect("runs"), got);
    assert!(cpu_only
        .stats
        .snapshot()
        .iter()
        .all(|(_, b, _)| *b == Backend::Cpu));
}
