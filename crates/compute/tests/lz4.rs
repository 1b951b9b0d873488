//! lz4: round trips in all four directions (CPU/GPU compress, CPU/GPU decompress, and
//! lz4_flex on the GPU's blocks), sane `shrunk` flags, and malformed blocks: each record
//! fails or succeeds alone, its valid neighbours decode exactly, and the GPU decoder
//! agrees with lz4_flex's safe decoder on every record (status and bytes).

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use common::Rng;
use gpufs_compute::kernels::lz4::{self, Compressed, Decompressed, Lz4Error};
use gpufs_compute::records::RecordBatch;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Zeros,
    Text,
    Runs,
    Random,
    Mixed,
}

const KINDS: [Kind; 5] = [
    Kind::Zeros,
    Kind::Text,
    Kind::Runs,
    Kind::Random,
    Kind::Mixed,
];

fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: [&[u8]; 12] = [
        b"the ",
        b"file",
        b"system ",
        b"gpu",
        b", ",
        b"record ",
        b"block\n",
        b"of ",
        b"data ",
        b"compress",
        b"and ",
        b"lz4 ",
    ];
    let mut v = Vec::with_capacity(len + 16);
    while v.len() < len {
        v.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize]);
        if rng.chance(3) {
            v.push(rng.next() as u8);
        }
    }
    v.truncate(len);
    v
}

fn make(rng: &mut Rng, kind: Kind, len: usize) -> Vec<u8> {
    match kind {
        Kind::Zeros => vec![0; len],
        Kind::Text => text(rng, len),
        Kind::Runs => {
            let mut v = Vec::with_capacity(len);
            while v.len() < len {
                let b = rng.next() as u8;
                let n = 1 + rng.below(40) as usize;
                v.extend(std::iter::repeat_n(b, n));
            }
            v.truncate(len);
            v
        }
        Kind::Random => (0..len).map(|_| rng.next() as u8).collect(),
        Kind::Mixed => {
            let mut v = text(rng, len / 2);
            v.extend((v.len()..len).map(|_| rng.next() as u8));
            v
        }
    }
}

/// The shrunk blocks of `c` with the lengths they decode to.
fn shrunk_blocks(c: &Compressed, originals: &[Vec<u8>]) -> (RecordBatch, Vec<u32>, Vec<usize>) {
    let mut blocks = RecordBatch::new();
    let mut sizes = Vec::new();
    let mut which = Vec::new();
    for (i, orig) in originals.iter().enumerate() {
        if c.shrunk[i] {
            blocks.push(c.blocks.get(i)).unwrap();
            sizes.push(orig.len() as u32);
            which.push(i);
        }
    }
    (blocks, sizes, which)
}

fn check_compressed(c: &Compressed, originals: &[Vec<u8>], kinds: &[Kind], who: &str) {
    assert_eq!(c.blocks.len(), originals.len(), "{who}");
    assert_eq!(c.shrunk.len(), originals.len(), "{who}");
    for (i, orig) in originals.iter().enumerate() {
        let block = c.blocks.get(i);
        if !c.shrunk[i] {
            assert!(
                block.is_empty(),
                "{who}: record {i} not shrunk but has a block"
            );
        } else {
            assert!(
                block.len() < orig.len(),
                "{who}: record {i} block not shorter"
            );
            let back = lz4_flex::block::decompress(block, orig.len())
                .unwrap_or_else(|e| panic!("{who}: lz4_flex refuses record {i}: {e}"));
            assert!(
                back == *orig,
                "{who}: record {i} ({:?}) round trip",
                kinds[i]
            );
        }
        if orig.is_empty() || (kinds[i] == Kind::Random && orig.len() >= 64) {
            assert!(
                !c.shrunk[i],
                "{who}: record {i} ({:?}, {})",
                kinds[i],
                orig.len()
            );
        }
        if kinds[i] == Kind::Zeros && orig.len() >= 32 {
            assert!(c.shrunk[i], "{who}: zeros of {} not shrunk", orig.len());
        }
    }
}

fn check_decompressed(d: &Decompressed, originals: &[Vec<u8>], which: &[usize], who: &str) {
    assert_eq!(d.data.len(), which.len(), "{who}");
    for (j, &i) in which.iter().enumerate() {
        assert_eq!(d.status[j], Ok(()), "{who}: record {i}");
        assert!(
            d.data.get(j) == &originals[i][..],
            "{who}: record {i} bytes"
        );
    }
}

