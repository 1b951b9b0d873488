//! CRC32C on both backends: the published check values, then seeded random batches
//! (edge sizes around slices, blocks and the largest record; text and random bytes)
//! where GPU, CPU twin and the crc32c crate must agree.

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use common::Rng;
use gpufs_compute::kernels::crc32c;
use gpufs_compute::records::{RecordBatch, MAX_RECORD_BYTES};

/// Every backend's CRCs of `batch`, labelled.
fn all_backends(batch: &RecordBatch) -> Vec<(String, Vec<u32>)> {
    let mut out = vec![
        ("cpu".to_string(), crc32c::cpu(batch)),
        ("cpu_one_thread".to_string(), crc32c::cpu_one_thread(batch)),
    ];
    #[cfg(feature = "gpu")]
    for (i, ctx) in common::gpus().into_iter().enumerate() {
        out.push((format!("gpu{i}"), crc32c::gpu(ctx, batch).unwrap()));
    }
    out
}

#[test]
fn known_answers() {
    let asc: Vec<u8> = (0..32).collect();
    let desc: Vec<u8> = (0..32).rev().collect();
    let cases: [(&[u8], u32); 6] = [
        (b"123456789", 0xE306_9283),
        (&[0u8; 32], 0x8A91_36AA),
        (&[0xFFu8; 32], 0x62A8_AB43),
        (&asc, 0x46DD_794E),
        (&desc, 0x113F_DB5C),
        (b"", 0),
    ];
    let batch = RecordBatch::from_records(cases.iter().map(|c| c.0)).unwrap();
    let want: Vec<u32> = cases.iter().map(|c| c.1).collect();
    for (name, got) in all_backends(&batch) {
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn backends_agree_on_random_batches() {
    let edges = [
        0usize,
        1,
        3,
        4,
        5,
        255,
        256,
        257,
        4095,
        4096,
        4097,
        65_535,
        65_536,
        65_537,
        131_075,
        MAX_RECORD_BYTES - 1,
        MAX_RECORD_BYTES,
    ];
    for seed in 0..3 {
        let batch = common::random_batch(seed, &edges, 12, 300);
        let want: Vec<u32> = batch.iter().map(::crc32c::crc32c).collect();
        for (name, got) in all_backends(&batch) {
            assert_eq!(got, want, "{name}, seed {seed}");
        }
    }
}

#[test]
fn many_small_records() {
    let mut rng = Rng::new(99);
    let mut batch = RecordBatch::new();
    for _ in 0..5000 {
        let len = rng.below(40) as usize;
        batch.push(&common::record(&mut rng, len)).unwrap();
    }
    let want: Vec<u32> = batch.iter().map(::crc32c::crc32c).collect();
    for (name, got) in all_backends(&batch) {
        assert_eq!(got, want, "{name}");
    }
}

#[test]
#[cfg(feature = "gpu")]
fn batches_split_into_parts() {
    let batch = common::random_batch(7, &[0, 70_000, 1, 300_000, 65_536], 10, 300);
    let want = crc32c::cpu(&batch);
    for ctx in common::gpus() {
        for part_bytes in [1u64, 100_000, 1 << 20] {
            let parts = crc32c::upload_in_parts(ctx, &batch, part_bytes).unwrap();
            assert!(parts.len() > 1, "{part_bytes} bytes per part");
            let out = crc32c::run(ctx, &parts).unwrap();
            assert_eq!(crc32c::read(ctx, &out).unwrap(), want, "{part_bytes}");
        }
    }
}

#[test]
fn empty_batch() {
    let batch = RecordBatch::new();
    for (name, got) in all_backends(&batch) {
        assert!(got.is_empty(), "{name}");
    }
}
