//! The Compute facade: backend choice, fallback, the mirror kept current through
//! `note_changes`, and the statistics of what ran where.

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use common::{random_tree, Alphabet, Rng};
use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery};
use gpufs_compute::view::NamespaceDirty;
use gpufs_compute::{Backend, Choice, Compute};
use gpufs_format::{FileKind, ROOT_INO};

#[test]
#[cfg(feature = "gpu")]
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

/// Built without the `gpu` feature: asking for the GPU is a clear error, `auto` is the
/// CPU.
#[test]
#[cfg(not(feature = "gpu"))]
fn without_gpu_support_only_the_cpu_runs() {
    let e = Compute::open(Choice::Gpu).expect_err("no GPU backend");
    assert!(e.to_string().contains("built without GPU support"), "{e}");
    let compute = Compute::open(Choice::Auto).expect("auto opens");
    let ns = random_tree(4, 300, Alphabet::Small, 8);
    let m = NameMatcher::new(&NameQuery::Glob {
        pattern: b"*a*".to_vec(),
        fold: false,
    })
    .expect("compiles");
    assert_eq!(compute.backend_for("name_match", u64::MAX), Backend::Cpu);
    assert_eq!(
        compute.name_match(&m, &ns.view()).expect("runs"),
        m.cpu(&ns.view())
    );
}

#[test]
fn auto_never_uses_a_software_adapter() {
    let compute = Compute::open(Choice::Auto).expect("auto always opens");
    #[cfg(feature = "gpu")]
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

/// The data kernels through the facade: the same answers on the CPU and on a forced
/// GPU, each call counted under its backend, refusals passed through as errors.
#[test]
fn data_kernels_through_the_facade() {
    use gpufs_compute::kernels::blake3::Blake3Mode;
    use gpufs_compute::kernels::xts::{Direction, XtsKey};
    use gpufs_compute::records::RecordBatch;
    use gpufs_compute::synth::data::{corpus, DataKind};
    let batch = corpus(DataKind::Text, 5, 6, 10_000).expect("corpus");
    let key = XtsKey {
        data: [1; 32],
        tweak: [2; 32],
    };
    let first: Vec<u64> = (0..6).map(|i| i * 3).collect();
    let mut backends = vec![(Compute::cpu_only(), Backend::Cpu)];
    if common::gpu().is_some() {
        backends.push((Compute::open(Choice::Gpu).expect("adapter"), Backend::Gpu));
    }
    let mut answers = Vec::new();
    for (c, backend) in &backends {
        let crc = c.crc32c(&batch).expect("crc32c");
        let hash = c.blake3(&batch, &Blake3Mode::Hash).expect("blake3");
        let sealed = c
            .xts(&batch, &key, &first, Direction::Encrypt)
            .expect("xts");
        let opened = c
            .xts(&sealed, &key, &first, Direction::Decrypt)
            .expect("xts");
        assert_eq!(opened, batch);
        let packed = c.lz4_compress(&batch).expect("lz4");
        assert!(packed.shrunk.iter().all(|&s| s), "text shrinks");
        let back = c
            .lz4_decompress(&packed.blocks, batch.lens())
            .expect("lz4 decompress");
        assert!(back.status.iter().all(Result::is_ok));
        assert_eq!(back.data, batch);
        let short = RecordBatch::from_records([&b"short"[..]]).expect("batch");
        assert!(c.xts(&short, &key, &[0], Direction::Encrypt).is_err());
        let ran: Vec<&str> = c
            .stats
            .snapshot()
            .into_iter()
            .filter(|(_, b, _)| b == backend)
            .map(|(k, _, _)| k)
            .collect();
        for k in [
            "crc32c",
            "blake3",
            "aes_xts",
            "lz4_compress",
            "lz4_decompress",
        ] {
            assert!(ran.contains(&k), "{k} counted on {backend:?}: {ran:?}");
        }
        answers.push((crc, hash, sealed));
    }
    if let [cpu, gpu] = &answers[..] {
        assert_eq!(cpu, gpu);
    }
}