/// Compress and decompress `originals` every way, each against the others.
fn round_trip(originals: &[Vec<u8>], kinds: &[Kind]) {
    let batch = RecordBatch::from_records(originals.iter().map(|r| &r[..])).unwrap();
    let cpu = lz4::compress_cpu(&batch);
    assert_eq!(cpu, lz4::compress_cpu_one_thread(&batch));
    check_compressed(&cpu, originals, kinds, "cpu compress");
    let mut sets = vec![("cpu", cpu)];
    #[cfg(feature = "gpu")]
    for ctx in common::gpus() {
        let g = lz4::compress_gpu(ctx, &batch).unwrap();
        check_compressed(&g, originals, kinds, "gpu compress");
        sets.push(("gpu", g));
    }
    for (who, c) in &sets {
        let (blocks, sizes, which) = shrunk_blocks(c, originals);
        let d = lz4::decompress_cpu(&blocks, &sizes).unwrap();
        check_decompressed(&d, originals, &which, &format!("{who} -> cpu"));
        assert_eq!(d, lz4::decompress_cpu_one_thread(&blocks, &sizes).unwrap());
        #[cfg(feature = "gpu")]
        for ctx in common::gpus() {
            let g = lz4::decompress_gpu(ctx, &blocks, &sizes).unwrap();
            check_decompressed(&g, originals, &which, &format!("{who} -> gpu"));
        }
    }
}

#[test]
fn edge_sizes_round_trip_every_way() {
    let mut rng = Rng::new(1);
    let mut originals = Vec::new();
    let mut kinds = Vec::new();
    for len in [0usize, 1, 12, 13, 4095, 4096, 4097, 65_536, 1 << 20] {
        for kind in KINDS {
            originals.push(make(&mut rng, kind, len));
            kinds.push(kind);
        }
    }
    round_trip(&originals, &kinds);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_batches_round_trip_every_way(
        seed in any::<u64>(),
        lens in prop::collection::vec(0usize..20_000, 1..12),
    ) {
        let mut rng = Rng::new(seed);
        let kinds: Vec<Kind> = lens.iter().map(|_| KINDS[rng.below(5) as usize]).collect();
        let originals: Vec<Vec<u8>> =
            lens.iter().zip(&kinds).map(|(&l, &k)| make(&mut rng, k, l)).collect();
        round_trip(&originals, &kinds);
    }
}

/// Decodes `blocks` on both backends: the GPU result equals the CPU (lz4_flex) result
/// exactly, failed records are zero, and records listed in `valid` decode to their
/// original.
fn check_malformed(blocks: &[Vec<u8>], sizes: &[u32], valid: &[(usize, &[u8])]) {
    let batch = RecordBatch::from_records(blocks.iter().map(|b| &b[..])).unwrap();
    let cpu = lz4::decompress_cpu(&batch, sizes).unwrap();
    assert_eq!(cpu, lz4::decompress_cpu_one_thread(&batch, sizes).unwrap());
    for (i, b) in blocks.iter().enumerate() {
        let mut want = vec![0u8; sizes[i] as usize];
        let flex = lz4_flex::block::decompress_into(b, &mut want);
        match (&cpu.status[i], flex) {
            (Ok(()), Ok(n)) => assert_eq!(n, sizes[i] as usize),
            (Err(Lz4Error::TooShort { got, .. }), Ok(n)) => assert_eq!(*got as usize, n),
            (Err(_), Err(_)) => {}
            (s, f) => panic!("record {i}: {s:?} vs lz4_flex {f:?}"),
        }
        if cpu.status[i].is_err() {
            assert!(cpu.data.get(i).iter().all(|&x| x == 0), "record {i} zeroed");
        } else {
            assert_eq!(cpu.data.get(i), &want[..]);
        }
    }
    for &(i, orig) in valid {
        assert_eq!(cpu.status[i], Ok(()), "valid record {i}");
        assert!(cpu.data.get(i) == orig, "valid record {i}");
    }
    #[cfg(feature = "gpu")]
    for ctx in common::gpus() {
        let g = lz4::decompress_gpu(ctx, &batch, sizes).unwrap();
        for i in 0..blocks.len() {
            assert_eq!(g.status[i], cpu.status[i], "record {i} status");
            assert!(g.data.get(i) == cpu.data.get(i), "record {i} bytes");
        }
        assert_eq!(g, cpu);
    }
}

