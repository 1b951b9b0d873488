//! BLAKE3 on both backends: the official test vectors (plain and keyed), then seeded
//! random batches (edge sizes around chunks, tree levels and the largest record; text and
//! random bytes) where GPU, CPU twin and the blake3 crate must agree.

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use common::Rng;
use gpufs_compute::kernels::blake3::{self, Blake3Mode};
use gpufs_compute::records::{RecordBatch, MAX_RECORD_BYTES};

/// The key of the official keyed_hash vectors.
const KEY: &[u8; 32] = b"whats the Elvish word for friend";

/// Input length, then the first 32 bytes of `hash` and of `keyed_hash`, from
/// test_vectors/test_vectors.json of the BLAKE3 repository.
const VECTORS: [(usize, &str, &str); 22] = [
    (
        0,
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26",
    ),
    (
        1,
        "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
        "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b",
    ),
    (
        1023,
        "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
        "c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e",
    ),
    (
        1024,
        "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
        "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4",
    ),
    (
        1025,
        "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
        "357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69",
    ),
    (
        2048,
        "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a",
        "879cf1fa2ea0e79126cb1063617a05b6ad9d0b696d0d757cf053439f60a99dd1",
    ),
    (
        2049,
        "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030",
        "9f29700902f7c86e514ddc4df1e3049f258b2472b6dd5267f61bf13983b78dd5",
    ),
    (
        3072,
        "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2",
        "044a0e7b172a312dc02a4c9a818c036ffa2776368d7f528268d2e6b5df191770",
    ),
    (
        3073,
        "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3",
        "68dede9bef00ba89e43f31a6825f4cf433389fedae75c04ee9f0cf16a427c95a",
    ),
    (
        4096,
        "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969",
        "befc660aea2f1718884cd8deb9902811d332f4fc4a38cf7c7300d597a081bfc0",
    ),
    (
        4097,
        "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995",
        "00df940cd36bb9fa7cbbc3556744e0dbc8191401afe70520ba292ee3ca80abbc",
    ),
    (
        5120,
        "9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833",
        "2c493e48e9b9bf31e0553a22b23503c0a3388f035cece68eb438d22fa1943e20",
    ),
    (
        5121,
        "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff",
        "6ccf1c34753e7a044db80798ecd0782a8f76f33563accaddbfbb2e0ea4b2d024",
    ),
    (
        6144,
        "3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205",
        "3d6b6d21281d0ade5b2b016ae4034c5dec10ca7e475f90f76eac7138e9bc8f1d",
    ),
    (
        6145,
        "f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f",
        "9ac301e9e39e45e3250a7e3b3df701aa0fb6889fbd80eeecf28dbc6300fbc539",
    ),
    (
        7168,
        "61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a",
        "b42835e40e9d4a7f42ad8cc04f85a963a76e18198377ed84adddeaecacc6f3fc",
    ),
    (
        7169,
        "a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817",
        "ed9b1a922c046fdb3d423ae34e143b05ca1bf28b710432857bf738bcedbfa511",
    ),
    (
        8192,
        "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63",
        "dc9637c8845a770b4cbf76b8daec0eebf7dc2eac11498517f08d44c8fc00d58a",
    ),
    (
        8193,
        "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b",
        "954a2a75420c8d6547e3ba5b98d963e6fa6491addc8c023189cc519821b4a1f5",
    ),
    (
        16384,
        "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4",
        "9e9fc4eb7cf081ea7c47d1807790ed211bfec56aa25bb7037784c13c4b707b0d",
    ),
    (
        31744,
        "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47",
        "efa53b389ab67c593dba624d898d0f7353ab99e4ac9d42302ee64cbf9939a419",
    ),
    (
        102400,
        "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085",
        "1c35d1a5811083fd7119f5d5d1ba027b4d01c0c6c49fb6ff2cf75393ea5db4a7",
    ),
];

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every backend's hashes of `batch`, labelled.
fn all_backends(batch: &RecordBatch, mode: &Blake3Mode) -> Vec<(String, Vec<[u8; 32]>)> {
    let mut out = vec![
        ("cpu".to_string(), blake3::cpu(batch, mode)),
        (
            "cpu_one_thread".to_string(),
            blake3::cpu_one_thread(batch, mode),
        ),
    ];
    #[cfg(feature = "gpu")]
    for (i, ctx) in common::gpus().into_iter().enumerate() {
        out.push((format!("gpu{i}"), blake3::gpu(ctx, batch, mode).unwrap()));
    }
    out
}

