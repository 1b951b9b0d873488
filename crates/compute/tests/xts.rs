//! AES-256-XTS: the IEEE 1619-2007 known answers on both backends, and GPU == CPU twin ==
//! an independent sector-by-sector `xts_mode` reference for many record sizes, keys and
//! sector numbers (wrapping past u64::MAX), both directions.

// Without the `gpu` feature the GPU halves are left out and their inputs go unused.
#![cfg_attr(not(feature = "gpu"), allow(unused))]

mod common;

use aes::cipher::{generic_array::GenericArray, KeyInit};
use aes::{Aes128, Aes256};
use common::Rng;
use gpufs_compute::kernels::xts::{self, Direction, XtsKey};
use gpufs_compute::records::RecordBatch;
use gpufs_compute::ComputeError;
use proptest::prelude::*;
use xts_mode::{get_tweak_default, Xts128};

/// One vector of tests/data/xts_ieee1619.vec.
struct Vector {
    number: u32,
    key: Vec<u8>,
    nonce: Vec<u8>,
    plain: Vec<u8>,
    cipher: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("data/xts_ieee1619.vec");
    let mut out = Vec::new();
    let mut cur: Option<Vector> = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("# IEEE 1619-2007 VECTOR ") {
            out.extend(cur.take());
            cur = Some(Vector {
                number: n.trim().parse().unwrap(),
                key: vec![],
                nonce: vec![],
                plain: vec![],
                cipher: vec![],
            });
        } else if let (Some(v), Some((k, val))) = (cur.as_mut(), line.split_once(" = ")) {
            let bytes = hex(val.trim());
            match k {
                "Key" => v.key = bytes,
                "Nonce" => v.nonce = bytes,
                "In" => v.plain = bytes,
                "Out" => v.cipher = bytes,
                _ => panic!("unknown field {k}"),
            }
        }
    }
    out.extend(cur);
    out
}

fn batch(records: &[Vec<u8>]) -> RecordBatch {
    RecordBatch::from_records(records.iter().map(|r| &r[..])).unwrap()
}

fn records(b: &RecordBatch) -> Vec<Vec<u8>> {
    b.iter().map(<[u8]>::to_vec).collect()
}

#[test]
fn ieee_1619_xts_aes_256_vectors_10_to_14() {
    let vs: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| (10..=14).contains(&v.number))
        .collect();
    assert_eq!(vs.len(), 5);
    let expected_units = [0xffu64, 0xffff, 0xff_ffff, 0xffff_ffff, 0xff_ffff_ffff];
    for (v, &unit) in vs.iter().zip(&expected_units) {
        assert_eq!(v.key.len(), 64);
        assert_eq!(v.plain.len(), 512);
        assert!(v.nonce[8..].iter().all(|&b| b == 0));
        let n = u64::from_le_bytes(v.nonce[..8].try_into().unwrap());
        assert_eq!(n, unit, "vector {}", v.number);
        let key = XtsKey {
            data: v.key[..32].try_into().unwrap(),
            tweak: v.key[32..].try_into().unwrap(),
        };
        let plain = batch(std::slice::from_ref(&v.plain));
        let want = batch(std::slice::from_ref(&v.cipher));
        let run = |b: &RecordBatch, dir| {
            let mut outs = vec![
                xts::cpu_with_sector(b, &key, &[n], dir, 512).unwrap(),
                xts::cpu_one_thread_with_sector(b, &key, &[n], dir, 512).unwrap(),
            ];
            #[cfg(feature = "gpu")]
            for g in common::gpus() {
                outs.push(xts::gpu_with_sector(g, b, &key, &[n], dir, 512).unwrap());
            }
            outs
        };
        for got in run(&plain, Direction::Encrypt) {
            assert_eq!(got, want, "vector {} encrypt", v.number);
        }
        for got in run(&want, Direction::Decrypt) {
            assert_eq!(got, plain, "vector {} decrypt", v.number);
        }
    }
    // All five in one batch, each with its own sequence number.
    let key = XtsKey {
        data: vs[0].key[..32].try_into().unwrap(),
        tweak: vs[0].key[32..].try_into().unwrap(),
    };
    let plain = batch(&vs.iter().map(|v| v.plain.clone()).collect::<Vec<_>>());
    let want = batch(&vs.iter().map(|v| v.cipher.clone()).collect::<Vec<_>>());
    assert_eq!(
        xts::cpu_with_sector(&plain, &key, &expected_units, Direction::Encrypt, 512).unwrap(),
        want
    );
    #[cfg(feature = "gpu")]
    for g in common::gpus() {
        let got = xts::gpu_with_sector(g, &plain, &key, &expected_units, Direction::Encrypt, 512)
            .unwrap();
        assert_eq!(got, want);
    }
}