/// Valid blocks to damage: lz4_flex's and the GPU's, of text and runs.
fn sample_blocks(rng: &mut Rng) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for (kind, len) in [(Kind::Text, 300), (Kind::Runs, 200), (Kind::Mixed, 90)] {
        let orig = make(rng, kind, len);
        out.push((lz4_flex::block::compress(&orig), orig));
    }
    #[cfg(feature = "gpu")]
    if let Some(ctx) = common::gpus().first() {
        let orig = make(rng, Kind::Text, 5000);
        let batch = RecordBatch::from_records([&orig[..]]).unwrap();
        let c = lz4::compress_gpu(ctx, &batch).unwrap();
        assert!(c.shrunk[0]);
        out.push((c.blocks.get(0).to_vec(), orig));
    }
    out
}

/// Damaged versions of `block` interleaved with the intact block, so that every damaged
/// record sits between valid ones.
fn interleave(
    block: &[u8],
    orig: &[u8],
    damaged: Vec<(Vec<u8>, u32)>,
) -> (Vec<Vec<u8>>, Vec<u32>, Vec<usize>) {
    let mut blocks = vec![block.to_vec()];
    let mut sizes = vec![orig.len() as u32];
    let mut valid = vec![0];
    for (b, s) in damaged {
        blocks.push(b);
        sizes.push(s);
        blocks.push(block.to_vec());
        sizes.push(orig.len() as u32);
        valid.push(blocks.len() - 1);
    }
    (blocks, sizes, valid)
}

fn run_damaged(block: &[u8], orig: &[u8], damaged: Vec<(Vec<u8>, u32)>) {
    let (blocks, sizes, valid) = interleave(block, orig, damaged);
    let valid: Vec<(usize, &[u8])> = valid.into_iter().map(|i| (i, orig)).collect();
    check_malformed(&blocks, &sizes, &valid);
}

#[test]
fn truncated_blocks_fail_alone() {
    let mut rng = Rng::new(2);
    for (block, orig) in sample_blocks(&mut rng) {
        // Every cut of the small blocks, fifty of the large one.
        let step = if block.len() <= 400 {
            1
        } else {
            block.len() / 50
        };
        let cuts: Vec<(Vec<u8>, u32)> = (0..block.len())
            .step_by(step)
            .map(|n| (block[..n].to_vec(), orig.len() as u32))
            .collect();
        run_damaged(&block, &orig, cuts);
    }
}

#[test]
fn corrupted_bytes_fail_or_decode_like_lz4_flex() {
    let mut rng = Rng::new(3);
    for (block, orig) in sample_blocks(&mut rng) {
        let mut damaged = Vec::new();
        for _ in 0..60 {
            let mut b = block.clone();
            let at = rng.below(b.len() as u64) as usize;
            b[at] ^= 1 + rng.below(255) as u8;
            damaged.push((b, orig.len() as u32));
        }
        run_damaged(&block, &orig, damaged);
    }
}

#[test]
fn wrong_expected_sizes_fail() {
    let mut rng = Rng::new(4);
    for (block, orig) in sample_blocks(&mut rng) {
        let n = orig.len() as u32;
        let damaged = vec![
            (block.clone(), n - 1),
            (block.clone(), n / 2),
            (block.clone(), 0),
            (block.clone(), n + 1),
            (block.clone(), n + 4096),
        ];
        let (blocks, sizes, _) = interleave(&block, &orig, damaged);
        let batch = RecordBatch::from_records(blocks.iter().map(|b| &b[..])).unwrap();
        let cpu = lz4::decompress_cpu(&batch, &sizes).unwrap();
        assert_eq!(cpu.status[1], Err(Lz4Error::TooLong { expected: n - 1 }));
        assert_eq!(
            cpu.status[7],
            Err(Lz4Error::TooShort {
                expected: n + 1,
                got: n
            })
        );
        let valid: Vec<(usize, &[u8])> = (0..blocks.len())
            .step_by(2)
            .map(|i| (i, &orig[..]))
            .collect();
        check_malformed(&blocks, &sizes, &valid);
    }
}