#[test]
fn official_test_vectors() {
    let inputs: Vec<Vec<u8>> = VECTORS
        .iter()
        .map(|&(len, _, _)| (0..len).map(|i| (i % 251) as u8).collect())
        .collect();
    let batch = RecordBatch::from_records(inputs.iter().map(|r| &r[..])).unwrap();
    for (mode, pick) in [(Blake3Mode::Hash, 0), (Blake3Mode::Keyed(*KEY), 1)] {
        let want: Vec<&str> = VECTORS
            .iter()
            .map(|v| if pick == 0 { v.1 } else { v.2 })
            .collect();
        for (name, got) in all_backends(&batch, &mode) {
            let got: Vec<String> = got.iter().map(hex).collect();
            assert_eq!(got, want, "{name}, {mode:?}");
        }
    }
}

fn modes(rng: &mut Rng) -> [Blake3Mode; 2] {
    let mut key = [0u8; 32];
    key.iter_mut().for_each(|b| *b = rng.next() as u8);
    [Blake3Mode::Hash, Blake3Mode::Keyed(key)]
}

fn crate_hash(mode: &Blake3Mode, r: &[u8]) -> [u8; 32] {
    match mode {
        Blake3Mode::Hash => *::blake3::hash(r).as_bytes(),
        Blake3Mode::Keyed(k) => *::blake3::keyed_hash(k, r).as_bytes(),
    }
}

#[test]
fn backends_agree_on_random_batches() {
    let edges = [
        0usize,
        1,
        63,
        64,
        65,
        1023,
        1024,
        1025,
        4095,
        4096,
        4097,
        65_536,
        3 * 1024 + 5,
        MAX_RECORD_BYTES - 1,
        MAX_RECORD_BYTES,
    ];
    for seed in 0..2 {
        let batch = common::random_batch(seed, &edges, 8, 3000);
        for mode in modes(&mut Rng::new(seed + 100)) {
            let want: Vec<[u8; 32]> = batch.iter().map(|r| crate_hash(&mode, r)).collect();
            for (name, got) in all_backends(&batch, &mode) {
                assert_eq!(got, want, "{name}, seed {seed}, {mode:?}");
            }
        }
    }
}

#[test]
fn every_chunk_count_up_to_40() {
    // Each tree shape with up to 40 chunks, ending mid-chunk or on a boundary.
    let mut rng = Rng::new(5);
    let mut batch = RecordBatch::new();
    for chunks in 1..=40usize {
        batch
            .push(&common::record(&mut rng, chunks * 1024))
            .unwrap();
        batch
            .push(&common::record(&mut rng, chunks * 1024 + 1 + chunks * 17))
            .unwrap();
    }
    let mode = Blake3Mode::Hash;
    let want: Vec<[u8; 32]> = batch.iter().map(|r| crate_hash(&mode, r)).collect();
    for (name, got) in all_backends(&batch, &mode) {
        assert_eq!(got, want, "{name}");
    }
}

#[test]
#[cfg(feature = "gpu")]
fn batches_split_into_parts() {
    let batch = common::random_batch(7, &[0, 70_000, 1, 300_000, 65_536], 6, 3000);
    let mode = Blake3Mode::Keyed(*KEY);
    let want = blake3::cpu(&batch, &mode);
    for ctx in common::gpus() {
        for part_bytes in [1u64, 100_000, 400_000] {
            let parts = blake3::upload_in_parts(ctx, &batch, part_bytes).unwrap();
            assert!(parts.len() > 1, "{part_bytes} bytes per part");
            let out = blake3::run(ctx, &parts, &mode).unwrap();
            assert_eq!(blake3::read(ctx, &out).unwrap(), want, "{part_bytes}");
        }
    }
}

#[test]
fn empty_batch() {
    let batch = RecordBatch::new();
    for (name, got) in all_backends(&batch, &Blake3Mode::Hash) {
        assert!(got.is_empty(), "{name}");
    }
}