/// Vectors 15-18 are XTS-AES-128 with 17..20-byte data units: they pin the ciphertext
/// stealing of the `xts_mode` reference, which the property tests then hold both
/// backends to (with AES-256).
#[test]
fn ieee_1619_stealing_vectors_15_to_18_pin_the_reference() {
    let vs: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| (15..=18).contains(&v.number))
        .collect();
    assert_eq!(vs.len(), 4);
    for v in vs {
        assert_eq!(v.plain.len(), 17 + (v.number - 15) as usize);
        let xts = Xts128::new(
            Aes128::new(GenericArray::from_slice(&v.key[..16])),
            Aes128::new(GenericArray::from_slice(&v.key[16..])),
        );
        let tweak: [u8; 16] = v.nonce[..].try_into().unwrap();
        let mut buf = v.plain.clone();
        xts.encrypt_sector(&mut buf, tweak);
        assert_eq!(buf, v.cipher, "vector {}", v.number);
        xts.decrypt_sector(&mut buf, tweak);
        assert_eq!(buf, v.plain);
    }
}

/// The reference: each record split by hand per the documented layout, every data unit
/// through `xts_mode`.
fn reference(recs: &[Vec<u8>], key: &XtsKey, firsts: &[u64], dir: Direction) -> Vec<Vec<u8>> {
    let xts = Xts128::new(
        Aes256::new(GenericArray::from_slice(&key.data)),
        Aes256::new(GenericArray::from_slice(&key.tweak)),
    );
    recs.iter()
        .zip(firsts)
        .map(|(r, &first)| {
            let mut r = r.clone();
            let mut bounds = Vec::new();
            let mut at = 0;
            while at < r.len() {
                let left = r.len() - at;
                // A short rest (1..=15 bytes) joins the unit before it.
                let take = if left >= 4096 + 16 || left == 4096 {
                    4096
                } else {
                    left
                };
                bounds.push((at, take));
                at += take;
            }
            for (j, &(s, l)) in bounds.iter().enumerate() {
                let tweak = get_tweak_default(u128::from(first.wrapping_add(j as u64)));
                let unit = &mut r[s..s + l];
                match dir {
                    Direction::Encrypt => xts.encrypt_sector(unit, tweak),
                    Direction::Decrypt => xts.decrypt_sector(unit, tweak),
                }
            }
            r
        })
        .collect()
}

fn random_key(rng: &mut Rng) -> XtsKey {
    let mut k = XtsKey {
        data: [0; 32],
        tweak: [0; 32],
    };
    k.data.iter_mut().for_each(|b| *b = rng.next() as u8);
    k.tweak.iter_mut().for_each(|b| *b = rng.next() as u8);
    k
}

fn random_first(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => rng.below(1000),
        1 => u64::MAX - rng.below(300),
        2 => u64::from(u32::MAX) - rng.below(300),
        _ => rng.next(),
    }
}