#[test]
fn random_and_crafted_blocks_fail_or_agree() {
    let mut rng = Rng::new(5);
    let mut blocks = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..300 {
        let n = rng.below(200) as usize;
        blocks.push((0..n).map(|_| rng.next() as u8).collect::<Vec<u8>>());
        sizes.push(rng.below(400) as u32);
    }
    let crafted: [(&[u8], u32, Result<(), Lz4Error>); 9] = [
        // Empty block.
        (&[], 0, Err(Lz4Error::Malformed)),
        // A lone empty literal run: an empty record.
        (&[0x00], 0, Ok(())),
        // Offset 0.
        (&[0x10, b'a', 0x00, 0x00], 5, Err(Lz4Error::Malformed)),
        // Offset before the output start.
        (&[0x10, b'a', 0x02, 0x00], 5, Err(Lz4Error::Malformed)),
        // Literals past the input.
        (&[0x50, b'a', b'b'], 5, Err(Lz4Error::Malformed)),
        // Missing length extension.
        (&[0xF0], 20, Err(Lz4Error::Malformed)),
        // A long match past the expected size.
        (
            &[0x1F, b'a', 0x01, 0x00, 0xFF, 0xFF, 0x10],
            100,
            Err(Lz4Error::TooLong { expected: 100 }),
        ),
        // Literals past the expected size.
        (
            &[0x30, b'a', b'b', b'c'],
            2,
            Err(Lz4Error::TooLong { expected: 2 }),
        ),
        // Half an offset.
        (&[0x10, b'a', 0x01], 5, Err(Lz4Error::Malformed)),
    ];
    let first = blocks.len();
    for (b, s, _) in &crafted {
        blocks.push(b.to_vec());
        sizes.push(*s);
    }
    check_malformed(&blocks, &sizes, &[]);
    let batch = RecordBatch::from_records(blocks.iter().map(|b| &b[..])).unwrap();
    let cpu = lz4::decompress_cpu(&batch, &sizes).unwrap();
    for (k, (_, _, want)) in crafted.iter().enumerate() {
        assert_eq!(cpu.status[first + k], *want, "crafted {k}");
    }
}

#[test]
fn mismatched_sizes_are_refused() {
    let batch = RecordBatch::from_records([&[0u8][..], &[0x10, 1][..]]).unwrap();
    assert!(lz4::decompress_cpu(&batch, &[1]).is_err());
    assert!(lz4::decompress_cpu_one_thread(&batch, &[1, 1, 1]).is_err());
    #[cfg(feature = "gpu")]
    for ctx in common::gpus() {
        assert!(lz4::decompress_gpu(ctx, &batch, &[1]).is_err());
    }
    assert!(
        lz4::decompress_cpu(&batch, &[1, 2 << 20]).is_err(),
        "over the largest record"
    );
}

#[test]
fn empty_batches() {
    let batch = RecordBatch::new();
    assert_eq!(lz4::compress_cpu(&batch), Compressed::default());
    assert_eq!(
        lz4::decompress_cpu(&batch, &[]).unwrap(),
        Decompressed::default()
    );
    #[cfg(feature = "gpu")]
    for ctx in common::gpus() {
        assert_eq!(
            lz4::compress_gpu(ctx, &batch).unwrap(),
            Compressed::default()
        );
        assert_eq!(
            lz4::decompress_gpu(ctx, &batch, &[]).unwrap(),
            Decompressed::default()
        );
    }
}

/// Decompressing into a reused output gives what a fresh output gets: no byte of an
/// earlier batch survives, a failed record is all zeros.
#[test]
fn decompression_into_a_reused_output_leaves_nothing_stale() {
    use gpufs_compute::kernels::lz4::{decompress_cpu, decompress_cpu_into};
    let text: Vec<u8> = b"reused output buffers "
        .iter()
        .cycle()
        .take(5000)
        .copied()
        .collect();
    let other: Vec<u8> = b"another batch entirely "
        .iter()
        .cycle()
        .take(5000)
        .copied()
        .collect();
    let a = RecordBatch::from_records([&text[..], &other[..]]).expect("batch");
    let packed = lz4::compress_cpu(&a);
    let sizes = a.lens().to_vec();
    let mut out = Decompressed::default();
    decompress_cpu_into(&packed.blocks, &sizes, &mut out).expect("decompress");
    assert_eq!(out.data, a);
    // Same layout, other contents, and a broken first record.
    let b = RecordBatch::from_records([&other[..], &text[..]]).expect("batch");
    let mut blocks = lz4::compress_cpu(&b).blocks;
    blocks.get_mut(0).fill(0xFF);
    decompress_cpu_into(&blocks, &sizes, &mut out).expect("decompress");
    assert_eq!(out, decompress_cpu(&blocks, &sizes).expect("fresh"));
    assert!(out.status[0].is_err());
    assert!(out.data.get(0).iter().all(|&x| x == 0));
    assert_eq!(out.data.get(1), &text[..]);
}