/// Both directions on every backend against the reference, and the round trip.
fn check_all(recs: &[Vec<u8>], key: &XtsKey, firsts: &[u64]) {
    let b = batch(recs);
    let want = reference(recs, key, firsts, Direction::Encrypt);
    let enc = xts::cpu(&b, key, firsts, Direction::Encrypt).unwrap();
    assert_eq!(records(&enc), want, "cpu encrypt");
    assert_eq!(
        xts::cpu_one_thread(&b, key, firsts, Direction::Encrypt).unwrap(),
        enc,
        "one thread"
    );
    // Ciphertext decrypts as the reference does.
    let back = reference(&want, key, firsts, Direction::Decrypt);
    assert_eq!(back, recs, "reference round trip");
    let dec = xts::cpu(&enc, key, firsts, Direction::Decrypt).unwrap();
    assert_eq!(dec, b, "cpu decrypt");
    #[cfg(feature = "gpu")]
    for g in common::gpus() {
        let up = xts::upload(g, &b, key, firsts, xts::SECTOR_BYTES).unwrap();
        let out = xts::run(g, &up, Direction::Encrypt).unwrap();
        assert_eq!(xts::read(g, out).unwrap(), enc, "gpu encrypt ({g:?})");
        let dec = xts::gpu(g, &enc, key, firsts, Direction::Decrypt).unwrap();
        assert_eq!(dec, b, "gpu decrypt ({g:?})");
    }
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next() as u8).collect()
}

#[test]
fn edge_sizes_on_every_backend() {
    let mut rng = Rng::new(7);
    let sizes = [
        0usize,
        16,
        17,
        31,
        4095,
        4096,
        4097,
        4111,
        4112,
        4113,
        8192 + 15,
        8193,
        65536,
        1 << 20,
    ];
    let recs: Vec<Vec<u8>> = sizes.iter().map(|&n| random_bytes(&mut rng, n)).collect();
    let key = random_key(&mut rng);
    let firsts: Vec<u64> = (0..recs.len()).map(|_| random_first(&mut rng)).collect();
    check_all(&recs, &key, &firsts);
    // Sector numbers that wrap inside a record.
    let firsts = vec![u64::MAX - 1; recs.len()];
    check_all(&recs, &key, &firsts);
}

#[test]
fn many_records_of_random_sizes() {
    let mut rng = Rng::new(99);
    let recs: Vec<Vec<u8>> = (0..300)
        .map(|_| {
            let n = match rng.below(3) {
                0 => 16 + rng.below(100),
                1 => 16 + rng.below(9000),
                _ => 4096 * (1 + rng.below(3)) + rng.below(20),
            };
            random_bytes(&mut rng, n as usize)
        })
        .collect();
    let key = random_key(&mut rng);
    let firsts: Vec<u64> = (0..recs.len()).map(|_| random_first(&mut rng)).collect();
    check_all(&recs, &key, &firsts);
}

#[test]
fn more_sectors_than_one_dispatch_holds() {
    // 5,000 one-sector records: past tight_gpu's 16 x 256 tweak invocations per dispatch.
    let mut rng = Rng::new(5);
    let recs: Vec<Vec<u8>> = (0..5000)
        .map(|_| {
            let n = 16 + rng.below(80) as usize;
            random_bytes(&mut rng, n)
        })
        .collect();
    let key = random_key(&mut rng);
    let firsts: Vec<u64> = (0..recs.len()).map(|_| random_first(&mut rng)).collect();
    check_all(&recs, &key, &firsts);
}

#[test]
fn data_units_larger_than_a_workgroup_of_blocks() {
    // Sectors of more than 256 blocks: each invocation walks several blocks.
    let mut rng = Rng::new(11);
    let recs: Vec<Vec<u8>> = [20_000usize, 70_007, 65_536 + 9, 131_072, 16, 8_197]
        .iter()
        .map(|&n| random_bytes(&mut rng, n))
        .collect();
    let b = batch(&recs);
    let key = random_key(&mut rng);
    let firsts: Vec<u64> = (0..recs.len()).map(|_| random_first(&mut rng)).collect();
    for sector in [8192usize, 65_536] {
        let enc = xts::cpu_with_sector(&b, &key, &firsts, Direction::Encrypt, sector).unwrap();
        assert_ne!(enc, b);
        let dec = xts::cpu_with_sector(&enc, &key, &firsts, Direction::Decrypt, sector).unwrap();
        assert_eq!(dec, b);
        #[cfg(feature = "gpu")]
        for g in common::gpus() {
            let got = xts::gpu_with_sector(g, &b, &key, &firsts, Direction::Encrypt, sector);
            assert_eq!(got.unwrap(), enc, "{sector}");
            let got = xts::gpu_with_sector(g, &enc, &key, &firsts, Direction::Decrypt, sector);
            assert_eq!(got.unwrap(), b, "{sector}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn random_batches_agree(seed in any::<u64>(), count in 1usize..12) {
        let mut rng = Rng::new(seed);
        let recs: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let n = if rng.chance(10) { 0 } else { 16 + rng.below(20_000) as usize };
                random_bytes(&mut rng, n)
            })
            .collect();
        let key = random_key(&mut rng);
        let firsts: Vec<u64> = (0..count).map(|_| random_first(&mut rng)).collect();
        check_all(&recs, &key, &firsts);
    }
}

fn is_bad_input<T: std::fmt::Debug>(r: Result<T, ComputeError>) -> bool {
    matches!(r, Err(ComputeError::BadInput(_)))
}

#[test]
fn short_records_and_bad_arguments_are_refused_on_both_backends() {
    let key = XtsKey {
        data: [1; 32],
        tweak: [2; 32],
    };
    for n in 1..16 {
        let b = batch(&[vec![0; 32], vec![7; n]]);
        for dir in [Direction::Encrypt, Direction::Decrypt] {
            assert!(is_bad_input(xts::cpu(&b, &key, &[0, 1], dir)), "{n}");
            assert!(is_bad_input(xts::cpu_one_thread(&b, &key, &[0, 1], dir)));
            #[cfg(feature = "gpu")]
            for g in common::gpus() {
                assert!(is_bad_input(xts::gpu(g, &b, &key, &[0, 1], dir)), "{n}");
            }
        }
    }
    let b = batch(&[vec![0; 32]]);
    assert!(is_bad_input(xts::cpu(&b, &key, &[], Direction::Encrypt)));
    assert!(is_bad_input(xts::cpu(
        &b,
        &key,
        &[1, 2],
        Direction::Encrypt
    )));
    assert!(is_bad_input(xts::cpu_with_sector(
        &b,
        &key,
        &[1],
        Direction::Encrypt,
        24
    )));
    #[cfg(feature = "gpu")]
    for g in common::gpus() {
        assert!(is_bad_input(xts::gpu(g, &b, &key, &[], Direction::Encrypt)));
        assert!(is_bad_input(xts::gpu_with_sector(
            g,
            &b,
            &key,
            &[1],
            Direction::Encrypt,
            0
        )));
    }
    // Empty batches and empty records are fine.
    let empty = RecordBatch::new();
    assert_eq!(
        xts::cpu(&empty, &key, &[], Direction::Encrypt).unwrap(),
        empty
    );
    let zeros = batch(&[vec![], vec![]]);
    assert_eq!(
        xts::cpu(&zeros, &key, &[5, 6], Direction::Encrypt).unwrap(),
        zeros
    );
    #[cfg(feature = "gpu")]
    for g in common::gpus() {
        assert_eq!(
            xts::gpu(g, &empty, &key, &[], Direction::Encrypt).unwrap(),
            empty
        );
        assert_eq!(
            xts::gpu(g, &zeros, &key, &[5, 6], Direction::Decrypt).unwrap(),
            zeros
        );
    }
}
